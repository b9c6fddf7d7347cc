"""A warm process that forks one child per request, so that a SIGKILL trial pays for the sync, not the imports.

Loading Dagster and the definitions takes ~3.5 s; a trial's sync of a small org takes about as long. The host
imports everything once, then for each request forks a child that runs the real entry point: the
`sonora-pipeline` command line (`{"argv": [...]}`) or one write-back run (`{"writeback": {...}}`), with the
request's environment and its output in the request's log file. The test kills the child, never the host.

Protocol, one JSON line each way: the host answers `{"pid": N}` once the child runs and
`{"pid": N, "exit": code}` when it ends (a negative code is the signal that ended it).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import sonora_pipeline.cli as cli
import sonora_pipeline.definitions  # noqa: F401  (warm: Dagster, the definitions' modules, the settings)
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import OrgConnection
from sonora_pipeline.settings import load_settings
from sonora_pipeline.writeback.push import run_writeback


def _writeback(request: dict) -> int:
    env = os.environ
    connection = OrgConnection(env["SALESFORCE_INSTANCE_URL"], env["SALESFORCE_CONSUMER_KEY"],
                               env["SALESFORCE_CONSUMER_SECRET"], ca_bundle=env["SALESFORCE_CA_BUNDLE"])
    report = run_writeback(SalesforceClient(connection), Path(request["db"]), load_settings(Path(request["settings"])),
                           run_id=request["run_id"])
    print(json.dumps({"status": report.status, "counts": report.counts, "api_calls": report.api_calls}))
    return 0


def _child(request: dict) -> None:
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 1
    try:
        os.environ.update(request.get("env", {}))
        code = cli.main(request["argv"]) if "argv" in request else _writeback(request["writeback"])
    except BaseException:  # noqa: BLE001 - the child reports everything in its log and exits
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    import dagster as dg

    with dg.DagsterInstance.ephemeral():  # warm: the instance's storage modules
        pass
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
