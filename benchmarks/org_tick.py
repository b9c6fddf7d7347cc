"""The `salesforce_changes` sensor with a registry of N orgs (multi-org mode): the first tick (adds the N
partitions, asks every org) and a no-change tick, against ONE local org process serving all N orgs.

    .venv/bin/python benchmarks/org_tick.py --orgs 100 1000

For each N:
  1. `sonora-pipeline localorg --orgs N --records 20 --fleet-dir DIR` in its own process (one port per org).
  2. Mirrors with committed cursors, seeded honestly but not N times: org 1 is synced with the product's own
     `sonora-pipeline sync` (single-org mode, its SALESFORCE_* variables, every object, initial import all).
     The fleet's orgs of one seed and shape serve the same records (the same Ids and SystemModstamps), so
     that file is then copied into every other org's folder (`<warehouse_root>/<org>/warehouse.duckdb`):
     each org's committed cursors are then exactly those a sync of it would have committed.
  3. In a child Python with SONORA_ORGS set (multi-org definitions are decided at import) and a fresh
     DAGSTER_HOME holding the project's dagster.yaml (SQLite run/event storage): load the definitions, and
     evaluate the sensor twice with `build_sensor_context(instance=..., definitions=...)`, the cursor of the
     first tick passed to the second. Each tick is timed around the evaluation; the process's peak RSS is
     its VmHWM.
  4. API calls per org: each org's `api_usage.used` from its admin API (`POST /__localorg/state` on its own
     port) before and after each tick (admin calls are not charged).
Goals (issue #13): ≤ 1 API call per org per tick, 0 runs requested on the no-change tick, and the tick well
inside Dagster's 60 s sensor timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orgs_common import (  # noqa: E402
    FleetAdmin,
    dagster_home,
    environment,
    load_average,
    start_fleet,
    stop,
    write_registry,
)

SETTINGS = {"sync": {"initial_import": "all", "lag_seconds": 5}}


def json_line(stream) -> dict | None:
    """The child's next JSON line (anything else a library prints to stdout is passed through)."""
    for line in stream:
        if line.startswith("{"):
            return json.loads(line)
        print("  (sensor process) " + line.rstrip())
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed_first_org(work: Path, fleet_dir: Path, name: str) -> tuple[Path, float]:
    """`sonora-pipeline sync` of one org (single-org mode), into a file of its own; returns (file, seconds)."""
    from sonora_pipeline.salesforce.environment import ENVIRONMENT

    credentials = json.loads((fleet_dir / f"{name}.json").read_text())
    db = work / "seed" / "warehouse.duckdb"
    db.parent.mkdir(parents=True)
    home = work / "seed" / "dagster_home"
    home.mkdir()
    env = environment(None, home, SONORA_DUCKDB_PATH=str(db), SONORA_CONFIG=str(fleet_dir / "bench-settings.yaml"))
    env.update({ENVIRONMENT[field]: credentials[field] for field in ENVIRONMENT})
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "sync", "--quiet"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"seeding sync of {name} failed: {done.stderr[-3000:]}")
    return db, time.perf_counter() - started


CHILD = r'''
import json, sys, time, os
from pathlib import Path
import dagster as dg
from dagster._core.instance.ref import InstanceRef
started = time.perf_counter()
from sonora_pipeline.definitions import defs as lazy_defs
from sonora_pipeline.defs.orgs import MULTI_ORG
assert MULTI_ORG, "SONORA_ORGS was not seen at import"
defs = lazy_defs()
repo = defs.get_repository_def()
sensor = repo.get_sensor_def("salesforce_changes")
resources = repo.get_top_level_resources()
load_s = time.perf_counter() - started
ticks = []
with dg.DagsterInstance.from_ref(InstanceRef.from_dir(os.environ["DAGSTER_HOME"])) as instance:
    cursor = None
    for label in ("first", "no-change"):
        sys.stdout.write(json.dumps({"ready": label}) + "\n"); sys.stdout.flush()
        sys.stdin.readline()  # the parent has read every org's usage
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                  repository_def=repo) as context:
            t0, c0 = time.perf_counter(), time.process_time()
            data = sensor.evaluate_tick(context)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        for request in data.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        cursor = data.cursor
        hwm = next(int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        skip = data.skip_message or ""
        sys.stdout.write(json.dumps({"tick": label, "seconds": seconds, "cpu_s": cpu, "runs": len(data.run_requests or []),
                                     "partitions": len(instance.get_dynamic_partitions("salesforce_orgs")),
                                     "peak_rss_mb": hwm, "summary": skip[:300] }) + "\n")
        sys.stdout.flush()
profiled = int(os.environ.get("BENCH_PROFILE", "0"))
if profiled:
    # Where one org's share of a tick goes, in CPU seconds of this process (load-independent): the tick's own
    # check_org, one org after another in this thread, under cProfile with a CPU clock.
    import cProfile, io, pstats
    from sonora_pipeline.defs.salesforce.org_changes import check_org
    from sonora_pipeline.defs.orgs import current_registry
    orgs = list(current_registry().orgs)[:profiled]
    with dg.build_sensor_context(resources=resources, repository_def=repo) as context:
        salesforce, warehouse, settings = (context.resources.salesforce, context.resources.warehouse,
                                           context.resources.settings)
        log = dg.get_dagster_logger()
        profile = cProfile.Profile(time.process_time)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        profile.enable()
        for org in orgs:
            check_org(org, salesforce, warehouse, settings, log)
        profile.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        salesforce.close()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(40)
    (Path(os.environ["BENCH_WORK"]) / "profile.txt").write_text(
        f"{len(orgs)} orgs checked one after another: {cpu / len(orgs) * 1000:.1f} ms CPU and "
        f"{wall / len(orgs) * 1000:.1f} ms wall per org\n" + text.getvalue())
sys.stdout.write(json.dumps({"load_s": load_s}) + "\n")
'''


