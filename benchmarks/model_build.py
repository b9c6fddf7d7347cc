"""How long the customer model takes to build, and how much memory, for orgs of 100k and 1M records.

    .venv/bin/python benchmarks/model_build.py              # 100k and 1M records (b2b mix)
    .venv/bin/python benchmarks/model_build.py 300000       # other sizes

For each size: a local org (`sonora-pipeline localorg --records N`) in its own process; every object synced
into a fresh DuckDB file (Bulk, `initial_import: all`); then, in a fresh process, every model table rebuilt
from the mirror with the demo org's settings (its custom fields mapped, as before the defaults became
org-agnostic), timed per table, with that process's peak RSS. The model makes
no Salesforce calls, so only DuckDB and this machine (2 cores) are measured.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path


def peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(db: str) -> None:
    from datetime import datetime

    import duckdb

    from sonora_pipeline.cli.localorg import DEMO_SETTINGS
    from sonora_pipeline.mirror.warehouse import write_connection
    from sonora_pipeline.model.build import BUILD_ORDER, build_table
    from sonora_pipeline.settings import load_settings

    settings, today = load_settings(DEMO_SETTINGS), datetime.now(UTC).date()
    timings = {}
    started = time.perf_counter()
    with write_connection(Path(db)) as conn:
        for table in BUILD_ORDER:
            t0 = time.perf_counter()
            rows = build_table(conn, table, settings, today)
            timings[table] = (rows, round(time.perf_counter() - t0, 2))
    print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": round(peak_rss_mb()),
                      "tables": timings}))
    _ = duckdb


def measure(records: int) -> None:
    from sonora_pipeline.salesforce.client import SalesforceClient
    from sonora_pipeline.salesforce.connection import OrgConnection
    from sonora_pipeline.settings import SyncSettings
    from sonora_pipeline.sync.engine import sync_object

    work = Path(tempfile.mkdtemp(prefix="sonora-model-bench-"))
    org = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(records)],
                           stdout=subprocess.PIPE, text=True)
    try:
        creds = json.loads(org.stdout.readline())
        client = SalesforceClient(OrgConnection(creds["instance_url"], creds["consumer_key"], creds["consumer_secret"],
                                                ca_bundle=creds["ca_bundle"]), log=logging.getLogger("bench"))
        db = work / "model.duckdb"
        settings = SyncSettings(initial_import="all", lag_seconds=0, bulk_threshold=1)
        t0 = time.perf_counter()
        synced = 0
        for name in settings.objects:
            synced += sync_object(client, db, name, settings, window=None, partition_key=None, run_id="bench",
                                  log=logging.getLogger("bench")).rows_read
        sync_s = time.perf_counter() - t0
        result = subprocess.run([sys.executable, __file__, "--build", str(db)], capture_output=True, text=True,
                                check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"\n== org of {records:,} records: {synced:,} rows mirrored in {sync_s:.1f} s ({client.api_calls} API calls) ==")
        print(f"model built in {figures['seconds']} s, peak RSS {figures['peak_rss_mb']} MB")
        for table, (rows, seconds) in figures["tables"].items():
            print(f"  sonora.{table:<22} {rows:>9,} rows  {seconds:>6.2f} s")
    finally:
        org.terminate()
        org.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(work)])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--build":
        build(sys.argv[2])
        return
    for size in [int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]:
        measure(size)


if __name__ == "__main__":
    main()
