"""Benchmark the local org's data generator: records/s and peak RSS for 100k and 1M records.

Each size runs in a fresh child process so the peak RSS (resource.getrusage ru_maxrss) is that size's
own, not the maximum over earlier runs. Usage: python benchmarks/generate_org.py [records ...]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from datetime import datetime, timezone


def run_one(records: int) -> None:
    from sonora_pipeline.localorg.clock import OrgClock
    from sonora_pipeline.localorg.generator import generate_org
    from sonora_pipeline.localorg.schema import build_standard_catalog
    from sonora_pipeline.localorg.store import OrgStore

    now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    store = OrgStore(build_standard_catalog(), OrgClock(now))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    generated = generate_org(store, records, seed=7, now=now)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"{records:>10,} requested  {generated.total:>10,} generated  {elapsed:7.2f} s  "
          f"{generated.total / elapsed:>10,.0f} records/s  peak RSS {peak_mb:,.0f} MB "
          f"(before generating {rss_before / 1024:,.0f} MB)", flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        run_one(int(argv[1]))
        return
    sizes = [int(a) for a in argv] or [100_000, 1_000_000]
    for records in sizes:
        subprocess.run([sys.executable, __file__, "--one", str(records)], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
