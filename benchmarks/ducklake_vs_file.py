"""DuckLake (catalog in PostgreSQL, Parquet data) vs the DuckDB file: an Account import and an incremental window.

Reproduce (from the project root, on a quiet machine):

    .venv/bin/python benchmarks/ducklake_vs_file.py                      # 1M Accounts, a 10k-row window
    .venv/bin/python benchmarks/ducklake_vs_file.py --size 100000        # quick check
    .venv/bin/python benchmarks/ducklake_vs_file.py --json results.json  # also write the raw figures

One local org (`sonora-pipeline localorg --shape accounts`, ~--size Accounts) in its own process and one
throwaway PostgreSQL (sonora_pipeline_tests.services, the catalog server). Every measurement runs `sync_object`
for Account in a FRESH Python subprocess (Bulk 2.0), so each peak RSS (VmHWM) is its own:

  import   the initial import of every Account, into a new DuckDB file / a new DuckLake catalog (data folder
           local), one after the other against the same org;
  window   then --changed Accounts are edited in the org (its admin API), and each warehouse reads the window
           from its committed cursor to now: the incremental MERGE of --changed rows into --size.

Side by side: seconds (wall time around sync_object), rows read, and peak RSS in MB. The org and PostgreSQL
share the machine with the sync (both are in the figures). Everything started is stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.sync_throughput import ACCOUNT_SHARE, Org, _client, _die_with_parent, peak_rss_mb  # noqa: E402

WORKER_TIMEOUT_S = 4 * 3600


def _location(target: str, workdir: Path, catalog: str | None):
    from sonora_pipeline.mirror.lake import LakeLocation
    from sonora_pipeline.settings.lake import LakeSettings

    if target == "file":
        return workdir / "file" / "warehouse.duckdb"
    return LakeLocation.for_org(LakeSettings(catalog, f"{workdir / 'lake'}/"), None, workdir / "lake-work")


def work(args: argparse.Namespace) -> dict[str, Any]:
    """One sync of Account (import, or the window from the committed cursor) into one target."""
    from datetime import UTC, datetime, timedelta

    from sonora_pipeline.settings import SyncSettings
    from sonora_pipeline.sync.engine import current_state, sync_object

    creds = json.loads(Path(args.creds).read_text())
    location = _location(args.target, Path(args.workdir), args.catalog)
    settings = SyncSettings(initial_import="all", lag_seconds=0, overlap_seconds=1, bulk_threshold=1)
    client = _client(creds)
    window = None
    if args.phase == "window":
        cursor = current_state(location, "Account").cursor_modstamp
        window = (cursor, datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1))
    base = peak_rss_mb()
    started = time.perf_counter()
    result = sync_object(client, location, "Account", settings, window=window, partition_key=None,
                         run_id=f"bench-{args.phase}", log=_Quiet())
    seconds = time.perf_counter() - started
    return {"rows_read": result.rows_read, "rows_upserted": result.rows_upserted, "seconds": round(seconds, 2),
            "base_rss_mb": base, "peak_rss_mb": peak_rss_mb()}


class _Quiet:
    def info(self, *a: Any) -> None: ...
    debug = warning = error = info


def run(org: Org, phase: str, target: str, workdir: Path, catalog: str) -> dict[str, Any]:
    out = workdir / f"{phase}-{target}.json"
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "--phase", phase, "--target",
                           target, "--creds", str(org.creds_path), "--workdir", str(workdir), "--catalog", catalog,
                           "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=WORKER_TIMEOUT_S, preexec_fn=_die_with_parent)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} into {target} failed:\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def edit_accounts(org: Org, count: int) -> None:
    """Touch `count` Accounts through the org's admin API (a system update: each gets a new SystemModstamp)."""
    client = _client(org.creds)
    ids = [r["Id"] for page in client.query_pages(f"SELECT Id FROM Account LIMIT {count}",
                                                                   include_deleted=False) for r in page]
    for rid in ids:
        reply = org.session.post(f"{org.creds['instance_url']}/__localorg/records/update",
                                 headers={"X-LocalOrg-Admin": org.creds["admin_token"]},
                                 json={"object": "Account", "id": rid, "values": {}, "system_only": True},
                                 timeout=60)
        if not reply.ok:
            raise RuntimeError(f"the org refused the update of {rid}: {reply.status_code} {reply.text[:500]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="Accounts in the org (default 1,000,000)")
    parser.add_argument("--changed", type=int, default=10_000, help="Accounts edited for the window (default 10,000)")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--phase", "--target", "--creds", "--workdir", "--catalog", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        Path(args.out).write_text(json.dumps(work(args)))
        return 0
    from sonora_pipeline_tests.services import postgres_server

    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="sonora-lake-bench-") as tmp, postgres_server() as pg:
        workdir = Path(tmp)
        catalog = pg.libpq(pg.create_database("lake"))
        with Org(round(args.size / ACCOUNT_SHARE), workdir) as org:
            for target in ("file", "ducklake"):
                figures[f"import {target}"] = run(org, "import", target, workdir, catalog)
                print(f"import {target}: {figures[f'import {target}']}", flush=True)
            edit_accounts(org, args.changed)
            for target in ("file", "ducklake"):
                figures[f"window {target}"] = run(org, "window", target, workdir, catalog)
    print(f"Account import of ~{args.size:,} rows and a {args.changed:,}-row window, DuckDB file vs DuckLake")
    print(f"{'measurement':<18}{'rows read':>12}{'seconds':>10}{'rows/s':>10}{'peak MB':>10}")
    for name, f in figures.items():
        rate = f["rows_read"] / f["seconds"] if f["seconds"] else 0
        print(f"{name:<18}{f['rows_read']:>12,}{f['seconds']:>10.1f}{rate:>10,.0f}{f['peak_rss_mb']:>10.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
