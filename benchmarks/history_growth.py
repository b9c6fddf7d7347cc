"""How much `sonora.health_score_history` grows when the model is rebuilt often and nothing changes.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/history_growth.py                  # 100k records, 1,000 rebuilds
    PYTHONPATH=$PWD .venv/bin/python benchmarks/history_growth.py --records 300000 --rebuilds 200
    PYTHONPATH=$PWD .venv/bin/python benchmarks/history_growth.py --minutes-apart 1   # rebuilds 1 min apart

A local org of N records (in this process) is synced once into a fresh DuckDB file (Bulk, every standard
object), and the org is stopped. Then, in a fresh process (so its peak RSS is the model's alone), the model is
built once in full and rebuilt `--rebuilds` − 1 more times from the unchanged mirror: by default only the
tables the health score needs anew (`health_scores`, `health_score_history`; everything upstream is
unchanged), with `--full` every table. Each rebuild is stamped with the clock, or with `--minutes-apart M`
with an injected time M minutes after the previous one (so 1,000 rebuilds a minute apart span ~16.7 hours
and cross a UTC midnight; on a new day every table is rebuilt, since date windows move). It prints the
history's rows after 1 and after all rebuilds, the seconds per rebuild and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HEALTH_TABLES = ("health_scores", "health_score_history")


def peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rebuild(db: str, rebuilds: int, full: bool, minutes_apart: float | None) -> None:
    from sonora_pipeline.mirror.warehouse import write_connection
    from sonora_pipeline.model.build import build_all, build_table
    from sonora_pipeline.settings import Settings

    # contract rules on standard fields only, so the figures hold for any org
    settings = Settings.model_validate({"contracts": {"match": "all", "account_conditions": [],
                                                      "won_opportunity_within_days": 365}})
    start = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)

    def stamp(i: int) -> datetime:
        if minutes_apart is None:
            return datetime.now(UTC).replace(tzinfo=None)
        return start + timedelta(minutes=minutes_apart * i)

    def history_rows(conn) -> int:
        return conn.execute("SELECT count(*) FROM sonora.health_score_history").fetchone()[0]

    seconds: list[float] = []
    with write_connection(Path(db)) as conn:
        now = first = stamp(0)
        t0 = time.perf_counter()
        build_all(conn, settings, now.date(), now)
        first_build = time.perf_counter() - t0
        customers = conn.execute("SELECT count(*) FROM sonora.customers").fetchone()[0]
        after_one = history_rows(conn)
        day = now.date()
        for i in range(1, rebuilds):
            now = stamp(i)
            t0 = time.perf_counter()
            if full or now.date() != day:
                build_all(conn, settings, now.date(), now)
                day = now.date()
            else:
                for table in HEALTH_TABLES:
                    build_table(conn, table, settings, now.date(), now)
            seconds.append(time.perf_counter() - t0)
        after_all = history_rows(conn)
        days = conn.execute("SELECT count(DISTINCT CAST(computed_at AS DATE)) FROM sonora.health_score_history"
                            ).fetchone()[0]
    print(json.dumps({
        "customers": customers, "history_after_1": after_one, "history_after_all": after_all, "utc_days": days,
        "first_build_s": round(first_build, 2),
        "rebuild_s_mean": round(statistics.mean(seconds), 3) if seconds else None,
        "rebuild_s_median": round(statistics.median(seconds), 3) if seconds else None,
        "peak_rss_mb": round(peak_rss_mb()), "span": f"{first:%Y-%m-%d %H:%M:%S} .. {now:%Y-%m-%d %H:%M:%S}",
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rebuilds", type=int, default=1000)
    parser.add_argument("--full", action="store_true", help="rebuild every model table each time")
    parser.add_argument("--minutes-apart", type=float, default=None,
                        help="stamp rebuild i at start + i*M minutes instead of the clock")
    parser.add_argument("--rebuild-only", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild_only:
        rebuild(args.rebuild_only, args.rebuilds, args.full, args.minutes_apart)
        return

    from sonora_pipeline.localorg.org import LocalOrg
    from sonora_pipeline.salesforce.client import SalesforceClient
    from sonora_pipeline.salesforce.connection import OrgConnection
    from sonora_pipeline.settings import SyncSettings
    from sonora_pipeline.sync.engine import sync_object

    log = logging.getLogger("bench")
    work = Path(tempfile.mkdtemp(prefix="sonora-history-bench-"))
    db = work / "model.duckdb"
    try:
        t0 = time.perf_counter()
        org = LocalOrg(records=args.records, seed=1, state_dir=work / "org").start()
        try:
            c = org.credentials
            client = SalesforceClient(OrgConnection(c.instance_url, c.consumer_key, c.consumer_secret,
                                                    ca_bundle=c.ca_bundle), log=log)
            sync = SyncSettings(initial_import="all", lag_seconds=0, bulk_threshold=1)
            rows = sum(sync_object(client, db, name, sync, window=None, partition_key=None, run_id="bench",
                                   log=log).rows_read for name in sync.objects)
        finally:
            org.stop()
        print(f"org of {args.records:,} records: {rows:,} rows mirrored in {time.perf_counter() - t0:.1f} s "
              "(generation included)")
        cmd = [sys.executable, __file__, "--rebuild-only", str(db), "--rebuilds", str(args.rebuilds)]
        cmd += ["--full"] if args.full else []
        cmd += ["--minutes-apart", str(args.minutes_apart)] if args.minutes_apart is not None else []
        t0 = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        f = json.loads(result.stdout.strip().splitlines()[-1])
        what = "every table" if args.full else "health_scores + health_score_history"
        print(f"{f['customers']:,} customers; {args.rebuilds:,} builds ({what} after a first full build), "
              f"stamped {f['span']} in {time.perf_counter() - t0:.0f} s")
        print(f"health_score_history rows: {f['history_after_1']:,} after 1 build, {f['history_after_all']:,} after "
              f"{args.rebuilds:,} ({f['utc_days']} UTC day(s)); one row per build would be "
              f"{f['customers'] * args.rebuilds:,}")
        print(f"first full build {f['first_build_s']} s; rebuild {f['rebuild_s_mean']} s mean, "
              f"{f['rebuild_s_median']} s median; peak RSS {f['peak_rss_mb']} MB")
    finally:
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
