"""Dagster's own distributed deployment, with the real parts: run storage in PostgreSQL, runs launched as Celery
tasks on Redis (deploy/distributed/dagster.yaml) and executed by two `dagster-celery` workers, the daemon's
sensor and run queue deciding what runs when.

- Twenty orgs are imported by the two workers (`SONORA_DISTRIBUTED_ORGS` sets another count): each mirror equals
  its org, both workers executed runs (the task's worker name as the result backend keeps it), no two runs of
  one org overlapped. Dagster's storage is reached through PgBouncer (deploy/distributed/pgbouncer.ini).
- One org's runs contend for the per-org limit: two re-syncs of it launched at once (`dagster job launch`, as a
  person asks for one). The queue holds one while the other runs, although worker slots are free; they run one
  after the other, whichever worker takes each, and the mirror still equals the org.
- The pool process executing a run is killed with SIGKILL mid-run: Celery records its task as failed
  (WorkerLostError), the daemon's run monitoring sees that through the launcher's health check and fails the
  run, run retries start it again from the failed steps, and the mirror ends equal to the org, nothing
  duplicated, no cursor ahead of its data.
- A whole worker is killed (its main process with its pool): nobody is left to record the task's end, its
  state stays STARTED and the health check keeps saying "running". Only run monitoring's maximum runtime
  ends such a run (6 h in deploy/distributed/dagster.yaml; here the run's own `dagster/max_runtime_seconds`
  tag is lowered to stand for those hours), and then run retries run it on the surviving worker.

The module shares one deployment (one PostgreSQL and its PgBouncer, Redis, daemon, two workers): the tests run in file order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from sonora_pipeline.localorg.fleet import LocalOrgFleet, tiny_specs
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline_tests.distributed.helpers import (
    BIN,
    ROOT,
    deployment_environment,
    distributed_home,
    open_instance,
    run_worker_pid,
    running_deployment,
    session_pids,
)
from sonora_pipeline_tests.orgs.helpers import busy, org_runs, overlaps, standard_settings, wait_for, write_registry
from sonora_pipeline_tests.services import pgbouncer_server, postgres_server, redis_server
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.sync.test_kill_and_rerun import cursor_never_ahead

TICK = 5
ORGS = int(os.environ.get("SONORA_DISTRIBUTED_ORGS", "20"))
VICTIM = "org02"
LOST_WITH_ITS_WORKER = "org03"
CONTESTED = "org04"
MONITORING_POLL_SECONDS = 5  # deploy/distributed/dagster.yaml run_monitoring.poll_interval_seconds
OBJECTS = ("Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User")
SUCCESS = dg.DagsterRunStatus.SUCCESS


def mirror_problems(fleet: LocalOrgFleet, root: Path, org: str) -> list[str]:
    """How an org's mirror differs from the org (rows, duplicate Ids, a cursor ahead of its data)."""
    db = root / org / "warehouse.duckdb"
    problems = [p for name in OBJECTS for p in differences(fleet.org(org), db, name)]
    with duckdb.connect(str(db), read_only=True) as conn:
        for name in OBJECTS:
            total, distinct = conn.execute(
                f'SELECT count(*), count(DISTINCT "Id") FROM salesforce."{table_name_for(name)}"').fetchone()
            if total != distinct:
                problems.append(f"{name}: {total - distinct} duplicate Ids")
        missing = [name for name, cursor in conn.execute(
            "SELECT object_name, cursor_modstamp FROM salesforce._sync_state").fetchall()
            if name in OBJECTS and cursor is None]
        problems += [f"{name}: no cursor after a successful import" for name in missing]
    return problems + cursor_never_ahead(fleet.org(org), db)


def task_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """The Celery worker that executed the run's task, as the result backend recorded it."""
    return instance.run_launcher.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG]).worker


def statuses(instance: dg.DagsterInstance) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in instance.get_runs():
        counts[run.status.value] = counts.get(run.status.value, 0) + 1
    return counts


def succeeded(instance: dg.DagsterInstance, org: str) -> list:
    return [r for r in org_runs(instance, org) if r.dagster_run.status == SUCCESS]


@dataclass
class Deployment:
    fleet: LocalOrgFleet
    instance: dg.DagsterInstance
    processes: dict[str, subprocess.Popen]
    root: Path
    folder: Path
    imported_in: float
    env: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.fleet.specs]


def changed_and_running(instance: dg.DagsterInstance, fleet: LocalOrgFleet, name: str, log: Path) -> dg.DagsterRun:
    """Changes in four objects of org `name`, slow calls, and its incremental run once its first step committed."""
    org = fleet.org(name)
    org.set_faults(latency_seconds=0.4)  # every call slow: a run long enough to kill between its steps
    changes = {"Account": ("Name", "Changed"), "Contact": ("Title", "Chief Renewal Officer"),
               "Opportunity": ("Name", "Changed"), "Case": ("Status", "Closed")}
    for object_name, (field, value) in changes.items():
        ids = [r[0] for r in org.store.conn.execute(f'SELECT "Id" FROM "{object_name}" ORDER BY "Id" LIMIT 3').fetchall()]
        for rid in ids:
            org.update(object_name, rid, {field: value})
    org.create("Account", {"Name": "Created before the kill"})
    org.advance_clock(8)

    def first_step_done():
        for record in org_runs(instance, name):
            run = record.dagster_run
            if run.status == dg.DagsterRunStatus.STARTED and run.tags.get("sonora/sync_kind") == "incremental":
                if instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                    return run
        return None

    return wait_for(f"{name}'s incremental run's first committed step", first_step_done, 180, log, poll=0.2)


