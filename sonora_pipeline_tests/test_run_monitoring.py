"""The project's instance settings against a run worker that died unseen: Dagster's default run launcher cannot
tell that a run's process is gone (SIGKILL, out of memory), so its run stays STARTED and, holding the
`duckdb_writer` pool, would keep every later writing run queued. With the project's `dagster.yaml`, the
daemon's run monitoring ends such a run once it is past its maximum runtime, which frees the pool.

The run here has no worker at all (started, then nothing), and its maximum runtime is cut to seconds by
Dagster's own `dagster/max_runtime` tag, so the test takes the daemon's start and a few polls, not 6 hours."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.instance.ref import InstanceRef

from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline_tests.test_dagster_ui import dagster_home, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
GIVE_UP_SECONDS = 120  # the daemon's start and a few monitoring polls on a loaded 2-core machine


@dg.op(pool=DUCKDB_WRITER)
def commit_something() -> None:
    """Stands for any warehouse writer: only its pool matters here."""


@dg.job
def writing_job():
    commit_something()


def test_a_run_whose_worker_died_is_ended_and_frees_the_writer_pool(tmp_path):
    home = dagster_home(tmp_path)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_runtime_seconds"] >= 3600  # a real import is never cut short
    config["run_monitoring"]["poll_interval_seconds"] = 1  # test time; the limits are the project's
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    run = instance.create_run_for_job(writing_job, tags={"dagster/max_runtime": "3"})
    instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name),
                                  run_id=run.run_id)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # and no process behind it

    env = {**os.environ, "DAGSTER_HOME": str(home)}
    daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "--empty-workspace"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            status = instance.get_run_by_id(run.run_id).status
            if status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
                break
            time.sleep(1)
    finally:
        stop_process_group(daemon)
    assert status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED), \
        f"the dead run is still {status.value} after {GIVE_UP_SECONDS} s"
    in_progress = instance.get_run_records(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]))
    assert not in_progress  # nothing holds the pool: the next writing run can leave the queue
    messages = [e.message or "" for e in instance.all_logs(run.run_id)]
    assert any("maximum runtime" in m for m in messages), messages
