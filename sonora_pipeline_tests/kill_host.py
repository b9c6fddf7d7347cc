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
import subprocess
import sys
import traceback
from pathlib import Path

HOST_SCRIPT = Path(__file__).resolve()


class KillHost:
    """The test's end: start the host once, then start, kill and wait for children."""

    def __init__(self, workdir: Path, settings_text: str):
        settings = workdir / "settings.yaml"
        settings.write_text(settings_text)
        self.settings = settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESFORCE_", "SONORA_", "DAGSTER_HOME"))}
        env["SONORA_CONFIG"] = str(settings)
        self.process = subprocess.Popen([sys.executable, str(HOST_SCRIPT)], env=env, cwd=workdir,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def start(self, org, db: Path, log: Path, **request) -> int:
        """Start a child against `org` writing `db`; returns its pid."""
        env = {**org.credentials.as_environment(), "SONORA_DUCKDB_PATH": str(db)}
        self.process.stdin.write(json.dumps({**request, "env": env, "log": str(log)}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["pid"]

    def wait(self) -> int:
        """The child's exit code (negative: the signal that ended it)."""
        return json.loads(self.process.stdout.readline())["exit"]

    def run(self, org, db: Path, log: Path, **request) -> int:
        self.start(org, db, log, **request)
        return self.wait()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


# -- the host's end ---------------------------------------------------------------------------------------------

def _writeback(request: dict) -> int:
    from sonora_pipeline.salesforce.client import SalesforceClient
    from sonora_pipeline.salesforce.connection import OrgConnection
    from sonora_pipeline.settings import load_settings
    from sonora_pipeline.writeback.push import run_writeback

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
        if "argv" in request:
            from sonora_pipeline import cli

            code = cli.main(request["argv"])
        else:
            code = _writeback(request["writeback"])
    except BaseException:  # noqa: BLE001 - the child reports everything in its log and exits
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    import dagster as dg

    import sonora_pipeline.cli  # noqa: F401
    import sonora_pipeline.definitions
    import sonora_pipeline.writeback.push  # noqa: F401

    sonora_pipeline.definitions.defs()  # Dagster, every module under defs/, the settings
    with dg.DagsterInstance.ephemeral():  # and the instance's storage modules
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
