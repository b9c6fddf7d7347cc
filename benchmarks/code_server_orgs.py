"""The code location's load time and memory with a registry of 1,000 orgs (and 1,000 org partitions in the
instance) vs one org: the org list is not structure, so neither should grow with it.

    .venv/bin/python benchmarks/code_server_orgs.py              # 1,000 orgs
    .venv/bin/python benchmarks/code_server_orgs.py --orgs 5000

Cases, each in FRESH processes (best of --repeat, figures of that run):
  single-org       no SONORA_ORGS (today's deployment)
  registry, 3      SONORA_ORGS naming 3 orgs, no partitions in the instance
  registry, N      SONORA_ORGS naming N orgs, no partitions
  registry, N + N partitions   the same, the instance holding N `salesforce_orgs` partitions (what the
                   sensor adds)
Measured per case:
  load      a child Python: import `sonora_pipeline.definitions`, build the Definitions, resolve the
            repository (every job and asset graph) and its snapshot (`RepositorySnap.from_def`: what a code
            server sends the webserver and the daemon); seconds of each part, the snapshot's serialized size,
            and the child's peak RSS (resource.getrusage ru_maxrss).
  validate  `dagster definitions validate -w workspace.yaml` with the case's DAGSTER_HOME (the CLI a deploy
            runs): wall seconds and the peak RSS of the process (ru_maxrss of the child, via os.wait4).
Registry entries take their secrets from variables (`credentials: {env: ...}`) that are unset: loading the
definitions must read neither the list nor any secret.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orgs_common import BIN, ROOT, dagster_home, environment, load_average  # noqa: E402

CHILD = r'''
import json, resource, time
t0 = time.perf_counter()
import dagster as dg
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value
t1 = time.perf_counter()
from sonora_pipeline.definitions import defs as lazy_defs
from sonora_pipeline.defs.orgs import MULTI_ORG
defs = lazy_defs()
t2 = time.perf_counter()
repo = defs.get_repository_def()
snap = RepositorySnap.from_def(repo)
size = len(serialize_value(snap))
t3 = time.perf_counter()
print(json.dumps({"multi_org": MULTI_ORG, "dagster_import_s": t1 - t0, "definitions_s": t2 - t1,
                  "repository_s": t3 - t2, "total_s": t3 - t0, "snapshot_bytes": size,
                  "assets": len(list(repo.asset_graph.get_all_asset_keys())), "jobs": len(repo.get_all_jobs()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
'''


def write_registry(path: Path, orgs: int) -> Path:
    path.parent.mkdir(parents=True)
    width = len(str(orgs))
    entries = {f"org{i:0{width}d}": {"instance_url": f"https://org{i:0{width}d}.my.salesforce.com",
                                    "credentials": {"env": f"ORG{i:0{width}d}"}} for i in range(1, orgs + 1)}
    path.write_text(yaml.safe_dump({"warehouse_root": str(path.parent / "orgs"), "orgs": entries}, sort_keys=False))
    return path


def load(env: dict[str, str], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def validate(env: dict[str, str], cwd: Path) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen([str(BIN / "dagster"), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
                               env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(output[-3000:])
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss // 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2, help="fresh runs per case; the fastest is shown")
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    print(f"load average before: {load_average()} (2 cores)", flush=True)
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    results = {}
    with tempfile.TemporaryDirectory(prefix="sonora-code-server-") as tmp:
        tmp = Path(tmp)
        small = write_registry(tmp / "small" / "orgs.yaml", 3)
        big = write_registry(tmp / "big" / "orgs.yaml", args.orgs)
        empty_home = dagster_home(tmp / "empty")
        full_home = dagster_home(tmp / "full")
        names = list(yaml.safe_load(big.read_text())["orgs"])
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(full_home))) as instance:
            instance.add_dynamic_partitions("salesforce_orgs", names)
            partitions = len(instance.get_dynamic_partitions("salesforce_orgs"))
        cases = {"single-org": (None, empty_home), "registry, 3 orgs": (small, empty_home),
                 f"registry, {args.orgs} orgs": (big, empty_home),
                 f"registry, {args.orgs} orgs + {partitions} partitions": (big, full_home)}
        for label, (registry, home) in cases.items():
            env = environment(registry, home)
            loads = [load(env, tmp) for _ in range(args.repeat)]
            validates = [validate(env, tmp) for _ in range(args.repeat)]
            results[label] = {"load": min(loads, key=lambda r: r["total_s"]),
                              "validate": min(validates, key=lambda r: r["seconds"])}
            r, v = results[label]["load"], results[label]["validate"]
            print(f"{label:<36} load {r['total_s']:5.2f} s (dagster import {r['dagster_import_s']:.2f}, definitions "
                  f"{r['definitions_s']:.2f}, repository + snapshot {r['repository_s']:.2f}), {r['assets']} assets, "
                  f"{r['jobs']} jobs, snapshot {r['snapshot_bytes'] / 1024:.0f} KiB, peak RSS {r['peak_rss_mb']} MB"
                  f" | `dagster definitions validate` {v['seconds']:5.2f} s, peak RSS {v['peak_rss_mb']} MB",
                  flush=True)
    print(f"load average after: {load_average()}")
    one, many = results["registry, 3 orgs"], results[f"registry, {args.orgs} orgs + {partitions} partitions"]
    print(f"growth from 3 to {args.orgs} orgs (+ partitions): snapshot "
          f"{many['load']['snapshot_bytes'] - one['load']['snapshot_bytes']:+d} bytes, peak RSS "
          f"{many['load']['peak_rss_mb'] - one['load']['peak_rss_mb']:+d} MB (load), "
          f"{many['validate']['peak_rss_mb'] - one['validate']['peak_rss_mb']:+d} MB (validate)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
