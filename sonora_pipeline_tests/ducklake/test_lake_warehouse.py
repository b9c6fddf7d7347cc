"""The shared warehouse on DuckLake (catalog in a real PostgreSQL, data in Parquet): the sync, the model, the
write-back ledger and the snapshot give the same tables as the DuckDB file fed the same org, and a commit that
loses a race to another writer of the same table is re-run whole, its data and cursor intact."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import duckdb

from sonora_pipeline.mirror.commit import commit_window
from sonora_pipeline.mirror.spool import Spool
from sonora_pipeline.mirror.state import OrgIdentity, read_state
from sonora_pipeline.mirror.warehouse import publish_snapshot, read_connection, write_connection
from sonora_pipeline.model.build import build_all
from sonora_pipeline.salesforce.connection import safe_url
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import describe_schema, sync_object
from sonora_pipeline.writeback.push import run_writeback
from sonora_pipeline_tests.ducklake.helpers import contents, lake_for
from sonora_pipeline_tests.suite_settings import suite_settings_with
from sonora_pipeline_tests.sync.helpers import OBJECTS, client_for, differences, log

SYNC = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60)
TODAY = datetime.now(UTC).date()
BUILT_AT = datetime.combine(TODAY, datetime.min.time()) + timedelta(hours=1)


def sync_into(org, targets, *, window=None) -> None:
    """The same sync into every target, one after the other, with the org unchanged in between."""
    org.advance_clock(SYNC.lag_seconds + 3)
    client = client_for(org)
    for db in targets:
        for name in SYNC.objects:
            sync_object(client, db, name, SYNC, window=window, partition_key=None, run_id="lake", log=log)


def today_window(org):
    start = org.clock.now().replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None) - timedelta(days=1)
    return start, start + timedelta(days=3)


def cursors_follow_windows(location) -> list[str]:
    """Objects whose committed cursor is not the end of their newest committed read (the cursor moved without
    its data, or the data without the cursor)."""
    with read_connection(location) as conn:
        rows = conn.execute("SELECT s.object_name, s.cursor_modstamp, max(w.read_to) FROM salesforce._sync_state s "
                            "JOIN salesforce._sync_windows w USING (object_name) WHERE w.kind IN ('initial', 'window') "
                            "GROUP BY ALL").fetchall()
    return [name for name, cursor, read_to in rows if cursor != read_to]


def test_sync_model_ledger_and_snapshot_equal_the_duckdb_file(local_org_factory, pg, catalog_db, tmp_path):
    org = local_org_factory(records=120, seed=21)
    file, lake = tmp_path / "file" / "warehouse.duckdb", lake_for(pg, catalog_db, tmp_path)
    sync_into(org, [file, lake])                                   # initial import
    rng = random.Random(5)
    accounts = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Account" WHERE NOT "IsDeleted"').fetchall()]
    contacts = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Contact" WHERE NOT "IsDeleted"').fetchall()]
    for rid in rng.sample(accounts, 8):
        org.update("Account", rid, {"Sonora_Notes__c": f"note {rng.random()}", "ARR__c": rng.randint(1, 10**6)})
    for rid in rng.sample(contacts, 4):
        org.delete("Contact", rid)
    org.create("Account", {"Name": "Lake New Co", "Type": "Prospect"})
    sync_into(org, [file, lake], window=today_window(org))         # incremental, with deletes
    for name in OBJECTS:
        assert differences(org, lake, name) == [], name
    assert cursors_follow_windows(lake) == []

    settings = suite_settings_with(writeback={"enabled": True})
    for db in (file, lake):
        with write_connection(db) as conn:
            build_all(conn, settings, TODAY, BUILT_AT)
        report = run_writeback(client_for(org), db, settings, run_id="dry", log=log, dry_run=True)
        assert report.status == "dry_run" and report.counts.get("dry_run", 0) > 0
    on_file, on_lake = contents(file), contents(lake)
    assert "sonora.writeback_ledger" in on_lake and "sonora.health_scores" in on_lake
    assert sorted(on_lake) == sorted(on_file)
    for table in on_file:
        assert on_lake[table] == on_file[table], table

    # A real push from the lake: its ledger records each success, and the org holds the model's values.
    report = run_writeback(client_for(org), lake, settings, run_id="push", log=log)
    assert report.status == "written" and report.counts.get("success", 0) > 0
    with read_connection(lake) as conn:
        pushed = dict(conn.execute("SELECT account_id, value FROM sonora.writeback_ledger "
                                   "WHERE result = 'success' AND field = 'Sonora_Health_Score__c'").fetchall())
        scores = dict(conn.execute("SELECT customer_id, CAST(score AS VARCHAR) FROM sonora.health_scores").fetchall())
    org_scores = dict(org.store.conn.execute('SELECT "Id", "Sonora_Health_Score__c" FROM "Account"').fetchall())
    assert pushed and all(float(org_scores[a]) == float(v) for a, v in pushed.items())
    assert all(float(scores[a]) == float(v) for a, v in pushed.items())

    # The snapshot: one DuckDB file holding the lake's tables as they are.
    snapshot = publish_snapshot(lake, tmp_path / "lake-analyst.duckdb")
    assert contents(snapshot) == contents(lake)
    with duckdb.connect(str(snapshot), read_only=True) as conn:
        assert conn.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'account'").fetchone()[0]


class RivalCommitsFirst:
    """The commit's own connection, except that just before its first COMMIT a second writer (another DuckDB,
    its own connection to the catalog) commits a change to the same table: a real race, which DuckLake refuses
    the loser of. Counts the COMMITs the commit issued and the conflicts they met."""

    def __init__(self, conn, lake, rival_sql: str):
        self.conn, self.lake, self.rival_sql = conn, lake, rival_sql
        self.commits = self.conflicts = 0

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self.commits += 1
            if self.commits == 1:
                with write_connection(self.lake) as rival:
                    rival.execute(self.rival_sql)
            try:
                return self.conn.execute(sql, *args)
            except duckdb.TransactionException:
                self.conflicts += 1
                raise
        return self.conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_lost_commit_race_is_retried_with_its_data_and_cursor(local_org_factory, pg, catalog_db, tmp_path):
    org = local_org_factory(records=100, seed=8)
    lake = lake_for(pg, catalog_db, tmp_path)
    sync_into(org, [lake])
    changed = [r[0] for r in org.store.conn.execute(
        'SELECT "Id" FROM "Account" WHERE NOT "IsDeleted" ORDER BY "Id" LIMIT 6').fetchall()]
    for i, rid in enumerate(changed):
        org.update("Account", rid, {"Sonora_Notes__c": f"race {i}"})
    org.advance_clock(SYNC.lag_seconds + 3)
    client = client_for(org)
    schema = describe_schema(client, "Account")
    with read_connection(lake) as conn:
        before = read_state(conn, "Account")
    read_to = org.clock.now().replace(tzinfo=None)
    spool = Spool.create(tmp_path / "spool", "Account", schema.field_names)
    ids = ", ".join(f"'{rid}'" for rid in changed)
    for page in client.bulk_query_pages(f"SELECT {', '.join(schema.field_names)} FROM Account WHERE Id IN ({ids})",
                                        include_deleted=True):
        spool.add_csv_page(page.csv, page.number_of_records)
    identity = OrgIdentity(client.tokens.org_id, safe_url(client.connection.instance_url))
    with write_connection(lake) as conn:
        # The rival rewrites one of the very rows this commit upserts, with an old SystemModstamp.
        racing = RivalCommitsFirst(conn, lake, f"UPDATE salesforce.account SET \"Sonora_Notes__c\" = 'rival' "
                                               f"WHERE \"Id\" = '{changed[0]}'")
        result = commit_window(racing, schema, spool, kind="window", method="bulk", partition_key=None,
                               window_start=None, window_end=None, read_from=before.cursor_modstamp,
                               read_to=read_to, api_calls=1, run_id="race", advance_cursor=True, org=identity)
    assert racing.conflicts == 1 and racing.commits == 2   # lost once, then committed whole
    assert result.rows_read == 6 and result.rows_upserted == 6
    assert differences(org, lake, "Account") == []          # every row as the org has it, the rival's overwritten
    with read_connection(lake) as conn:
        after = read_state(conn, "Account")
        logged = conn.execute("SELECT count(*) FROM salesforce._sync_windows WHERE run_id = 'race'").fetchone()[0]
    assert after.cursor_modstamp == read_to and logged == 1
    assert after.rows_upserted_total == before.rows_upserted_total + 6
