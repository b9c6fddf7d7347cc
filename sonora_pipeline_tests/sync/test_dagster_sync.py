"""The Dagster side: partitioned object assets, the change sensor and its run keys, against the local org."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import yaml

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.assets import OBJECT_ASSETS
from sonora_pipeline.defs.salesforce.sensors import salesforce_changes
from sonora_pipeline.defs.salesforce.sync_job import SYNC_JOB_NAME, salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline_tests.suite_settings import write_suite_settings
from sonora_pipeline_tests.sync.helpers import OBJECTS, differences

LAG = SETTINGS.sync.lag_seconds
ROOT = Path(__file__).resolve().parents[2]


def resources_for(org, db, settings_file=None):
    c = org.credentials
    return {
        "salesforce": SalesforceResource(instance_url=c.instance_url, consumer_key=c.consumer_key,
                                         consumer_secret=c.consumer_secret, ca_bundle=c.ca_bundle),
        "warehouse": WarehouseResource(path=str(db)),
        "settings": SettingsResource(path=str(settings_file)) if settings_file else SettingsResource(),
    }


def sync_job(org, db, settings_file=None) -> dg.JobDefinition:
    """The job every sync runs as (the sensor's, the schedule's and the CLI's runs), bound to this org."""
    defs = dg.Definitions(assets=OBJECT_ASSETS, jobs=[salesforce_sync_job],
                          resources=resources_for(org, db, settings_file))
    return defs.resolve_job_def(SYNC_JOB_NAME)


def materialize(org, db, instance, *, partition_key, selection=None, tags=None):
    """Run the sync job for `partition_key` and the selected objects (all by default), as the daemon runs a
    sensor's RunRequest."""
    keys = [k for a in OBJECT_ASSETS for k in a.keys if selection is None or k in set(selection)]
    result = sync_job(org, db).execute_in_process(instance=instance, partition_key=partition_key,
                                                   asset_selection=keys, tags=tags)
    assert result.success
    return result


def metadata_of(result) -> dict[str, object]:
    """{asset: {key: plain value}} of a run's materializations."""
    return {e.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def served(org, object_name, read_from: datetime | None, read_to: datetime) -> int:
    """Rows the org's queryAll serves for SystemModstamp in [read_from, read_to): deleted and archived included."""
    where, params = '"SystemModstamp" < ?', [read_to]
    if read_from is not None:
        where, params = where + ' AND "SystemModstamp" >= ?', params + [read_from]
    return org.store.conn.execute(f'SELECT count(*) FROM "{object_name}" WHERE {where}', params).fetchone()[0]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.removesuffix("Z"))


def rows_in_table(db, table: str, where: str = "TRUE") -> int:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM salesforce.{table} WHERE {where}").fetchone()[0]


def tick(org, db, instance, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources_for(org, db)) as context:
        return salesforce_changes(context)


def today_key(org):
    return org.clock.now().strftime("%Y-%m-%d")


def test_first_materialization_imports_everything_with_metadata(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        result = materialize(org, db, instance, partition_key=today_key(org))
        meta = metadata_of(result)
        assert instance.get_run_by_id(result.run_id).job_name == "salesforce_sync_job"
    account = meta["salesforce/account"]
    assert account["sonora/initial_import"] == "all"
    assert account["sonora/api_calls"] > 0
    assert {c.name for c in account["dagster/column_schema"].columns} >= {"Id", "ARR__c", "BillingAddress"}
    for name in OBJECTS:
        assert differences(org, db, name) == []
    # The initial import says what it read: the org's whole history up to the cursor, not the partition's day.
    assert account["sonora/sync_kind"] == "initial"
    assert account["sonora/read_from"] == "beginning of the org's history"
    read_to = instant(account["sonora/read_to"])
    assert account["sonora/cursor_after_run"] == account["sonora/read_to"]
    oldest = org.store.conn.execute('SELECT min("SystemModstamp") FROM "Account"').fetchone()[0]
    assert f"initial import: {served(org, 'Account', None, read_to):,} rows read, SystemModstamp from beginning " \
           f"of the org's history to {account['sonora/read_to']}, SystemModstamps {oldest.isoformat()}Z" \
        in account["sonora/reads"]
    assert account["sonora/covers"] == (
        f"Initial import (all): every record of Account with SystemModstamp before {account['sonora/read_to']} "
        f"(the oldest read: {oldest.isoformat()}Z), then window {today_key(org)}. The table holds every sync window "
        f"from {sync_window.get_first_partition_key()} to {today_key(org)} and the history before them; partition "
        f"status marks only {today_key(org)} as materialized, the earlier windows' rows are in the table all the "
        "same (no backfill needed).")
    # Each count says what it counts: rows in the table (Dagster's row count) vs rows the org served this run
    # (the import, then today's window re-read from its start minus the overlap).
    window_from = datetime.strptime(today_key(org), "%Y-%m-%d") - timedelta(seconds=SETTINGS.sync.overlap_seconds)
    for object_name in OBJECTS:
        table = table_name_for(object_name)
        name, asset_meta = object_name, meta[f"salesforce/{table}"]
        assert asset_meta["dagster/row_count"] == rows_in_table(db, table) == org.store.count(object_name), name
        assert asset_meta["sonora/rows_read_this_run"] == served(org, object_name, None, read_to) + served(
            org, object_name, window_from, read_to), name
        assert asset_meta["sonora/rows_inserted_or_updated"] == rows_in_table(db, table, "_sonora_deleted_at IS NULL")
        assert asset_meta["sonora/rows_newly_marked_deleted"] == asset_meta[
            "sonora/rows_in_table_deleted_in_salesforce"] == rows_in_table(db, table, "_sonora_deleted_at IS NOT NULL")
        assert "dagster/partition_row_count" not in asset_meta  # a mirror table is not split by window


def test_an_initial_import_with_a_lookback_says_where_it_started(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    since = (org.clock.now() - timedelta(days=200)).date()
    with dg.instance_for_test() as instance:
        run = sync_job(org, db).execute_in_process(
            instance=instance, partition_key=today_key(org), asset_selection=[dg.AssetKey(["salesforce", "case"])],
            run_config={"ops": {"salesforce__case": {"config": {"initial_import": f"since:{since}"}}}})
    case = metadata_of(run)["salesforce/case"]
    start = datetime(since.year, since.month, since.day)
    assert case["sonora/sync_kind"] == "initial" and case["sonora/initial_import"] == f"since:{since}"
    assert case["sonora/read_from"] == start.isoformat() + "Z"
    read_to = instant(case["sonora/read_to"])
    window_from = datetime.strptime(today_key(org), "%Y-%m-%d") - timedelta(seconds=SETTINGS.sync.overlap_seconds)
    assert 0 < served(org, "Case", start, read_to) < served(org, "Case", None, read_to)  # the lookback cut rows
    assert case["sonora/rows_read_this_run"] == served(org, "Case", start, read_to) + served(
        org, "Case", window_from, read_to)
    assert case["dagster/row_count"] == rows_in_table(db, "case") == served(org, "Case", start, read_to)
    assert case["sonora/covers"].startswith(f"Initial import (since:{since}): every record of Case with "
                                            f"SystemModstamp from {start.isoformat()}Z to {case['sonora/read_to']} ")
    assert "Records outside initial_import since:" in case["sonora/covers"]


def test_sensor_runs_only_changed_windows_and_the_mirror_converges(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        materialize(org, db, instance, partition_key=today_key(org))
        first = tick(org, db, instance, None)
        assert not getattr(first, "run_requests", None)  # nothing changed since the import
        rng = random.Random(7)
        ids = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Account" WHERE NOT "IsDeleted"').fetchall()]
        touched = rng.sample(ids, 5)
        for rid in touched:
            org.update("Account", rid, {"Sonora_Notes__c": "touched"})
        org.delete("Account", ids[0]) if ids[0] else None
        case_ids = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Case" WHERE NOT "IsDeleted"').fetchall()]
        org.update("Case", case_ids[0], {"Status": "Closed"})
        org.advance_clock(LAG + 3)
        second = tick(org, db, instance, None)
        requested = {(key.to_user_string(), r.partition_key) for r in second.run_requests for key in r.asset_selection}
        assert {key for key, _ in requested} == {"salesforce/account", "salesforce/case"}
        assert len(second.run_requests) == len({r.partition_key for r in second.run_requests})  # one run per window
        assert salesforce_changes.job_name == SYNC_JOB_NAME  # the daemon runs every request as this job
        meta = {}
        for request in second.run_requests:
            run = materialize(org, db, instance, partition_key=request.partition_key, selection=request.asset_selection,
                              tags=request.tags)
            assert instance.get_run_by_id(run.run_id).job_name == "salesforce_sync_job"
            meta.update(metadata_of(run))
        for name in OBJECTS:
            assert differences(org, db, name) == []
        # An incremental run: its window (start minus the overlap), rows read = what the org served for it.
        account = meta["salesforce/account"]
        assert account["sonora/sync_kind"] == "incremental"
        window_from = datetime.strptime(today_key(org), "%Y-%m-%d") - timedelta(seconds=SETTINGS.sync.overlap_seconds)
        assert instant(account["sonora/read_from"]) == window_from
        read_to = instant(account["sonora/read_to"])
        assert account["sonora/rows_read_this_run"] == served(org, "Account", window_from, read_to)
        assert account["sonora/rows_inserted_or_updated"] == len(set(touched) - {ids[0]})
        assert account["sonora/rows_newly_marked_deleted"] == 1
        assert account["dagster/row_count"] == rows_in_table(db, "account") == org.store.count("Account")
        assert account["sonora/covers"] == (f"Window {today_key(org)}: SystemModstamp from "
                                            f"{account['sonora/read_from']} to {account['sonora/read_to']}.")
        third = tick(org, db, instance, None)
        assert not getattr(third, "run_requests", None)


def test_an_edit_of_the_settings_file_reaches_the_next_run_without_a_reload(org, tmp_path):
    """The overlap is behaviour: two runs of the same loaded job, the file edited between them, and the second
    run re-reads its window from the new overlap (the definitions were not built again)."""
    db, settings_file = tmp_path / "m.duckdb", write_suite_settings(tmp_path / "sonora.yaml")
    job = sync_job(org, db, settings_file)
    org.advance_clock(LAG + 3)
    account = [dg.AssetKey(["salesforce", "account"])]
    with dg.instance_for_test() as instance:
        job.execute_in_process(instance=instance, partition_key=today_key(org), asset_selection=account)
        write_suite_settings(settings_file, sync={"overlap_seconds": 3600})
        second = job.execute_in_process(instance=instance, partition_key=today_key(org), asset_selection=account)
    meta = metadata_of(second)["salesforce/account"]
    assert meta["sonora/sync_kind"] == "incremental"
    day = datetime.strptime(today_key(org), "%Y-%m-%d")
    assert SETTINGS.sync.overlap_seconds == 60  # what the definitions were loaded with
    assert instant(meta["sonora/read_from"]) == day - timedelta(seconds=3600)


def test_sensor_costs_one_api_call_per_tick(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        materialize(org, db, instance, partition_key=today_key(org))
        used = org.quota.snapshot().used
        tick(org, db, instance, None)
        assert org.quota.snapshot().used - used == 1


def test_sensor_skips_with_the_reason_when_credentials_are_refused(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        materialize(org, db, instance, partition_key=today_key(org))
        org.configure_app(client_credentials_enabled=False)
        org.expire_tokens()
        result = tick(org, db, instance, None)
        assert not getattr(result, "run_requests", None)
        text = str(result.skip_message if hasattr(result, "skip_message") else result)
        assert "does not have the client credentials flow enabled" in text.lower(), text


def test_rerunning_a_partition_is_idempotent(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        materialize(org, db, instance, partition_key=today_key(org))
        with duckdb.connect(str(db)) as conn:
            before = conn.execute('SELECT * EXCLUDE (_sonora_synced_at) FROM salesforce.contact ORDER BY "Id"').fetchall()
        materialize(org, db, instance, partition_key=today_key(org))
        with duckdb.connect(str(db)) as conn:
            after = conn.execute('SELECT * EXCLUDE (_sonora_synced_at) FROM salesforce.contact ORDER BY "Id"').fetchall()
    assert before == after


def test_org_inventory_counts_what_the_org_holds(org, tmp_path):
    from sonora_pipeline.defs.salesforce.org_inventory import org_inventory

    db = tmp_path / "m.duckdb"
    with dg.instance_for_test() as instance:
        assert dg.materialize([org_inventory], resources=resources_for(org, db), instance=instance).success
    with duckdb.connect(str(db), read_only=True) as conn:
        counts = dict(conn.execute("SELECT object_name, record_count FROM salesforce_meta.org_inventory").fetchall())
        blank = conn.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = 'salesforce_meta' "
                             "AND coalesce(comment, '') = ''").fetchall()
        table_comment = conn.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'org_inventory'").fetchone()[0]
    assert blank == [] and "Record and field counts" in table_comment
    assert counts["Account"] == org.store.count("Account", include_deleted=False)
    assert counts["Task"] == org.store.conn.execute(
        'SELECT count(*) FROM "Task" WHERE NOT "IsDeleted" AND NOT "IsArchived"').fetchone()[0]


def test_one_run_needing_the_warehouse_pool_twice_completes_under_the_projects_limit(org, tmp_path):
    """The project's pools (dagster.yaml: limit 1, per run) on an instance: a run whose two steps are both in
    the warehouse's pool is recorded as needing it (what the run queue counts) and completes; its steps held
    no slot (none to wait for within the run, none left behind by a killed worker)."""
    pools = yaml.safe_load((ROOT / "dagster.yaml").read_text("utf-8"))["concurrency"]["pools"]
    assert pools == {"granularity": "run", "default_limit": 1}
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    two = [dg.AssetKey(["salesforce", "account"]), dg.AssetKey(["salesforce", "contact"])]
    with dg.instance_for_test(overrides={"concurrency": {"pools": pools}}) as instance:
        result = materialize(org, db, instance, partition_key=today_key(org), selection=two)
        needs = instance.get_run_by_id(result.run_id).run_op_concurrency
        info = instance.event_log_storage.get_concurrency_info(DUCKDB_WRITER)
    assert {e.asset_key for e in result.get_asset_materialization_events()} == set(two)
    assert needs.all_pools == {DUCKDB_WRITER} and not needs.has_unconstrained_root_nodes
    assert info.limit == 1 and info.claimed_slots == [] and info.pending_steps == []


def test_every_step_that_writes_the_warehouse_is_in_its_pool():
    """Object syncs, model tables, org inventory, write-back (its ledger), reconcile and formula refresh."""
    from sonora_pipeline.definitions import defs

    repository = defs().get_repository_def()
    assets = {key.to_user_string(): a for a in repository.assets_defs_by_key.values() for key in a.keys}
    writers = [k for k in assets if k.startswith(("salesforce/", "sonora/", "writeback/"))]
    assert len(writers) == len(assets) >= len(OBJECTS) + 10
    assert {k: assets[k].op.pool for k in writers} == {k: DUCKDB_WRITER for k in writers}
    ops = [repository.get_job(name).graph.node_defs[0] for name in (
        "salesforce_reconcile_job", "salesforce_formula_refresh_job")]
    assert [op.pool for op in ops] == [DUCKDB_WRITER, DUCKDB_WRITER]
    read_only = repository.get_job("salesforce_test_connection_job").graph.node_defs[0]
    assert read_only.pool is None  # no write, no wait


def test_raw_assets_carry_the_freshness_policy():
    """Warned after 26 h without a sync (what the hand-written check said), failing after 7 days; the asset
    says so in its metadata."""
    policies = {a.key: a.specs_by_key[a.key].freshness_policy for a in OBJECT_ASSETS}
    assert len(policies) == len(OBJECTS) + 1  # the suite's custom object too
    assert set(policies.values()) == {dg.FreshnessPolicy.time_window(fail_window=timedelta(days=7),
                                                                      warn_window=timedelta(hours=26))}
    texts = {a.specs_by_key[a.key].metadata["sonora/freshness"] for a in OBJECT_ASSETS}
    assert len(texts) == 1 and "26 h" in texts.pop()
