"""Benchmark the local org's data generator: records/s and peak RSS for 100k and 1M records, per org shape.

Each (size, shape) runs in a fresh child process so the peak RSS (resource.getrusage ru_maxrss) is that
run's own, not the maximum over earlier runs. Shapes: "b2b" (the default mix) and "accounts" (~97% Account
rows, for benchmarks that need 100k / 1M Account-like rows).
Usage: python benchmarks/generate_org.py [--shape b2b|accounts] [records ...]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

SHAPES = ("b2b", "accounts")


def run_one(records: int, shape: str) -> None:
    from sonora_pipeline.localorg.clock import OrgClock
    from sonora_pipeline.localorg.generator import generate_org
    from sonora_pipeline.localorg.schema import build_standard_catalog
    from sonora_pipeline.localorg.store import OrgStore

    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    store = OrgStore(build_standard_catalog(), OrgClock(now))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    generated = generate_org(store, records, seed=7, now=now, shape=shape)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"{shape:>8} {records:>10,} requested  {generated.total:>10,} generated "
          f"({generated.counts.get('Account', 0):>9,} Account)  {elapsed:7.2f} s  "
          f"{generated.total / elapsed:>10,.0f} records/s  peak RSS {peak_mb:,.0f} MB "
          f"(before generating {rss_before / 1024:,.0f} MB)", flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        run_one(int(argv[1]), argv[2] if len(argv) > 2 else "b2b")
        return
    shapes = SHAPES
    if argv[:1] == ["--shape"]:
        shapes, argv = (argv[1],), argv[2:]
    sizes = [int(a) for a in argv] or [100_000, 1_000_000]
    for shape in shapes:
        for records in sizes:
            subprocess.run([sys.executable, __file__, "--one", str(records), shape], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
