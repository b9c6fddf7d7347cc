"""`sonora-pipeline demo --orgs 3`: three customers' orgs, each unlike the others, synced side by side by the
Dagster daemon from one registry, as a deployment with many orgs runs them.

The local orgs come from `cli.localorg` (the one door to the local org); this module writes their settings
into the registry, starts the daemon (with the UI, `dg dev`; with `--no-ui`, `dagster-daemon run`), waits for
each org's first import, and prints one cross-org query over their separate DuckDB files.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from tabulate import tabulate

from sonora_pipeline.cli.ui import PROJECT_ROOT, demo_dagster_home, let_runs_in_flight_finish, ui_command
from sonora_pipeline.settings.registry import load_registry

IMPORT_WAIT_SECONDS = 900
SHOWN_AS = {"NOT_STARTED": "queued", "QUEUED": "queued", "STARTING": "running", "STARTED": "running",
            "SUCCESS": "done", "FAILURE": "failed", "CANCELING": "cancelled", "CANCELED": "cancelled"}
# A fresh org's settings: no custom field, the whole history (the demo's lookback).
STANDARD_SETTINGS = {"sync": {"initial_import": "all"}}
SUMMARY_QUERY = """
SELECT org, count(*) AS customers, count(*) FILTER (WHERE is_paying) AS paying,
       count(*) FILTER (WHERE h.band = 'red') AS at_risk, round(sum(arr)) AS arr
FROM all_customers c LEFT JOIN all_health h USING (org, external_id)
GROUP BY org ORDER BY org
"""


def with_settings(registry: Path, demo_settings: Path) -> dict[str, Path]:
    """Give each demo org its settings file in the registry: the demo's custom fields for the first, a fresh
    org's for the others. Returns org -> settings file."""
    data = yaml.safe_load(registry.read_text())
    standard = registry.parent / "standard-settings.yaml"
    standard.write_text(yaml.safe_dump(STANDARD_SETTINGS))
    chosen = {}
    for i, (name, entry) in enumerate(data["orgs"].items()):
        chosen[name] = demo_settings if i == 0 else standard
        entry["settings"] = str(chosen[name])
    registry.write_text(yaml.safe_dump(data, sort_keys=False))
    return chosen


def _first_imports(instance, orgs: list[str]) -> dict[str, str]:
    """Each org's first sync run's status (SUCCESS, FAILURE, ... or 'waiting')."""
    import dagster as dg

    status = {}
    for org in orgs:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": org,
                                                             "sonora/sync_kind": "initial"}), limit=1)
        status[org] = SHOWN_AS.get(runs[0].status.value, runs[0].status.value) if runs else "waiting"
    return status


def wait_for_imports(orgs: list[str], daemon: subprocess.Popen) -> dict[str, str]:
    from sonora_pipeline.cli.runs import dagster_instance

    shown: dict[str, str] = {}
    deadline = time.monotonic() + IMPORT_WAIT_SECONDS
    with dagster_instance() as instance:
        while time.monotonic() < deadline and daemon.poll() is None:
            status = _first_imports(instance, orgs)
            for org, state in status.items():
                if shown.get(org) != state:
                    print(f"  {org}: initial import {state}", flush=True)
            shown = status
            if all(s in ("done", "failed", "cancelled") for s in status.values()):
                break
            time.sleep(2)
    return shown


def print_summary(registry: Path, orgs: list[str]) -> None:
    """The cross-org query over each org's analyst snapshot (taken between two commits: the sensor may already
    be syncing an org again, and a live file is not to be held open beside its writer)."""
    import duckdb

    from sonora_pipeline.mirror.warehouse import publish_snapshot

    entries = load_registry(registry)
    conn = duckdb.connect()
    for org in orgs:
        snapshot = publish_snapshot(entries.warehouse_path(org), entries.snapshot_path(org))
        conn.execute(f"ATTACH '{snapshot}' AS {org} (READ_ONLY)")
    union = " UNION ALL BY NAME ".join(f"SELECT '{o}' AS org, * FROM {o}.sonora.customers" for o in orgs)
    health = " UNION ALL BY NAME ".join(f"SELECT '{o}' AS org, customer_id AS external_id, band "
                                        f"FROM {o}.sonora.health_scores" for o in orgs)
    conn.execute(f"CREATE TEMP VIEW all_customers AS {union}")
    conn.execute(f"CREATE TEMP VIEW all_health AS {health}")
    rows = conn.execute(SUMMARY_QUERY).fetchall()
    print("\nThree customers, three DuckDB files (their snapshots), one query (`sonora-pipeline orgs sql "
          "--snapshots` writes the ATTACHes):")
    table = tabulate(rows, headers=["org", "customers", "paying", "at risk (red)", "ARR"], tablefmt="plain",
                     floatfmt=",.0f", missingval="-")
    print("\n".join(f"  {line}" for line in table.splitlines()))
    conn.close()


def run_demo_orgs(args: argparse.Namespace, registry: Path, demo_settings: Path) -> int:
    """The fleet is already serving and `registry` names it; runs the daemon over it."""
    chosen = with_settings(registry, demo_settings)
    orgs = list(chosen)
    root = load_registry(registry).warehouse_root
    os.environ.update({"SONORA_ORGS": str(registry), "SONORA_AUTOMATION": "on"})
    os.environ.setdefault("SONORA_TICK_SECONDS", "10")
    home = demo_dagster_home()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH"))
                                                       if p)}
    for org, settings in chosen.items():
        print(f"  {org}: {settings.name}, data in {root / org}", flush=True)
    command = ([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")]
               if args.no_ui else ui_command(args.ui_port))
    where = "the Dagster daemon" if args.no_ui else f"the Dagster UI on http://127.0.0.1:{args.ui_port}"
    print(f"Starting {where}; its change sensor adds the orgs as partitions and imports them side by side ...",
          flush=True)
    from sonora_pipeline.cli.runs import dagster_instance

    with dagster_instance():
        pass  # the instance's storage exists before the daemon starts (two first openers race on its schema)
    log = open(home / "demo-orgs-daemon.log", "ab") if args.no_ui else None  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(command, env=env, cwd=home, stdout=log, stderr=log)
    try:
        status = wait_for_imports(orgs, daemon)
        done = [o for o, s in status.items() if s == "done"]
        if done:
            print_summary(registry, done)
        for org in set(orgs) - set(done):
            print(f"  {org}: not imported ({status.get(org, 'waiting')}); see its run in the UI", flush=True)
        if args.no_ui:
            return 0 if len(done) == len(orgs) else 1
        print("\nThe UI stays open (Ctrl-C to stop); try the org partitions of salesforce/account.", flush=True)
        return daemon.wait()
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        let_runs_in_flight_finish(30)
        if log is not None:
            log.close()
