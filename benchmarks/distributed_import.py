"""The same many-org import on Dagster's distributed deployment (deploy/distributed/dagster.yaml: PostgreSQL
storage, Celery run launcher on Redis) with 1 and with 2 `dagster-celery` workers, then orgs per worker-hour
projected for 1,000 orgs synced hourly.

    .venv/bin/python benchmarks/distributed_import.py --orgs 20 --records 100

Each phase: a throwaway PostgreSQL database and Redis (sonora_pipeline_tests/services.py), `sonora-pipeline
localorg --orgs N` in its own process, a registry (initial_import all, lag 5 s), a DAGSTER_HOME with the
distributed dagster.yaml (max_concurrent_runs set to the phase's worker slots), W workers started as the README
gives it (`--concurrency 2` each: one worker = one 2-core machine's worth), `dagster-daemon run` with the
sensor on. The phase ends when every org has a successful run. Printed:

  wall        daemon start -> last run ended
  runs/min    runs / (first run started -> last run ended)
  CPU/run     CPU seconds of the worker processes (celery main + pool processes) per run, of the daemon
              (sensor, queue, monitoring, its code server) per run, and of PostgreSQL and PgBouncer, from /proc
  per run     queued (created -> started) and run (started -> ended), mean / max
  projection  runs one worker completes per hour at the measured rate, and workers needed for 1,000 orgs
              synced hourly (an hourly incremental run has the same steps as these small imports: the objects
              with changes and the customer model; its fixed cost per run dominates at these sizes)

On this machine both workers share the same 2 cores: a second worker adds slots, not CPU, so expect
little gain; the projection uses the CPU per run, which is what a worker on its own machine spends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from orgs_common import (  # noqa: E402
    BIN,
    ROOT,
    environment,
    load_average,
    start_fleet,
    stop,
    write_registry,
)

from sonora_pipeline_tests.services import pgbouncer_server, postgres_server, redis_server  # noqa: E402

SETTINGS = {"sync": {"initial_import": "all", "lag_seconds": 5}}
DEPLOY = ROOT / "deploy" / "distributed"
CONCURRENCY = 2
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        try:
            todo.extend(int(p) for p in Path(f"/proc/{current}/task/{current}/children").read_text().split())
        except OSError:
            pass
    return found


def cpu_seconds(pids: set[int]) -> float:
    """utime+stime of each process, plus cutime+cstime (its children already reaped)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(v) for v in fields[11:15])
    return total / TICKS_PER_SECOND


def servers_cpu_seconds(pg, storage) -> float:
    """CPU of PostgreSQL (the postmaster and every backend it forked, live or reaped) and of PgBouncer."""
    total = cpu_seconds(tree(pg.server_pid))
    return total + (cpu_seconds(tree(storage.pid)) if storage is not pg else 0.0)


