"""Write-back cost: API calls and time to push ~10k changed Accounts, then to re-run with nothing changed.

    .venv/bin/python benchmarks/writeback.py            # ~11,000 records of the "accounts" shape
    .venv/bin/python benchmarks/writeback.py 22000

Goals: at most 50 API calls for 10k changed Accounts (Bulk API 2.0 ingest: describe, a Bulk query for the
conflict check, the ingest job), and 0 calls when nothing changed. The org runs in its own process
(`sonora-pipeline localorg --shape accounts`); API calls are counted by the client and by the org.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import requests

from sonora_pipeline.model.build import build_all
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import OrgConnection
from sonora_pipeline.settings import SyncSettings, validate_settings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline.writeback.push import run_writeback


class Timed:
    """A log that prints each write-back step with the time since the run started."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def info(self, message, *args):
        print(f"  {time.perf_counter() - self.t0:6.2f} s  {message % args if args else message}")

    warning = info


def main(records: int) -> None:
    server = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(records),
                               "--shape", "accounts"], stdout=subprocess.PIPE, text=True)
    try:
        creds = json.loads(server.stdout.readline())
        admin = requests.Session()
        admin.verify, admin.trust_env = creds["ca_bundle"], False

        def org_used() -> int:
            return admin.post(f"{creds['instance_url']}/__localorg/state",
                              headers={"X-LocalOrg-Admin": creds["admin_token"]}).json()["api_usage"]["used"]

        connection = OrgConnection(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                                   consumer_secret=creds["consumer_secret"], ca_bundle=creds["ca_bundle"])
        db = Path(tempfile.mkdtemp(prefix="sonora-wb-bench-")) / "m.duckdb"
        sync = SyncSettings(initial_import="all", lag_seconds=0)
        time.sleep(1.1)
        client = SalesforceClient(connection)
        for name in sync.objects:
            sync_object(client, db, name, sync, window=None, partition_key=None, run_id="bench", log=logging.getLogger("bench"))
        # The default mappings plus one enrichment every customer has (its name, into a text field), so that every
        # Account has a changed value (many have no health score: no activity in the org's data).
        settings = validate_settings({"writeback": {"enabled": True, "mappings": [
            {"column": "health_scores.score", "field": "Sonora_Health_Score__c"},
            {"column": "ecsat.ecsat", "field": "Sonora_eCSAT__c"},
            {"column": "health_scores.band", "field": "Sonora_Health_Band__c",
             "values": {"green": "Green", "yellow": "Yellow", "red": "Red"}},
            {"column": "customers.name", "field": "Sonora_Notes__c"}]}})
        with duckdb.connect(str(db)) as conn:
            build_all(conn, settings, date.today())
            accounts = conn.execute("SELECT count(*) FROM sonora.customers").fetchone()[0]
        print(f"org: {records:,} records, {accounts:,} customer Accounts (mirrored and modelled)")
        state_cost = -org_used() + org_used()  # what asking the org's counter itself costs
        for label in ("changed", "unchanged"):
            before = org_used()
            client = SalesforceClient(connection)
            t0 = time.perf_counter()
            logging.basicConfig(level=logging.WARNING)
            report = run_writeback(client, db, settings, run_id=label, log=Timed())
            seconds = time.perf_counter() - t0
            accounts_written = len({c.account_id for c in report.changes if c.result == "success"})
            print(f"{label:9s}: {accounts_written:,} Accounts written ({dict(report.counts)}), method "
                  f"{report.method or '-'}, read {report.read_method or '-'}, API calls {report.api_calls} "
                  f"(org counted {org_used() - before - state_cost}), {seconds:.2f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11_000)
