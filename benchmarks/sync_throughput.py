"""Initial-import throughput of `sync_object` for Account, against the floor, on local orgs of ~100k and ~1M rows.

Reproduce (from the project root, on a quiet machine; nothing else should be using the CPUs):

    .venv/bin/python benchmarks/sync_throughput.py                       # ~100k and ~1M Accounts
    .venv/bin/python benchmarks/sync_throughput.py --sizes 100000        # quick check (~1-2 min)
    .venv/bin/python benchmarks/sync_throughput.py --rest-1m             # also the REST path at 1M (slow)
    .venv/bin/python benchmarks/sync_throughput.py --json results.json   # also write the raw figures

For each size N, one local org (`sonora-pipeline localorg --shape accounts --records N*1.03`, i.e. ~N Accounts
with every standard and custom Account field) is started in its own process, and every measurement below runs
in a FRESH Python subprocess against it, so each peak RSS is that measurement's own:

  floor       the least any mirror of Account can do with Bulk 2.0 and DuckDB: the SOQL `sync_object`
              sends (same field list from `schema_from_describe(...).field_names`, same WHERE clause),
              fetched with `client.bulk_query_pages` writing each page to disk, then loaded with DuckDB's
              `read_csv` (typed columns, as the sync's commit reads them) into a fresh table of a fresh file.
              Timed from the job creation to the loaded table (the describe that builds the SOQL is
              counted in its API calls but not timed). Run twice, before and after the Bulk sync; the faster run is the floor (so the ratio
              is conservative) and both are printed.
  sync bulk   `sync_object(..., "Account", SyncSettings(initial_import="all", bulk_threshold=1, lag_seconds=0))`
              into a fresh DuckDB file: describe, COUNT() probe, Bulk 2.0 pages spooled to disk, one MERGE
              transaction. Wall time around the call.
  sync rest   the same with bulk_threshold huge, so the REST query/queryAll path (2,000-row pages spooled
              as Parquet). By default only at sizes below 1M; `--rest-1m` adds it at 1M (takes minutes).
  sensor      after the Bulk sync, one tick of the `salesforce_changes` sensor (evaluated with
              `dagster.build_sensor_context`), which reads the cursor the import committed in the mirror: nothing changed,
              so it should cost exactly one API call (one composite batch).

Figures, per measurement:
  rows        rows in the result (the sync's `rows_read`; the floor's loaded table); checked against the
              org's Account count.
  seconds     wall time of the measured work; records/s = rows / seconds.
  peak RSS    VmHWM of the measuring subprocess (Python, the client, DuckDB, everything), in MB; `base` is
              its VmHWM just before the measured work (after imports), so peak - base is what the work added.
  API calls   `client.api_calls` (calls the client sent, retries included, token requests excluded) and the
              org's own count (delta of `api_usage.used` from `POST /__localorg/state`, which is what the
              org's daily allowance is charged); "per 1M rows" uses the org's count.
  ratio       sync seconds / floor seconds (goal <= 1.5).

The summary table at the end compares against the goals: within 1.5x of the floor's time, >= 30,000
records/s on Bulk, peak memory <= 500 MB and about the same at 1M as at 100k (here: 1M peak <= 1.25x the
100k peak), <= 25 API calls per million rows, and one API call per no-change sensor tick.

The org and the sync share the machine: on few cores the org's serving competes with the sync for CPU
(both are in the figures, as they are for the floor). Subprocesses are killed and the temporary directory
(`--workdir`, default a new directory under the system temp dir) removed on exit, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

ACCOUNT_SHARE = 0.97          # share of an `accounts`-shape org's records that are Accounts
REST_THRESHOLD = 10**12       # bulk_threshold that forces the REST path
BIG_SIZE = 1_000_000          # sizes from here on run the REST path only with --rest-1m
ORG_START_TIMEOUT_S = 1800
WORKER_TIMEOUT_S = 4 * 3600

GOAL_FLOOR_RATIO = 1.5
GOAL_BULK_RECORDS_PER_S = 30_000
GOAL_PEAK_RSS_MB = 500
GOAL_RSS_GROWTH = 1.25        # "about the same at 1M as at 100k"
GOAL_CALLS_PER_MILLION = 25
GOAL_SENSOR_CALLS = 1


# ---------------------------------------------------------------------------------------------------------------
# helpers shared by the orchestrator and the workers

def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this process dies (even by SIGKILL), so nothing is left running."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _vm_kb(pid: int | str, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int | str = "self") -> float:
    """High-water mark of the resident set (VmHWM), MB."""
    return round(_vm_kb(pid, "VmHWM") / 1024, 1)


def _client(creds: dict[str, str]):
    import logging

    from sonora_pipeline.salesforce.client import SalesforceClient
    from sonora_pipeline.salesforce.connection import OrgConnection

    connection = OrgConnection(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                               consumer_secret=creds["consumer_secret"], ca_bundle=creds["ca_bundle"])
    return SalesforceClient(connection, log=logging.getLogger("benchmark.client"))


class _TimedLog:
    """A `log` for sync_object that stays quiet and notes when the last Bulk page was spooled."""

    def __init__(self) -> None:
        self.last_fetch_at: float | None = None
        self.messages: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        if "rows fetched" in message:
            self.last_fetch_at = time.perf_counter()
        else:
            self.messages.append(message % args if args else message)

    debug = info

    def warning(self, message: str, *args: Any) -> None:
        self.messages.append("WARNING " + (message % args if args else message))

    error = warning


# ---------------------------------------------------------------------------------------------------------------
# workers: each runs in a fresh subprocess and writes one JSON object to --out

def work_floor(creds: dict[str, str], workdir: Path) -> dict[str, Any]:
    import duckdb

    from sonora_pipeline.salesforce.describe import schema_from_describe
    from sonora_pipeline.settings import SyncSettings
    from sonora_pipeline.sync.windows import initial_plan

    client = _client(creds)
    calls_before = client.api_calls  # the describe that builds the SOQL is counted (not timed), as in the sync
    schema = schema_from_describe(client.describe("Account"))
    plan = initial_plan("Account", client.server_now(), SyncSettings(initial_import="all", lag_seconds=0))
    (where,) = plan.filters
    soql = f"SELECT {', '.join(schema.field_names)} FROM Account WHERE {where}"
    types = {f.name: f.duckdb_type for f in schema.fields}
    pages_dir = workdir / "pages"
    pages_dir.mkdir()
    base_rss = peak_rss_mb()

    started = time.perf_counter()
    files: list[Path] = []
    announced = 0
    for page in client.bulk_query_pages(soql, include_deleted=True, max_records=50_000):
        path = pages_dir / f"page-{len(files):05d}.csv"
        path.write_bytes(page.csv)
        files.append(path)
        announced += page.number_of_records
    fetched = time.perf_counter()
    conn = duckdb.connect(str(workdir / "floor.duckdb"))
    file_list = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"
    columns = "{" + ", ".join(f"'{c}': '{types[c]}'" for c in schema.field_names) + "}"
    conn.execute(
        f"CREATE TABLE account AS SELECT * FROM read_csv({file_list}, header = true, delim = ',', quote = '\"', "
        f"escape = '\"', columns = {columns}, auto_detect = false, nullstr = '', allow_quoted_nulls = false, "
        f"timestampformat = '%Y-%m-%dT%H:%M:%S.%gZ')")
    rows = conn.execute("SELECT count(*) FROM account").fetchone()[0]
    conn.close()
    finished = time.perf_counter()
    if rows != announced:
        raise RuntimeError(f"floor: loaded {rows} rows but the org announced {announced}")
    return {"rows": rows, "seconds": finished - started, "fetch_s": fetched - started,
            "load_s": finished - fetched, "pages": len(files), "columns": len(schema.field_names),
            "api_calls_client": client.api_calls - calls_before, "base_rss_mb": base_rss,
            "peak_rss_mb": peak_rss_mb()}


def work_sync(creds: dict[str, str], workdir: Path, method: str) -> dict[str, Any]:
    from sonora_pipeline.mirror.warehouse import read_connection
    from sonora_pipeline.settings import SyncSettings
    from sonora_pipeline.sync.engine import current_state, sync_object

    settings = SyncSettings(initial_import="all", lag_seconds=0,
                            bulk_threshold=1 if method == "bulk" else REST_THRESHOLD)
    client = _client(creds)
    db_path = workdir / "mirror.duckdb"
    log = _TimedLog()
    base_rss = peak_rss_mb()
    calls_before = client.api_calls
    started = time.perf_counter()
    result = sync_object(client, db_path, "Account", settings, window=None, partition_key=None,
                         run_id=f"benchmark-{method}", log=log)
    finished = time.perf_counter()
    peak = peak_rss_mb()
    with read_connection(db_path) as conn:
        table_rows = conn.execute("SELECT count(*) FROM salesforce.account").fetchone()[0]
    cursor = current_state(db_path, "Account").cursor_modstamp
    return {"rows": result.rows_read, "rows_upserted": result.rows_upserted, "table_rows": table_rows,
            "method": result.method, "seconds": finished - started, "engine_seconds": result.seconds,
            "fetch_s": (log.last_fetch_at - started) if log.last_fetch_at else None,
            "api_calls_client": client.api_calls - calls_before, "api_calls_result": result.api_calls,
            "base_rss_mb": base_rss, "peak_rss_mb": peak, "db_path": str(db_path),
            "cursor": cursor.isoformat() if cursor else None, "warnings": [m for m in log.messages
                                                                          if m.startswith("WARNING")]}


def work_sensor(creds: dict[str, str], workdir: Path, db_path: str) -> dict[str, Any]:
    import dagster as dg

    from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
    from sonora_pipeline.defs.salesforce.sensors import salesforce_changes
    from sonora_pipeline.defs.settings import SettingsResource

    resources = {
        "salesforce": SalesforceResource(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                                         consumer_secret=creds["consumer_secret"], ca_bundle=creds["ca_bundle"]),
        "warehouse": WarehouseResource(path=db_path),
        "settings": SettingsResource(),
    }
    base_rss = peak_rss_mb()
    started = time.perf_counter()
    # The sensor reads where the mirror has committed (no cursor of its own) and which runs are in flight.
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = salesforce_changes(context)
    finished = time.perf_counter()
    run_requests = list(getattr(result, "run_requests", None) or [])
    skip = getattr(result, "skip_reason", None) or (result if isinstance(result, dg.SkipReason) else None)
    return {"seconds": finished - started, "run_requests": len(run_requests),
            "skip_reason": getattr(skip, "skip_message", None) if skip else None,
            "base_rss_mb": base_rss, "peak_rss_mb": peak_rss_mb()}


def worker_main(args: argparse.Namespace) -> int:
    creds = json.loads(Path(args.creds).read_text())
    workdir = Path(args.workdir)
    if args.worker == "floor":
        out = work_floor(creds, workdir)
    elif args.worker in ("sync-bulk", "sync-rest"):
        out = work_sync(creds, workdir, args.worker.split("-")[1])
    elif args.worker == "sensor":
        out = work_sensor(creds, workdir, args.db)
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    Path(args.out).write_text(json.dumps(out))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# orchestrator

class Org:
    """`sonora-pipeline localorg` in its own process; stopped (and killed if need be) on exit."""

    def __init__(self, records: int, workdir: Path):
        self.records = records
        self.workdir = workdir
        self.creds_path = workdir / "org-credentials.json"
        self.log_path = workdir / "org.log"
        self.proc: subprocess.Popen | None = None
        self.creds: dict[str, str] = {}
        self.session = None
        self.start_s = 0.0

    def __enter__(self) -> Org:
        import requests

        started = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(self.records),
                 "--shape", "accounts", "--credentials-file", str(self.creds_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=PROJECT_ROOT,
                preexec_fn=_die_with_parent)
        deadline = time.monotonic() + ORG_START_TIMEOUT_S
        while not self.creds_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the local org exited with code {self.proc.returncode}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local org did not start within {ORG_START_TIMEOUT_S} s")
            time.sleep(0.2)
        self.start_s = time.perf_counter() - started
        self.creds = json.loads(self.creds_path.read_text())
        self.session = requests.Session()
        self.session.verify, self.session.trust_env = self.creds["ca_bundle"], False
        return self

    def state(self) -> dict[str, Any]:
        reply = self.session.post(f"{self.creds['instance_url']}/__localorg/state",
                                  headers={"X-LocalOrg-Admin": self.creds["admin_token"]}, timeout=60)
        reply.raise_for_status()
        return reply.json()

    def api_used(self) -> int:
        return int(self.state()["api_usage"]["used"])

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid) if self.proc and self.proc.poll() is None else float("nan")

    def __exit__(self, *exc: Any) -> None:
        if self.session is not None:
            self.session.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def run_worker(org: Org, kind: str, workdir: Path, **extra: str) -> dict[str, Any]:
    """One measurement in a fresh subprocess; the org's API usage is read before and after it."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "result.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--creds", str(org.creds_path),
               "--workdir", str(workdir), "--out", str(out)]
    for key, value in extra.items():
        command += [f"--{key}", value]
    used_before = org.api_used()
    # subprocess.run kills the child on any exception here (Ctrl-C, SIGTERM turned into SystemExit, timeout).
    done = subprocess.run(command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=WORKER_TIMEOUT_S, preexec_fn=_die_with_parent)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{kind} worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    figures = json.loads(out.read_text())
    figures["api_calls_org"] = org.api_used() - used_before
    return figures