def retried_and_equal(deployment: Deployment, name: str, run: dg.DagsterRun, log: Path) -> dg.DagsterRun:
    """The failed run's retry succeeded, and the org's mirror equals the org (nothing lost or duplicated)."""
    instance = deployment.instance

    def retried():
        return [r for r in org_runs(instance, name) if r.dagster_run.tags.get("dagster/parent_run_id") == run.run_id
                and r.dagster_run.status == SUCCESS]

    retry = wait_for("the retry of the killed run", retried, 240, log, poll=1)[0].dagster_run
    assert retry.tags.get("dagster/retry_number") == "1"
    deployment.fleet.org(name).clear_faults()
    wait_for("no run in flight", lambda: not busy(instance), 120, log)
    assert overlaps(org_runs(instance, name)) == []
    assert mirror_problems(deployment.fleet, deployment.root, name) == []
    return retry


@pytest.fixture(scope="module")
def imported_orgs(tmp_path_factory) -> Iterator[Deployment]:
    """Tiny orgs imported by two workers (2 pool processes each) through the sensor and the run queue:
    one PostgreSQL, one Redis, one daemon and the two workers for the module's tests."""
    folder = tmp_path_factory.mktemp("distributed")
    saved = dict(os.environ)
    with (postgres_server() as pg, pgbouncer_server(pg) as bouncer, redis_server() as redis,
          LocalOrgFleet(tiny_specs(ORGS, records=10, custom_fields=False)) as fleet):
        for org in fleet:
            org.advance_clock(8)  # past the settings' 5 s lag
        pg.create_database("dagster")
        root, registry = folder / "orgs", folder / "orgs.yaml"
        settings = standard_settings(folder / "settings.yaml")
        write_registry(registry, fleet, {spec.name: settings for spec in fleet.specs}, root)
        home = distributed_home(folder)
        env = deployment_environment(registry, home, bouncer, "dagster", redis, TICK)
        try:
            with open_instance(home, env) as instance, running_deployment(folder, env, workers=2) as processes:
                started = time.monotonic()
                names = [spec.name for spec in fleet.specs]
                wait_for(f"{ORGS} initial imports", lambda: all(succeeded(instance, n) for n in names)
                         and not busy(instance), 900, folder / "daemon.log", describe=lambda: statuses(instance))
                yield Deployment(fleet, instance, processes, root, folder, time.monotonic() - started, env)
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.mark.timeout(1200)
def test_orgs_imported_by_two_celery_workers(imported_orgs):
    deployment, instance = imported_orgs, imported_orgs.instance
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"sonora/sync_kind": "initial"}))
    failed = [r.run_id for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    assert not failed, failed
    assert len(runs) == ORGS  # one initial import per org, none retried
    workers = {task_worker(instance, run) for run in runs}
    assert {w.split("@")[0] for w in workers if w} == {"worker1", "worker2"}, workers
    for name in deployment.names:
        assert overlaps(org_runs(instance, name)) == [], f"{name}: runs overlap"
        assert mirror_problems(deployment.fleet, deployment.root, name) == [], name
    print(f"{ORGS} orgs imported by 2 Celery workers in {deployment.imported_in:.0f} s")


def launch_resync(env: dict[str, str], org: str, since: str, cwd: Path) -> subprocess.Popen:
    """A re-sync of the org from `since` (a UTC day), queued as a person launches one from the command line."""
    tags = {"dagster/partition": org, "sonora/org": org, "sonora/resync_from": since, "sonora/trigger": "manual"}
    return subprocess.Popen([str(BIN / "dagster"), "job", "launch", "-w", str(ROOT / "workspace.yaml"), "-j",
                             "salesforce_sync_job", "--tags", json.dumps(tags)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.timeout(300)
def test_runs_of_one_org_contend_for_its_limit(imported_orgs):
    deployment, instance = imported_orgs, imported_orgs.instance
    log = deployment.folder / "daemon.log"
    before = {r.dagster_run.run_id for r in org_runs(instance, CONTESTED)}
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    launches = [launch_resync(deployment.env, CONTESTED, since, deployment.folder) for _ in range(2)]
    for launch in launches:
        output = launch.communicate(timeout=120)[0].decode(errors="replace")
        assert launch.returncode == 0, output[-2000:]

    def settled():
        records = [r for r in org_runs(instance, CONTESTED) if r.dagster_run.run_id not in before]
        manual = [r for r in records if r.dagster_run.tags.get("sonora/trigger") == "manual"]
        return records if len(manual) == 2 and all(r.dagster_run.is_finished for r in records) else None

    records = wait_for(f"{CONTESTED}'s re-syncs", settled, 240, log, describe=lambda: statuses(instance))
    assert all(r.dagster_run.status == SUCCESS for r in records), [(r.dagster_run.run_id, r.dagster_run.status)
                                                                  for r in records]
    assert overlaps(org_runs(instance, CONTESTED)) == []
    # Contended: a run was waiting in the queue (created) while another of the org ran, and started only
    # after that one ended.
    held = [(a.dagster_run.run_id, b.dagster_run.run_id) for a in records for b in records
            if a is not b and a.create_timestamp.timestamp() < b.end_time <= a.start_time]
    assert held, [(r.dagster_run.run_id, r.create_timestamp, r.start_time, r.end_time) for r in records]
    assert mirror_problems(deployment.fleet, deployment.root, CONTESTED) == []
    print(f"{len(records)} runs of {CONTESTED} ({len(held)} held by its limit) ran one at a time")


@pytest.mark.sigkill_trial
@pytest.mark.timeout(300)
def test_sigkill_of_the_pool_process_running_a_run(imported_orgs):
    """The run's process dies mid-run; Dagster's run monitoring (the Celery task's FAILURE state) fails it and
    run retries run it again: the org's mirror ends equal to the org."""
    deployment, instance = imported_orgs, imported_orgs.instance
    log = deployment.folder / "daemon.log"
    run = changed_and_running(instance, deployment.fleet, VICTIM, log)
    pid = run_worker_pid(instance, run.run_id)
    workers = {name: session_pids(p.pid) for name, p in deployment.processes.items() if name.startswith("worker")}
    owner = [name for name, pids in workers.items() if pid in pids]
    assert owner, (pid, workers)  # the pool process of a Celery worker, not some other process
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    failed = wait_for("the killed run marked failed", lambda: instance.get_run_by_id(run.run_id).status
                      == dg.DagsterRunStatus.FAILURE, 120, log, poll=0.5)
    detected_after = time.monotonic() - killed_at
    assert failed
    messages = [e.message or "" for e in instance.all_logs(run.run_id)]
    assert any("Detected run worker status" in m and "Celery task failed" in m for m in messages), messages[-10:]
    task = instance.run_launcher.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG])
    assert task.state == "FAILURE" and "WorkerLostError" in repr(task.result), (task.state, task.result)

    retry = retried_and_equal(deployment, VICTIM, run, log)
    print(f"pool process {pid} of {owner[0]} killed; run failed by run monitoring {detected_after:.1f} s later, "
          f"retried as {retry.run_id} on {task_worker(instance, retry)}")


@pytest.mark.sigkill_trial
@pytest.mark.timeout(400)
def test_sigkill_of_a_whole_worker_needs_the_maximum_runtime(imported_orgs):
    deployment, instance = imported_orgs, imported_orgs.instance
    log = deployment.folder / "daemon.log"
    run = changed_and_running(instance, deployment.fleet, LOST_WITH_ITS_WORKER, log)
    pid = run_worker_pid(instance, run.run_id)
    owner = [name for name, p in deployment.processes.items() if name.startswith("worker") and pid in session_pids(p.pid)]
    assert owner, pid
    os.killpg(deployment.processes[owner[0]].pid, signal.SIGKILL)  # dagster-celery, celery's main process, its pool
    killed_at = time.monotonic()
    task = instance.run_launcher.celery.AsyncResult(run.tags[DAGSTER_CELERY_TASK_ID_TAG])
    # Monitoring polls later (5 s each) the task is still STARTED and the run still running.
    time.sleep(2 * MONITORING_POLL_SECONDS)
    assert task.state == "STARTED"
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    # What ends it is the maximum runtime (instance-wide in dagster.yaml; this run's own tag, lowered here).
    instance.add_run_tags(run.run_id, {"dagster/max_runtime_seconds": "1"})
    wait_for("the lost run failed by its maximum runtime", lambda: instance.get_run_by_id(run.run_id).status
             == dg.DagsterRunStatus.FAILURE, 120, log, poll=0.5)
    # Its retry copies the run's tags: the stand-in limit is lifted from it before it starts (0: none).
    queued = wait_for("the lost run's retry", lambda: [r for r in org_runs(instance, LOST_WITH_ITS_WORKER)
                      if r.dagster_run.tags.get("dagster/parent_run_id") == run.run_id], 60, log, poll=0.1)
    instance.add_run_tags(queued[0].dagster_run.run_id, {"dagster/max_runtime_seconds": "0"})
    messages = [e.message or "" for e in instance.all_logs(run.run_id)]
    assert any("Exceeded maximum runtime" in m for m in messages), messages[-10:]
    retry = retried_and_equal(deployment, LOST_WITH_ITS_WORKER, run, log)
    survivor = task_worker(instance, retry)
    assert survivor and not survivor.startswith(owner[0] + "@")
    print(f"{owner[0]} killed whole: task still STARTED after {time.monotonic() - killed_at:.0f} s until the "
          f"run's maximum runtime failed it; retried on {survivor}")
