"""What the formula-only refresh costs: API calls per 100k records, seconds and peak memory.

Reproduce (from the project root, on a quiet machine):

    .venv/bin/python benchmarks/formula_refresh.py                        # ~100k records, mostly Accounts
    .venv/bin/python benchmarks/formula_refresh.py --records 100000 --shape b2b
    .venv/bin/python benchmarks/formula_refresh.py --json results.json    # also write the raw figures

Steps: a local org (`sonora-pipeline localorg --records N --shape S`) starts in its own process; every
object is imported into a fresh DuckDB file with `sync_object` (initial import 'all', Bulk); the org's
clock moves one day, so every TODAY() formula (Account.Days_To_Renewal__c) is stale in the mirror; then a
FRESH subprocess runs `refresh_all_formulas` over every synced object and reports:

  records            rows the refresh read (live records of the objects that have formula fields)
  objects            objects with formula fields, and how many formula fields
  rows changed       mirror rows whose formula values the refresh corrected
  API calls          the client's count (describe of every object + one Bulk job per object with formulas)
                     and the org's own count; "per 100k records" uses the org's count
  seconds            wall time of the refresh
  peak RSS           VmHWM of the measuring subprocess in MB (base = before the refresh, after imports)

The org process is stopped on exit (Ctrl-C included) and the work directory removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

ORG_START_TIMEOUT_S = 1800
log = logging.getLogger("benchmark")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def client_for(creds: dict[str, str]):
    from sonora_pipeline.salesforce.client import SalesforceClient
    from sonora_pipeline.salesforce.connection import OrgConnection

    connection = OrgConnection(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                               consumer_secret=creds["consumer_secret"], ca_bundle=creds["ca_bundle"])
    return SalesforceClient(connection, log=log)


def objects() -> tuple[str, ...]:
    from sonora_pipeline.settings import STANDARD_OBJECTS

    return STANDARD_OBJECTS


def worker(creds_path: Path, db: Path, out: Path) -> int:
    """The measured refresh, alone in this process."""
    from sonora_pipeline.sync.formulas import refresh_all_formulas

    creds = json.loads(creds_path.read_text())
    client = client_for(creds)
    base = peak_rss_mb()
    started = time.perf_counter()
    results = refresh_all_formulas(client, db, objects(), run_id="benchmark", log=log)
    seconds = time.perf_counter() - started
    with_formulas = [r for r in results if r.formula_fields]
    out.write_text(json.dumps({
        "records": sum(r.rows_read for r in with_formulas),
        "rows_changed": sum(r.rows_changed for r in with_formulas),
        "objects": {r.object_name: r.formula_fields for r in with_formulas},
        "client_api_calls": client.api_calls,
        "per_object_calls": {r.object_name: r.api_calls for r in results},
        "seconds": round(seconds, 2), "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base,
    }))
    return 0


class Org:
    """`sonora-pipeline localorg` in its own process, with its admin controls."""

    def __init__(self, records: int, shape: str, workdir: Path):
        self.records, self.shape, self.workdir = records, shape, workdir
        self.creds_path = workdir / "org-credentials.json"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Org:
        import requests

        with open(self.workdir / "org.log", "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(self.records),
                 "--shape", self.shape, "--credentials-file", str(self.creds_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=PROJECT_ROOT)
        deadline = time.monotonic() + ORG_START_TIMEOUT_S
        while not self.creds_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local org did not start:\n"
                                   + (self.workdir / "org.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        self.creds = json.loads(self.creds_path.read_text())
        self.session = requests.Session()
        self.session.verify, self.session.trust_env = self.creds["ca_bundle"], False
        return self

    def control(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self.session.post(f"{self.creds['instance_url']}/__localorg/{name}", json=body or {},
                                  headers={"X-LocalOrg-Admin": self.creds["admin_token"]}, timeout=120)
        reply.raise_for_status()
        return reply.json()

    def api_used(self) -> int:
        return int(self.control("state")["api_usage"]["used"])

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--shape", choices=["accounts", "b2b"], default="accounts")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--creds", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(Path(args.creds), Path(args.db), Path(args.out))

    from sonora_pipeline.settings import SyncSettings
    from sonora_pipeline.sync.engine import sync_object

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="sonora-formula-bench-"))
    try:
        with Org(args.records, args.shape, workdir) as org:
            db = workdir / "warehouse.duckdb"
            print(f"org of ~{args.records:,} records ({args.shape}) started; importing every object ...", flush=True)
            org.control("clock/advance", {"seconds": 5})
            settings = SyncSettings(initial_import="all", bulk_threshold=1, lag_seconds=0)
            client = client_for(org.creds)
            for name in objects():
                sync_object(client, db, name, settings, window=None, partition_key=None, run_id="import", log=log)
            org.control("clock/advance", {"seconds": 86_400})  # a new day: TODAY() formulas move
            out = workdir / "result.json"
            used = org.api_used()
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "--creds",
                                   str(org.creds_path), "--db", str(db), "--out", str(out)],
                                  cwd=PROJECT_ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            result = json.loads(out.read_text())
            result["org_api_calls"] = org.api_used() - used
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    records = result["records"]
    per_100k = result["org_api_calls"] * 100_000 / records if records else float("nan")
    fields = sum(len(f) for f in result["objects"].values())
    result.update(calls_per_100k_records=round(per_100k, 1), measured_at=datetime.now(UTC).isoformat(),
                  org_records=args.records, shape=args.shape)
    print(f"records read          {records:,}")
    print(f"objects with formulas {len(result['objects'])} ({', '.join(result['objects'])}; {fields} formula fields)")
    print(f"rows changed          {result['rows_changed']:,}")
    print(f"API calls             {result['org_api_calls']} (org count; client {result['client_api_calls']}: "
          + ", ".join(f"{k} {v}" for k, v in result["per_object_calls"].items()) + ")")
    print(f"API calls per 100k    {per_100k:.1f}")
    print(f"seconds               {result['seconds']:.1f}")
    print(f"peak RSS              {result['peak_rss_mb']:.0f} MB (base {result['base_rss_mb']:.0f} MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
