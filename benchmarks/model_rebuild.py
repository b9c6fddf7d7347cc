"""How long a customer-model rebuild takes from the CLI and under automation (the daemon), on the demo org.

    .venv/bin/python benchmarks/model_rebuild.py            # the demo org: 5,000 records, seed 7
    .venv/bin/python benchmarks/model_rebuild.py 20000      # another size

Steps: a local org like the demo's (its settings, its seed); `sonora-pipeline sync --quiet` into a fresh
DuckDB file with a persistent DAGSTER_HOME (the project's dagster.yaml), so the instance knows every object
was synced and the model never built; `sonora-pipeline model` timed as a user runs it (a fresh process,
ephemeral instance, so the daemon still sees an unbuilt model); then `dagster-daemon run` with the
automation on (10 s ticks) until the model's automation-launched run(s) succeed. From each such run's event
log: queued -> dequeued (the run queue), dequeued -> RUN_START (launch: a new process, Dagster and the
project imported, the code loaded), RUN_START -> RUN_SUCCESS (the steps), and the steps' own time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK_SECONDS = 10
WAIT_SECONDS = 600


def environment(creds: dict, db: Path, **extra: str) -> dict[str, str]:
    from sonora_pipeline.cli.localorg import DEMO_SETTINGS

    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "SONORA_AUTOMATION")}
    return {**env, **creds, "SONORA_CONFIG": str(DEMO_SETTINGS), "SONORA_DUCKDB_PATH": str(db),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), **extra}


def cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"sonora-pipeline {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def model_runs(instance) -> list:
    import dagster as dg

    from sonora_pipeline.model.statements import MODEL_SCHEMA

    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/from_automation_condition": "true"}))
    return [r for r in runs if any(k.path[0] == MODEL_SCHEMA for k in (r.asset_selection or ()))]


def run_figures(instance, run) -> dict[str, float]:
    """Seconds per phase, from the run's event log (timestamps written by the daemon and the run worker)."""
    from dagster import DagsterEventType as E

    times: dict[str, float] = {}
    step_seconds = 0.0
    step_started: dict[str, float] = {}
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        times.setdefault(kind.value, entry.timestamp)
        if kind == E.STEP_START:
            step_started[event.step_key] = entry.timestamp
        elif kind in (E.STEP_SUCCESS, E.STEP_FAILURE) and event.step_key in step_started:
            step_seconds += entry.timestamp - step_started.pop(event.step_key)
    record = instance.get_run_record_by_id(run.run_id)
    queued = times.get(E.PIPELINE_ENQUEUED.value, times.get(E.PIPELINE_START.value, record.create_timestamp.timestamp()))
    dequeued = times.get(E.PIPELINE_DEQUEUED.value, times.get(E.PIPELINE_STARTING.value, queued))
    started = times[E.PIPELINE_START.value]
    ended = times.get(E.PIPELINE_SUCCESS.value) or times.get(E.PIPELINE_FAILURE.value)
    first_step = min(t for k, t in times.items() if k == E.STEP_START.value)
    return {"queue": dequeued - queued, "launch": started - dequeued, "to first step": first_step - started,
            "steps (sum)": step_seconds, "start to success": ended - started, "total": ended - queued,
            "steps": sum(1 for e in instance.all_logs(run.run_id)
                         if e.dagster_event and e.dagster_event.event_type == E.STEP_START)}


def main(records: int) -> None:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from sonora_pipeline.cli.localorg import demo_org_id
    from sonora_pipeline.localorg.org import LocalOrg

    work = Path(tempfile.mkdtemp(prefix="sonora-model-rebuild-"))
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    db = work / "warehouse.duckdb"
    org = LocalOrg(records=records, seed=7, org_id=demo_org_id(7)).start()
    daemon = None
    try:
        creds = org.credentials.as_environment()
        sync_s = cli(environment(creds, db, DAGSTER_HOME=str(home)), "sync", "--quiet")
        print(f"org of {records:,} records (demo seed) synced by the CLI in {sync_s:.1f} s")
        # A DAGSTER_HOME of the CLI's own: its run's event log gives the steps' time, and the automation's
        # instance still sees a model never built.
        cli_home = work / "cli_home"
        cli_home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", cli_home / "dagster.yaml")
        cli_times = [cli(environment(creds, db, DAGSTER_HOME=str(cli_home)), "model") for _ in range(2)]
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(cli_home))) as instance:
            in_run = [run_figures(instance, r)["start to success"] for r in instance.get_runs()]
        print(f"CLI `sonora-pipeline model` wall time (process start to exit): "
              f"{', '.join(f'{t:.1f} s' for t in cli_times)}; its run, start to success: "
              f"{', '.join(f'{t:.1f} s' for t in in_run)}")
        env = environment(creds, db, DAGSTER_HOME=str(home), SONORA_AUTOMATION="on",
                          SONORA_TICK_SECONDS=str(TICK_SECONDS))
        log = work / "daemon.log"
        with open(log, "wb") as out:
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                       str(ROOT / "workspace.yaml")], cwd=work, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            deadline = time.monotonic() + WAIT_SECONDS
            runs: list = []
            while time.monotonic() < deadline:
                runs = model_runs(instance)
                busy = instance.get_runs(filters=dg.RunsFilter(statuses=[
                    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED]), limit=1)
                if runs and not busy:
                    break
                time.sleep(2)
            else:
                raise SystemExit(f"no automation-launched model run finished within {WAIT_SECONDS} s; see {log}")
            cli_mean = sum(cli_times) / len(cli_times)
            for run in sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp):
                figures = run_figures(instance, run)
                print(f"automation run {run.run_id[:8]} ({run.status.value}, {len(run.asset_selection or ())} "
                      f"tables, {figures.pop('steps')} steps): "
                      + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())
                      + f" = {figures['total'] / cli_mean:.1f}x the CLI's mean")
            print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    finally:
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        org.stop()
    print(f"files in {work}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
