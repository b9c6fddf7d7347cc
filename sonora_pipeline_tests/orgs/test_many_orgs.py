"""Three customers' orgs of different shapes, synced side by side by the real Dagster daemon from one registry:
each mirror equals its org field by field, the org whose quota runs out mid-import pauses and resumes without
holding the others back, no two runs of one org overlap, and an org removed from the registry has its run
stopped within a tick, keeps its data, and is purged alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from sonora_pipeline.localorg.fleet import LocalOrgFleet, OrgSpec
from sonora_pipeline_tests.orgs.helpers import (
    busy,
    org_runs,
    overlaps,
    running_daemon,
    standard_settings,
    wait_for,
    write_registry,
)
from sonora_pipeline_tests.suite_settings import SUITE_SETTINGS
from sonora_pipeline_tests.sync.helpers import differences

TICK = 5
OBJECTS = ("Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User")
STARVED_QUOTA = 10  # calls per window: the pipeline's 80% share is spent after about 3 of the 9 objects
QUOTA_WINDOW = 20.0  # seconds: the starved org's "24 hours"


def log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """The run's log lines, with each failed step's own message (Dagster keeps it in the event's error)."""
    lines = []
    for event in instance.all_logs(run_id):
        lines.append(event.message or "")
        if event.dagster_event is not None and event.dagster_event.is_step_failure:
            lines.append(event.dagster_event.step_failure_data.error.message)
    return "\n".join(lines)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(600)
def test_three_orgs_side_by_side_through_the_daemon(tmp_path):
    specs = [OrgSpec(name="acme", records=150, seed=3),  # the demo's custom fields
             OrgSpec(name="globex", records=150, seed=4, custom_fields=False),  # a fresh org: standard only
             OrgSpec(name="initech", records=150, seed=5, daily_api_requests=STARVED_QUOTA,
                     quota_window_seconds=QUOTA_WINDOW)]
    root = tmp_path / "orgs"
    registry = tmp_path / "orgs.yaml"
    log = tmp_path / "daemon.log"
    with LocalOrgFleet(specs) as fleet:
        for org in fleet:
            org.advance_clock(8)  # past the settings' 5 s lag
        settings = {"acme": SUITE_SETTINGS, "globex": standard_settings(tmp_path / "globex.yaml"),
                    "initech": standard_settings(tmp_path / "initech.yaml")}
        write_registry(registry, fleet, settings, root)
        with running_daemon(tmp_path, registry, TICK) as instance:
            def imported():
                done = {org: [r for r in org_runs(instance, org) if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
                        for org in settings}
                return all(done.values()) and not busy(instance)

            wait_for("the three initial imports", imported, 400, log,
                     describe=lambda: {o: [r.dagster_run.status.value for r in org_runs(instance, o)] for o in settings})
            records = {org: org_runs(instance, org) for org in settings}
            failed = [r.dagster_run.run_id for rs in records.values() for r in rs
                      if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
            assert not failed, [log_text(instance, run_id)[-2000:] for run_id in failed]
            # The starved org paused at its share and resumed when its window reset ...
            starved = next(r for r in records["initech"] if r.dagster_run.tags.get("sonora/sync_kind") == "initial")
            text = log_text(instance, starved.dagster_run.run_id)
            assert "at or above the pipeline's share" in text and "resuming" in text, text[-3000:]
            # ... while the others started at once and finished before it did: they did not wait on it.
            for org in ("acme", "globex"):
                first = min(records[org], key=lambda r: r.create_timestamp)
                assert first.start_time < starved.end_time and first.end_time < starved.end_time, org
            for org, rs in records.items():
                assert overlaps(rs) == [], f"{org}: runs overlap"
            partitions = set(instance.get_dynamic_partitions("salesforce_orgs"))
            assert partitions == set(settings)

            # Each mirror equals its own org, field by field; an org's file holds its rows only.
            for name in settings:
                db = root / name / "warehouse.duckdb"
                for object_name in OBJECTS:
                    assert differences(fleet.org(name), db, object_name) == [], (name, object_name)
            assert differences(fleet.org("acme"), root / "acme" / "warehouse.duckdb", "Subscription__c") == []

            # Removing an org stops its run within a tick and keeps its data.
            slow = fleet.org("globex")
            slow.set_faults(latency_seconds=0.5)  # every call takes half a second: a run long enough to catch
            account = slow.store.conn.execute('SELECT "Id" FROM "Account" ORDER BY "Id" LIMIT 1').fetchone()[0]
            slow.update("Account", account, {"Name": "Changed while registered"})
            slow.advance_clock(8)
            running = wait_for("a run for globex's change", lambda: [
                r for r in org_runs(instance, "globex") if r.dagster_run.status == dg.DagsterRunStatus.STARTED
                and r.dagster_run.tags.get("sonora/sync_kind") == "incremental"], 120, log, poll=0.5)
            kept = {org: file_digest(root / org / "warehouse.duckdb") for org in ("acme", "initech")}
            write_registry(registry, fleet, {k: v for k, v in settings.items() if k != "globex"}, root)
            removed_at = time.monotonic()
            run_id = running[0].dagster_run.run_id
            wait_for("globex's run stopped", lambda: instance.get_run_by_id(run_id).status in (
                dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE), 2 * TICK + 30, log, poll=0.5)
            stopped_after = time.monotonic() - removed_at
            wait_for("globex's partition removed",
                     lambda: "globex" not in instance.get_dynamic_partitions("salesforce_orgs"), 2 * TICK + 10, log)
            # Stopped by the sensor's cancel, or, if its next step came first, by that step's own refusal.
            if instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE:
                assert "is not in the registry" in log_text(instance, run_id)
            slow.clear_faults()
        assert (root / "globex" / "warehouse.duckdb").exists()  # its data is kept until a purge
        assert differences(slow, root / "globex" / "warehouse.duckdb", "Contact") == []

    env = {**os.environ, "SONORA_ORGS": str(registry)}
    purge = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "orgs", "purge", "globex", "--yes"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert purge.returncode == 0, purge.stderr
    assert not (root / "globex").exists()
    assert sorted(p.name for p in root.iterdir()) == ["acme", "initech"]
    assert {org: file_digest(root / org / "warehouse.duckdb") for org in kept} == kept
    print(f"globex's run stopped {stopped_after:.1f} s after it left the registry (tick {TICK} s)")