def measure_size(size: int, root: Path, with_rest: bool) -> dict[str, Any]:
    records = round(size / ACCOUNT_SHARE)
    workdir = root / f"size-{size}"
    workdir.mkdir()
    out: dict[str, Any] = {"size": size, "org_records": records}
    print(f"\n== ~{size:,} Accounts (org with {records:,} records, shape accounts) ==", flush=True)
    with Org(records, workdir) as org:
        state = org.state()
        accounts = int(state["records"]["Account"])
        out.update(org_start_s=round(org.start_s, 1), accounts=accounts)
        print(f"org started in {org.start_s:.1f} s: {accounts:,} Accounts; "
              f"org RSS high-water {org.peak_rss_mb():,.0f} MB", flush=True)
        steps = [("floor-1", "floor"), ("sync-bulk", "sync-bulk"), ("floor-2", "floor")]
        if with_rest:
            steps.append(("sync-rest", "sync-rest"))
        for name, kind in steps:
            print(f"  {name:<10} ...", end=" ", flush=True)
            figures = run_worker(org, kind, workdir / name)
            out[name] = figures
            line = (f"{figures['rows']:,} rows in {figures['seconds']:.2f} s = "
                    f"{figures['rows'] / figures['seconds']:,.0f} records/s; peak RSS {figures['peak_rss_mb']:,.0f} MB "
                    f"(base {figures['base_rss_mb']:,.0f}); API calls {figures['api_calls_client']} client / "
                    f"{figures['api_calls_org']} org")
            if kind == "floor":
                line += (f"; fetch {figures['fetch_s']:.2f} s ({figures['pages']} pages, {figures['columns']} "
                         f"columns) + read_csv {figures['load_s']:.2f} s")
            elif figures.get("fetch_s"):
                line += f"; last page spooled at {figures['fetch_s']:.2f} s, commit after"
            print(line, flush=True)
            for warning in figures.get("warnings", []):
                print(f"    {warning}")
            if figures["rows"] != accounts:
                print(f"    NOTE: {figures['rows']:,} rows read but the org holds {accounts:,} Accounts")
        bulk = out["sync-bulk"]
        print("  sensor     ...", end=" ", flush=True)
        sensor = run_worker(org, "sensor", workdir / "sensor", db=bulk["db_path"])
        out["sensor"] = sensor
        print(f"no-change tick: {sensor['api_calls_org']} API call(s) (org count), {sensor['run_requests']} run "
              f"request(s), {sensor['seconds']:.2f} s ({sensor['skip_reason']})", flush=True)
        out["org_peak_rss_mb"] = org.peak_rss_mb()
        print(f"org RSS high-water at the end: {out['org_peak_rss_mb']:,.0f} MB (the org's, not the sync's)")
    floors = [out["floor-1"], out["floor-2"]]
    out["floor"] = min(floors, key=lambda f: f["seconds"])
    for key in ("sync-bulk", "sync-rest"):
        if key in out:
            figures = out[key]
            figures["records_per_s"] = figures["rows"] / figures["seconds"]
            figures["floor_ratio"] = figures["seconds"] / out["floor"]["seconds"]
            figures["calls_per_million"] = figures["api_calls_org"] / figures["rows"] * 1e6
            figures["calls_per_million_client"] = figures["api_calls_client"] / figures["rows"] * 1e6
    out["floor"]["records_per_s"] = out["floor"]["rows"] / out["floor"]["seconds"]
    shutil.rmtree(workdir, ignore_errors=True)  # free the disk before the next size
    return out


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**NO**")