def measure(orgs: int, records: int, work: Path, profile: int = 0) -> dict:
    fleet_dir = work / "fleet"
    fleet, fleet_s = start_fleet(fleet_dir, orgs, records)
    try:
        admin = FleetAdmin(fleet_dir)
        root = work / "warehouses"
        registry = write_registry(fleet_dir, root, SETTINGS)
        names = list(admin.orgs)
        time.sleep(6)  # the orgs' records are older than the settings' 5 s lag
        seed, seed_s = seed_first_org(work, fleet_dir, names[0])
        t0 = time.perf_counter()
        for name in names:
            (root / name).mkdir(parents=True)
            shutil.copyfile(seed, root / name / "warehouse.duckdb")
        copy_s = time.perf_counter() - t0
        home = dagster_home(work)
        child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=work, env=environment(registry, home, BENCH_PROFILE=str(profile), BENCH_WORK=str(work)),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(work / "child.log", "w"),
                                 text=True)
        ticks = []
        for _ in range(2):
            ready = json_line(child.stdout)
            if not ready:
                raise RuntimeError(f"the sensor process ended: {(work / 'child.log').read_text()[-3000:]}")
            before, fleet_cpu = admin.usage(), cpu_seconds(fleet.pid)
            child.stdin.write("\n")
            child.stdin.flush()
            tick = json_line(child.stdout)
            if not tick:
                raise RuntimeError(f"the sensor process ended: {(work / 'child.log').read_text()[-3000:]}")
            tick["fleet_cpu_s"] = cpu_seconds(fleet.pid) - fleet_cpu
            after = admin.usage()
            tick["calls"] = Counter(after[n] - before[n] for n in names)
            ticks.append(tick)
        load = json_line(child.stdout)
        child.wait(timeout=600)
        if profile:
            report = work / "profile.txt"
            print(report.read_text()[:6000] if report.exists() else (work / "child.log").read_text()[-3000:])
        return {"orgs": orgs, "fleet_start_s": fleet_s, "seed_s": seed_s, "copy_s": copy_s, "ticks": ticks, **load}
    finally:
        stop(fleet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="after the ticks, profile K orgs' checks one by one (CPU time) and print it")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    results = []
    for orgs in args.orgs:
        print(f"\n{orgs} orgs (load average {load_average()}, 2 cores)", flush=True)
        with tempfile.TemporaryDirectory(prefix="sonora-org-tick-") as tmp:
            r = measure(orgs, args.records, Path(tmp), args.profile)
        results.append(r)
        print(f"  fleet started in {r['fleet_start_s']:.1f} s; org 1 synced by `sonora-pipeline sync` in "
              f"{r['seed_s']:.1f} s, its file copied into the other {orgs - 1} orgs' folders in {r['copy_s']:.1f} s "
              "(same seed and shape: same records, so the same committed cursors)")
        print(f"  definitions loaded in {r['load_s']:.1f} s (sensor process)")
        for tick in r["ticks"]:
            calls = ", ".join(f"{n} call(s): {c} org(s)" for n, c in sorted(tick["calls"].items()))
            print(f"  {tick['tick']:>9} tick: {tick['seconds']:6.2f} s wall, {tick.get('cpu_s', 0):.2f} s CPU in the "
                  f"sensor process, {tick.get('fleet_cpu_s', 0):.2f} s CPU in the local org process, "
                  f"{tick['runs']} run(s) requested, "
                  f"{tick['partitions']} partitions; API calls per org: {calls}; sensor process peak RSS "
                  f"{tick['peak_rss_mb']} MB", flush=True)
            print(f"            {tick['summary']}")
        print(f"  load average after: {load_average()}")
        no_change = r["ticks"][1]
        ok = max(no_change["calls"]) <= 1 and no_change["runs"] == 0 and no_change["seconds"] < 30
        print(f"  goals (≤ 1 call per org, 0 runs, well inside 60 s): {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
