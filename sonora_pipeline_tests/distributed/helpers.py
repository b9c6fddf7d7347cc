"""The distributed deployment for the tests, as `deploy/distributed/` describes it: a DAGSTER_HOME holding that
dagster.yaml (PostgreSQL storage, Celery run launcher on Redis, run monitoring), `dagster-celery` workers
started with deploy/distributed/celery-worker.yaml, and the daemon. Every process gets the same environment
(the registry, the instance, the servers' URLs), as every machine of a real deployment would."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from sonora_pipeline_tests.orgs.helpers import environment
from sonora_pipeline_tests.services import PgBouncer, Postgres, Redis
from sonora_pipeline_tests.test_dagster_ui import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "distributed"
BIN = Path(sys.executable).parent
WORKER_READY_SECONDS = 60


def deployment_environment(registry: Path, home: Path, pg: Postgres | PgBouncer, database: str, redis: Redis,
                           tick_seconds: int) -> dict[str, str]:
    """What every process of the deployment is given: the orgs, the instance and where its servers are (Dagster's
    storage through PgBouncer, as the README advises: dagster-postgres opens a connection per query)."""
    env = environment(registry, home, tick_seconds)
    env.update({"SONORA_DAGSTER_PG_URL": pg.url(database), "SONORA_CELERY_BROKER": redis.url(0),
                "SONORA_CELERY_BACKEND": redis.url(1),
                # dagster-celery starts `celery` from PATH
                "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")])})
    return env


def distributed_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home


def open_instance(home: Path, env: dict[str, str]) -> dg.DagsterInstance:
    """The instance, opened here first so its PostgreSQL schema exists before the daemon and workers start
    (the `env:` values of dagster.yaml resolve from this process's environment)."""
    for key in ("SONORA_DAGSTER_PG_URL", "SONORA_CELERY_BROKER", "SONORA_CELERY_BACKEND"):
        os.environ[key] = env[key]
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def start_worker(name: str, env: dict[str, str], log: Path, cwd: Path, concurrency: int = 2) -> subprocess.Popen:
    """`dagster-celery worker start` as the README gives it, in its own session (so the test can stop it
    whole); waits until Celery says it is ready."""
    with open(log, "wb") as out:
        worker = subprocess.Popen([str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                   "-y", str(DEPLOY / "celery-worker.yaml"), "-q", "dagster", "-n", name,
                                   "--", "--concurrency", str(concurrency)],
                                  cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return worker
        if worker.poll() is not None:
            break
        time.sleep(0.2)
    stop_process_group(worker)
    raise RuntimeError(f"Celery worker {name} did not start: {log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def running_deployment(tmp_path: Path, env: dict[str, str], workers: int = 2,
                       concurrency: int = 2) -> Iterator[dict[str, subprocess.Popen]]:
    """Workers `worker1..N` then `dagster-daemon run`; all stopped (their whole sessions) at the end."""
    started: dict[str, subprocess.Popen] = {}
    try:
        for i in range(1, workers + 1):
            name = f"worker{i}"
            started[name] = start_worker(name, env, tmp_path / f"{name}.log", tmp_path, concurrency)
        with open(tmp_path / "daemon.log", "wb") as out:
            started["daemon"] = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w",
                                                  str(ROOT / "workspace.yaml")], cwd=tmp_path, env=env, stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        yield started
    finally:
        for process in reversed(started.values()):
            stop_process_group(process)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def session_pids(leader: int) -> set[int]:
    """Every process below `leader` (dagster-celery -> celery main -> pool processes)."""
    found, todo = set(), [leader]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children(pid))
    return found


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process executing the run, from its "Started process for run (pid: N)." event."""
    for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        message = event.message or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].split(")")[0])
    return None