def summary(results: list[dict[str, Any]]) -> str:
    lines = ["| size | path | rows | seconds | records/s | floor s | floor records/s | ratio (<= 1.5) | "
             "peak RSS MB (floor) | API calls client / org | calls per 1M rows (<= 25) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        floor = r["floor"]
        for key in ("sync-bulk", "sync-rest"):
            if key not in r:
                continue
            f = r[key]
            lines.append(
                f"| {r['size']:,} | {key.split('-')[1]} | {f['rows']:,} | {f['seconds']:.2f} | "
                f"{f['records_per_s']:,.0f} | {floor['seconds']:.2f} | {floor['records_per_s']:,.0f} | "
                f"{f['floor_ratio']:.2f} | {f['peak_rss_mb']:,.0f} ({floor['peak_rss_mb']:,.0f}) | "
                f"{f['api_calls_client']} / {f['api_calls_org']} | {f['calls_per_million']:.1f} |")
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for r in results:
        b, size = r["sync-bulk"], f"{r['size']:,}"
        lines.append(f"| Bulk sync within {GOAL_FLOOR_RATIO}x of the floor's time ({size}) | "
                     f"{b['floor_ratio']:.2f}x ({b['seconds']:.2f} s vs {r['floor']['seconds']:.2f} s) | "
                     f"{_mark(b['floor_ratio'] <= GOAL_FLOOR_RATIO)} |")
        lines.append(f"| >= {GOAL_BULK_RECORDS_PER_S:,} records/s on Bulk ({size}) | {b['records_per_s']:,.0f} | "
                     f"{_mark(b['records_per_s'] >= GOAL_BULK_RECORDS_PER_S)} |")
        for key in ("sync-bulk", "sync-rest"):
            if key in r:
                f = r[key]
                lines.append(f"| peak memory <= {GOAL_PEAK_RSS_MB} MB, {key.split('-')[1]} ({size}) | "
                             f"{f['peak_rss_mb']:,.1f} MB | {_mark(f['peak_rss_mb'] <= GOAL_PEAK_RSS_MB)} |")
                lines.append(f"| <= {GOAL_CALLS_PER_MILLION} API calls per 1M rows, {key.split('-')[1]} ({size}) | "
                             f"{f['calls_per_million']:.1f} ({f['api_calls_org']} calls) | "
                             f"{_mark(f['calls_per_million'] <= GOAL_CALLS_PER_MILLION)} |")
        s = r["sensor"]
        lines.append(f"| no-change sensor tick = {GOAL_SENSOR_CALLS} API call ({size}) | {s['api_calls_org']} "
                     f"({s['run_requests']} run requests) | "
                     f"{_mark(s['api_calls_org'] == GOAL_SENSOR_CALLS and s['run_requests'] == 0)} |")
    by_size = {r["size"]: r for r in results}
    small = [s for s in by_size if s < BIG_SIZE]
    big = [s for s in by_size if s >= BIG_SIZE]
    if small and big:
        lo, hi = by_size[min(small)]["sync-bulk"], by_size[max(big)]["sync-bulk"]
        growth = hi["peak_rss_mb"] / lo["peak_rss_mb"]
        lines.append(f"| Bulk peak memory about the same at {max(big):,} as at {min(small):,} "
                     f"(<= {GOAL_RSS_GROWTH}x) | {hi['peak_rss_mb']:,.0f} vs {lo['peak_rss_mb']:,.0f} MB = "
                     f"{growth:.2f}x | {_mark(growth <= GOAL_RSS_GROWTH)} |")
    else:
        lines.append("| Bulk peak memory about the same at 1M as at 100k | needs both sizes (--sizes 100000,1000000)"
                     " | n/a |")
    if small:
        lines += ["", "Calls per 1M rows below 1M rows are dominated by each import's fixed calls (describe, "
                      "COUNT() probe, job create and poll); the goal is about large imports, so read it at 1M."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated Account counts (default 100000,1000000)")
    rest = parser.add_mutually_exclusive_group()
    rest.add_argument("--rest-1m", action="store_true",
                      help=f"also measure the REST path at sizes >= {BIG_SIZE:,} (takes minutes)")
    rest.add_argument("--skip-rest-1m", action="store_true",
                      help=f"measure the REST path only below {BIG_SIZE:,} (the default)")
    parser.add_argument("--workdir", help="parent of the temporary directory (default: the system temp dir)")
    parser.add_argument("--json", help="also write all figures to this JSON file")
    # internal: one measurement in a fresh process
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--creds", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below on SIGTERM too
    root = Path(tempfile.mkdtemp(prefix="sonora-sync-throughput-", dir=args.workdir))
    results: list[dict[str, Any]] = []
    try:
        print(f"sync_throughput: sizes {', '.join(f'{s:,}' for s in sizes)}; {os.cpu_count()} CPUs; "
              f"work dir {root}", flush=True)
        for size in sizes:
            results.append(measure_size(size, root, with_rest=size < BIG_SIZE or args.rest_1m))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if results:
            print("\n## Summary\n")
            print(summary(results))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
