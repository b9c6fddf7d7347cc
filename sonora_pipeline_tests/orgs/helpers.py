"""Many orgs for the tests: a local org fleet (one process, one port per org), a registry naming them, and
the real Dagster daemon over it in a child process (multi-org definitions are structure, chosen when the
code location loads with SONORA_ORGS set)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from sonora_pipeline.localorg.fleet import LocalOrgFleet
from sonora_pipeline_tests.test_dagster_ui import dagster_home, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
BUSY = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def standard_settings(path: Path) -> Path:
    """A fresh org's settings: the suite's sync timing, no custom field and no custom object."""
    path.write_text(yaml.safe_dump({"sync": {"initial_import": "all", "lag_seconds": 5, "overlap_seconds": 60,
                                             "bulk_threshold": 500, "quota_pause_seconds": 0.5}}))
    return path


def write_registry(path: Path, fleet: LocalOrgFleet, settings: dict[str, Path | None],
                   warehouse_root: Path) -> Path:
    """`orgs.yaml` for the orgs named in `settings` (their settings file, or None for the deployment's)."""
    credentials = path.parent / "secrets"
    fleet.write_credentials(credentials)
    orgs = {}
    for name, settings_file in settings.items():
        entry = {"instance_url": fleet.org(name).instance_url, "credentials": {"file": str(credentials / f"{name}.json")},
                 "ca_bundle": fleet.ca_bundle}
        if settings_file is not None:
            entry["settings"] = str(settings_file)
        orgs[name] = entry
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump({"warehouse_root": str(warehouse_root), "orgs": orgs}, sort_keys=False))
    tmp.replace(path)  # whole, as an operator's editor or config management writes it
    return path


def environment(registry: Path, home: Path, tick_seconds: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESFORCE_") and k != "SONORA_DUCKDB_PATH"}
    return {**env, "SONORA_ORGS": str(registry), "DAGSTER_HOME": str(home), "SONORA_AUTOMATION": "on",
            "SONORA_TICK_SECONDS": str(tick_seconds),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@contextlib.contextmanager
def running_daemon(tmp_path: Path, registry: Path, tick_seconds: int = 5) -> Iterator[dg.DagsterInstance]:
    """`dagster-daemon run` over the project's workspace with the registry; yields the instance it uses."""
    home = dagster_home(tmp_path)
    log = tmp_path / "daemon.log"
    # The instance's storage is created here first: two processes creating the same SQLite schemas at once
    # can leave two alembic heads, and then no process can load the code location.
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        with open(log, "wb") as out:
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                       str(ROOT / "workspace.yaml")], cwd=tmp_path,
                                      env=environment(registry, home, tick_seconds), stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield instance
        finally:
            stop_process_group(daemon)


def wait_for(what: str, condition, seconds: float, log: Path, poll: float = 0.25, describe=None):
    """`condition()`'s first truthy value, checked every `poll` s (a cheap instance query: a coarse poll only
    adds its half to every wait); else the test fails with `describe()` and the tail of `log`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    pytest.fail(f"{what} did not happen within {seconds:.0f} s ({describe() if describe else ''})\n{tail}")


def org_runs(instance: dg.DagsterInstance, org: str) -> list:
    return instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": org}))


def busy(instance: dg.DagsterInstance) -> list:
    return instance.get_runs(filters=dg.RunsFilter(statuses=BUSY))


def overlaps(records) -> list[tuple[str, str]]:
    """Pairs of runs whose [start, end] intervals overlap (from the run storage's own timestamps)."""
    spans = sorted((r.start_time, r.end_time or time.time(), r.dagster_run.run_id) for r in records if r.start_time)
    return [(a[2], b[2]) for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