def start_worker(name: str, env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    out = open(log, "wb")
    worker = subprocess.Popen([str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y",
                               str(DEPLOY / "celery-worker.yaml"), "-q", "dagster", "-n", name, "--",
                               "--concurrency", str(CONCURRENCY)], cwd=cwd, env=env, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while " ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    return worker


def phase(work: Path, pg, storage, redis, workers: int, orgs: int, records: int, timeout: float) -> dict:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    work.mkdir(parents=True)
    database = pg.create_database(f"bench_{workers}")
    redis_db = 2 * workers
    fleet, _ = start_fleet(work / "fleet", orgs, records)
    started_processes: list[subprocess.Popen] = []
    try:
        registry = write_registry(work / "fleet", work / "warehouses", SETTINGS)
        home = work / "dagster_home"
        home.mkdir()
        config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
        config["concurrency"]["runs"]["max_concurrent_runs"] = workers * CONCURRENCY  # every slot, no more
        (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        env = environment(registry, home, SONORA_AUTOMATION="on", SONORA_TICK_SECONDS="5")
        env.update({"SONORA_DAGSTER_PG_URL": storage.url(database), "SONORA_CELERY_BROKER": redis.url(redis_db),
                    "SONORA_CELERY_BACKEND": redis.url(redis_db + 1),
                    "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])})
        os.environ.update({k: env[k] for k in ("SONORA_DAGSTER_PG_URL", "SONORA_CELERY_BROKER",
                                               "SONORA_CELERY_BACKEND")})
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:  # schema before the others
            pools = [start_worker(f"worker{i}", env, work / f"worker{i}.log", work) for i in range(1, workers + 1)]
            started_processes += pools
            time.sleep(6)  # the orgs' records are older than the settings' 5 s lag
            servers_before = servers_cpu_seconds(pg, storage)
            started = time.time()
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                      cwd=work, env=env, stdout=open(work / "daemon.log", "wb"),
                                      stderr=subprocess.STDOUT, start_new_session=True)
            started_processes.append(daemon)
            deadline = time.monotonic() + timeout
            while True:
                done = [r for r in instance.get_run_records() if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
                if len({r.dagster_run.tags.get("dagster/partition") for r in done}) >= orgs:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(done)}/{orgs} orgs imported within {timeout:.0f} s")
                time.sleep(2)
            worker_cpu = sum(cpu_seconds(tree(p.pid)) for p in pools)
            daemon_cpu = cpu_seconds(tree(daemon.pid))
            servers_cpu = servers_cpu_seconds(pg, storage) - servers_before
            runs = instance.get_run_records()
            failed = [r for r in runs if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
            # Each org's import: its first successful run (the sensor may already have asked for a second,
            # incremental one: the records newer than the lag at import time). CPU is shared by every run
            # that started.
            first: dict[str, object] = {}
            for r in sorted(done, key=lambda r: r.start_time):
                first.setdefault(r.dagster_run.tags.get("dagster/partition"), r)
            done = list(first.values())
            started_runs = len([r for r in runs if r.start_time])
            first_start = min(r.start_time for r in done)
            last_end = max(r.end_time for r in done)
            return {"workers": workers, "orgs": orgs, "runs": len(runs), "started_runs": started_runs,
                    "failed": len(failed),
                    "wall_s": last_end - started, "busy_s": last_end - first_start,
                    "worker_cpu_s": worker_cpu, "daemon_cpu_s": daemon_cpu, "servers_cpu_s": servers_cpu,
                    "queued": [r.start_time - r.create_timestamp.timestamp() for r in done],
                    "run": [r.end_time - r.start_time for r in done]}
    finally:
        for process in reversed(started_processes):
            stop(process)
        stop(fleet)


def report(result: dict) -> None:
    runs = result["orgs"]
    rate = runs / result["busy_s"] * 60
    print(f"\n{result['workers']} worker(s) x {CONCURRENCY} pool processes, {runs} orgs "
          f"({result['runs']} runs, {result['failed']} failed and retried)")
    print(f"  wall {result['wall_s']:.0f} s (daemon start -> last run ended); {rate:.1f} runs/min while busy")
    print(f"  per run, mean / max (s): queued {statistics.mean(result['queued']):.1f} / {max(result['queued']):.1f}"
          f" | run {statistics.mean(result['run']):.1f} / {max(result['run']):.1f}")
    started = result["started_runs"]
    print(f"  CPU per run ({started} runs started): workers {result['worker_cpu_s'] / started:.1f} s, "
          f"daemon {result['daemon_cpu_s'] / started:.1f} s, PostgreSQL (and PgBouncer) "
          f"{result['servers_cpu_s'] / started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--direct", action="store_true",
                        help="Dagster's storage straight to PostgreSQL (a server process forked per query) instead of "
                             "through PgBouncer, as the README advises")
    args = parser.parse_args()
    print(f"load average before: {load_average()} ({os.cpu_count()} cores)", flush=True)
    results = []
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sonora-distributed-"))
        pg = stack.enter_context(postgres_server())
        storage = pg if args.direct else stack.enter_context(pgbouncer_server(pg))
        redis = stack.enter_context(redis_server())
        print(f"Dagster's storage: {'PostgreSQL directly' if args.direct else 'through PgBouncer'}", flush=True)
        for workers in args.workers:
            results.append(phase(Path(tmp) / f"w{workers}", pg, storage, redis, workers, args.orgs, args.records,
                                 args.timeout))
            report(results[-1])
            print(f"load average: {load_average()}", flush=True)
    one = results[0]
    cpu_per_run = one["worker_cpu_s"] / one["started_runs"]
    measured = one["orgs"] / one["busy_s"] * 3600 / one["workers"]
    by_cpu = CONCURRENCY * 3600 / cpu_per_run  # a worker alone on its 2 cores, CPU-bound
    print("\nprojection for 1,000 orgs synced hourly (1,000 runs/hour):")
    print(f"  measured here: {measured:.0f} runs per worker-hour -> {1000 / measured:.1f} workers")
    print(f"  from CPU per run ({cpu_per_run:.1f} s) on a worker's own {CONCURRENCY} cores: {by_cpu:.0f} runs per "
          f"worker-hour -> {1000 / by_cpu:.1f} workers (plus the daemon: "
          f"{one['daemon_cpu_s'] / one['started_runs'] * 1000 / 3600:.2f} cores for 1,000 runs/hour at this tick)")


if __name__ == "__main__":
    main()
