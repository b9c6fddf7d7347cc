"""Initial import of many orgs through Dagster (the real `dagster-daemon run`: sensor, run queue, run workers)
against one local org process serving them all, vs the same number of records as ONE org (one run).

    .venv/bin/python benchmarks/org_import.py --orgs 100 --records 5000     # the issue's size (slow on 2 cores)
    .venv/bin/python benchmarks/org_import.py --orgs 40 --records 5000      # smaller, then extrapolate

Each phase: `sonora-pipeline localorg --orgs N --records R` in its own process, a registry naming its orgs
(settings: initial_import all, lag 5 s), a fresh DAGSTER_HOME with the project's dagster.yaml (run queue:
4 runs at once, one per org), `dagster-daemon run` with SONORA_AUTOMATION=on and SONORA_TICK_SECONDS=5.
The sensor adds the partitions and requests each org's initial import; the phase ends when every org has a
successful run. Printed:

  wall          daemon start -> last org's run ended (the daemon's own start-up included)
  per run       queue wait (created -> started), run (started -> ended), start-up (run started -> its first
                step started: run worker process, code load, resources) and the time in its steps, from the
                run storage's timestamps and step stats; mean / max over the orgs
  overhead      per org: (N-org wall - 1-org wall) / N, and the mean run time minus the 1-org run's time / N
  peak memory   VmHWM of each Dagster process (daemon, code server, run workers) sampled from /proc every
                0.5 s; run workers: the largest one
  API calls     per org, from each org's own `api_usage` (the allowance Salesforce charges)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orgs_common import (  # noqa: E402
    BIN,
    ROOT,
    FleetAdmin,
    dagster_home,
    environment,
    load_average,
    proc_status,
    role,
    session_processes,
    start_fleet,
    stop,
    write_registry,
)

SETTINGS = {"sync": {"initial_import": "all", "lag_seconds": 5}}


class MemorySampler(threading.Thread):
    """Peak VmHWM per process of the daemon's session, by role, sampled every 0.5 s until stopped."""

    def __init__(self, sid: int):
        super().__init__(daemon=True)
        self.sid, self.peaks, self.roles = sid, {}, {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            for pid, cmdline in session_processes(self.sid).items():
                hwm = proc_status(pid).get("VmHWM")
                if hwm:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                    self.roles.setdefault(pid, role(cmdline))

    def by_role(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for pid, peak in self.peaks.items():
            entry = out.setdefault(self.roles[pid], {"processes": 0, "peak_mb": 0})
            entry["processes"] += 1
            entry["peak_mb"] = max(entry["peak_mb"], peak)
        return out


def failure_text(instance, run_id: str) -> str:
    """The first failure message of a run's events (a step's refusal, or the run's own failure)."""
    for event in instance.all_logs(run_id):
        dagster_event = event.dagster_event
        if dagster_event is not None and dagster_event.is_failure:
            data = dagster_event.event_specific_data
            error = getattr(data, "error", None)
            return (error.message if error else event.message or "").strip().splitlines()[0][:400]
    return "(no failure event)"


def phase(work: Path, orgs: int, records: int, timeout: float) -> dict:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    fleet, fleet_s = start_fleet(work / "fleet", orgs, records)
    try:
        admin = FleetAdmin(work / "fleet")
        counts = admin.call(next(iter(admin.orgs)), "state")["records"]
        registry = write_registry(work / "fleet", work / "warehouses", SETTINGS)
        before = admin.usage()
        home = dagster_home(work)
        time.sleep(6)  # the orgs' records are older than the settings' 5 s lag
        log = open(work / "daemon.log", "wb")
        started = time.time()
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")], cwd=work,
                                  env=environment(registry, home, SONORA_AUTOMATION="on", SONORA_TICK_SECONDS="5"),
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = MemorySampler(daemon.pid)
        sampler.start()
        try:
            with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                deadline = time.monotonic() + timeout
                failures: dict[str, str] = {}
                while True:
                    records_ = instance.get_run_records()
                    done = {r.dagster_run.tags.get("dagster/partition") for r in records_
                            if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS}
                    failed = [r for r in records_ if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
                    for r in failed:
                        if r.dagster_run.run_id not in failures:
                            failures[r.dagster_run.run_id] = failure_text(instance, r.dagster_run.run_id)
                            print(f"  run {r.dagster_run.run_id} of {r.dagster_run.tags.get('dagster/partition')} "
                                  f"failed (run_retries retries it once): {failures[r.dagster_run.run_id]}",
                                  flush=True)
                    if len(done) >= orgs:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {len(done)}/{orgs} orgs imported within {timeout:.0f} s")
                    time.sleep(2)
                runs = [r for r in instance.get_run_records() if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
                first = {}
                for r in sorted(runs, key=lambda r: r.create_timestamp.timestamp()):
                    first.setdefault(r.dagster_run.tags.get("dagster/partition"), r)
                rows = []
                for org, r in first.items():
                    steps = instance.get_run_step_stats(r.dagster_run.run_id)
                    step_start = min(s.start_time for s in steps if s.start_time)
                    step_seconds = sum((s.end_time or 0) - (s.start_time or 0) for s in steps)
                    rows.append({"org": org, "queued_s": r.start_time - r.create_timestamp.timestamp(),
                                 "run_s": r.end_time - r.start_time, "startup_s": step_start - r.start_time,
                                 "steps_s": step_seconds, "steps": len(steps), "end": r.end_time})
                wall = max(row["end"] for row in rows) - started
                first_created = min(r.create_timestamp.timestamp() for r in first.values()) - started
        finally:
            sampler.done.set()
            sampler.join()
            stop(daemon)
        after = admin.usage()
        calls = [after[n] - before[n] for n in after]
        sizes = {k: v for k, v in counts.items() if v}
        return {"orgs": orgs, "records_per_org": sum(sizes.values()), "fleet_start_s": round(fleet_s, 1),
                "wall_s": round(wall, 1), "first_run_created_s": round(first_created, 1), "runs": rows,
                "memory": sampler.by_role(), "api_calls_per_org": calls, "failed_runs": failures}
    finally:
        stop(fleet)


def summary(label: str, result: dict) -> None:
    rows = result["runs"]

    def stat(key: str) -> str:
        values = [row[key] for row in rows]
        return f"{statistics.mean(values):6.1f} / {max(values):6.1f}"

    print(f"\n{label}: {result['orgs']} org(s) x {result['records_per_org']:,} records "
          f"(fleet started in {result['fleet_start_s']} s)")
    print(f"  wall (daemon start -> last import ended): {result['wall_s']} s; first run created "
          f"{result['first_run_created_s']} s after daemon start")
    print("  per run, mean / max (s): queued " + stat("queued_s") + " | run " + stat("run_s") + " | start-up "
          + stat("startup_s") + " | in steps " + stat("steps_s") + f" | steps per run {rows[0]['steps']}")
    if result["failed_runs"]:
        print(f"  {len(result['failed_runs'])} run(s) failed and were retried (dagster.yaml run_retries)")
    calls = result["api_calls_per_org"]
    print(f"  API calls per org: mean {statistics.mean(calls):.1f}, min {min(calls)}, max {max(calls)} "
          "(sensor probes + the run's describes, counts and queries)")
    for name, entry in sorted(result["memory"].items()):
        print(f"  peak RSS {name:<12} {entry['peak_mb']:5d} MB  ({entry['processes']} process(es))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--only", choices=("many", "one"), help="run one phase only")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    print(f"load average before: {load_average()} (2 cores)", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="sonora-org-import-") as tmp:
        if args.only != "one":
            results["many"] = phase(Path(tmp) / "many", args.orgs, args.records, args.timeout)
            summary("many orgs", results["many"])
            print(f"load average: {load_average()}", flush=True)
        if args.only != "many":
            results["one"] = phase(Path(tmp) / "one", 1, args.orgs * args.records, args.timeout)
            summary("one org, the same records", results["one"])
            print(f"load average: {load_average()}", flush=True)
    if "many" in results and "one" in results:
        many, one = results["many"], results["one"]
        per_org = (many["wall_s"] - one["wall_s"]) / many["orgs"]
        run_mean = statistics.mean(r["run_s"] for r in many["runs"])
        one_run = one["runs"][0]["run_s"]
        print(f"\nper-org overhead: (wall {many['wall_s']} s - {one['wall_s']} s) / {many['orgs']} = {per_org:.2f} s "
              f"of wall per org; a run of one org takes {run_mean:.1f} s vs {one_run / many['orgs']:.2f} s of "
              f"the big run's time per org's share ({run_mean - one_run / many['orgs']:.1f} s fixed cost per run, "
              "paid 4 at a time)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
