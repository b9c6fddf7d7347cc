"""Multi-org Dagster in a child interpreter, for tests that cannot import multi-org definitions themselves
(they are structure, chosen at import from SONORA_ORGS, and the suite's process has the single-org ones).

    SONORA_ORGS=orgs.yaml DAGSTER_HOME=home python -m sonora_pipeline_tests.orgs.harness tick [--cursor JSON]
    SONORA_ORGS=orgs.yaml DAGSTER_HOME=home python -m sonora_pipeline_tests.orgs.harness clients ORG [ORG ...]
    SONORA_ORGS=orgs.yaml DAGSTER_HOME=home python -m sonora_pipeline_tests.orgs.harness sync ORG [ORG ...]
        [--tag KEY=VALUE ...] [--asset Account ...]

`tick` evaluates one `salesforce_changes` tick; `clients` makes one call per org through one
`SalesforceResource` and reports each org's budget; `sync` executes `salesforce_sync_job` in process for each
org partition in turn (adding the partitions first, as the sensor would). Each prints one JSON document on
its last stdout line: what the test asserts on (run requests, skip message, cursor, every log line; the
run's success, step failures and log). `run_harness` is the test side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARK = "HARNESS-RESULT "


class _Collect(logging.Handler):
    """Every record logged by Dagster's loggers while the command runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _resources() -> dict[str, Any]:
    from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
    from sonora_pipeline.defs.settings import SettingsResource

    return {"salesforce": SalesforceResource(), "warehouse": WarehouseResource(), "settings": SettingsResource()}


def tick(cursor: str | None) -> dict[str, Any]:
    import dagster as dg

    from sonora_pipeline.definitions import defs

    definitions = defs()
    sensor = definitions.resolve_sensor_def("salesforce_changes")
    with dg.DagsterInstance.get() as instance, dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=_resources(), definitions=definitions,
            sensor_name="salesforce_changes") as context:
        data = sensor(context)  # the sensor's own answer, as the daemon receives it before resolving it
    if isinstance(data, dg.SkipReason):
        data = dg.SensorResult(skip_reason=data)
    added, removed = [], []
    for request in data.dynamic_partitions_requests or []:
        (added if isinstance(request, dg.AddDynamicPartitionsRequest) else removed).extend(request.partition_keys)
    return {
        "run_requests": [{"partition_key": r.partition_key, "tags": dict(r.tags),
                          "assets": sorted(k.to_user_string() for k in r.asset_selection or [])}
                         for r in data.run_requests or []],
        "skip": data.skip_reason.skip_message if data.skip_reason else None, "cursor": data.cursor, "added": added, "removed": removed,
    }


def clients(orgs: list[str]) -> dict[str, Any]:
    """One resource, as a tick or a run holds it: one API call per org, in the order given, then each org's
    budget as the resource sees it at the end."""
    from sonora_pipeline.salesforce.errors import SalesforceError

    salesforce = _resources()["salesforce"]
    calls, made = {}, {}
    for org in orgs:
        try:
            made[org] = client = salesforce.client(None, fail_fast=True, org=org)
            client.limits()
            calls[org] = "ok"
        except SalesforceError as err:
            calls[org] = f"{type(err).__name__}: {err}"
    budgets = {org: {"used": c.budget.used, "max": c.budget.max, "over_share": c.budget.over_share}
               for org, c in made.items()}
    salesforce.close()
    return {"calls": calls, "budgets": budgets}


def sync(orgs: list[str], tags: dict[str, str], assets: list[str]) -> dict[str, Any]:
    import dagster as dg

    from sonora_pipeline.definitions import defs
    from sonora_pipeline.defs.orgs import ORG_PARTITIONS, ORG_TAG

    job = defs().resolve_job_def("salesforce_sync_job")
    selection = [dg.AssetKey(a.split("/")) for a in assets] or None
    results = {}
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(ORG_PARTITIONS.name))
        instance.add_dynamic_partitions(ORG_PARTITIONS.name, [o for o in orgs if o not in known])
        for org in orgs:
            result = job.execute_in_process(partition_key=org, instance=instance, tags={ORG_TAG: org, **tags},
                                            asset_selection=selection, raise_on_error=False)
            failures = []
            for event in result.all_events:
                if event.is_step_failure:
                    data = event.step_failure_data
                    failures.append(data.user_failure_data.description if data.user_failure_data
                                     and data.user_failure_data.description else data.error.message)
            results[org] = {
                "success": result.success, "run_id": result.run_id, "failures": failures,
                "materialized": sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events()),
                "log": [e.message or "" for e in instance.all_logs(result.run_id)],
            }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sonora_pipeline_tests.orgs.harness")
    commands = parser.add_subparsers(dest="command", required=True)
    tick_parser = commands.add_parser("tick")
    tick_parser.add_argument("--cursor", default=None)
    clients_parser = commands.add_parser("clients")
    clients_parser.add_argument("orgs", nargs="+")
    sync_parser = commands.add_parser("sync")
    sync_parser.add_argument("orgs", nargs="+")
    sync_parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    sync_parser.add_argument("--asset", action="append", default=[], metavar="KEY")
    args = parser.parse_args(argv)
    collect = _Collect()
    for name in ("dagster", "root"):
        logging.getLogger(None if name == "root" else name).addHandler(collect)
    if args.command == "tick":
        output = tick(args.cursor)
    elif args.command == "clients":
        output = clients(args.orgs)
    else:
        output = sync(args.orgs, dict(t.split("=", 1) for t in args.tag), args.asset)
    output = {"result": output, "python_log": collect.lines}
    sys.stdout.write("\n" + MARK + json.dumps(output, default=str) + "\n")
    return 0


def run_harness(registry: Path, home: Path, *args: str, timeout: float = 300,
                extra_env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Run one harness command in a child interpreter; (its JSON result, its whole stdout+stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESFORCE_") and k != "SONORA_DUCKDB_PATH"}
    env.update({"SONORA_ORGS": str(registry), "DAGSTER_HOME": str(home),
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    env.pop("SONORA_AUTOMATION", None)
    env.update(extra_env or {})
    done = subprocess.run([sys.executable, "-m", "sonora_pipeline_tests.orgs.harness", *args], env=env,
                          cwd=registry.parent, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + "\n" + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise AssertionError(f"harness {' '.join(args)} failed (exit {done.returncode}):\n{output[-5000:]}")
    return json.loads(lines[-1][len(MARK):]), output


if __name__ == "__main__":
    sys.exit(main())
