"""The Dagster side: partitioned object assets, the change sensor and its run keys, against the local org."""

from __future__ import annotations

import random

import dagster as dg
import duckdb

from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.objects import OBJECT_ASSETS
from sonora_pipeline.defs.salesforce.sensors import salesforce_changes
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline_tests.sync.helpers import OBJECTS, differences

LAG = SETTINGS.sync.lag_seconds


def resources_for(org, db):
    c = org.credentials
    return {
        "salesforce": SalesforceResource(instance_url=c.instance_url, consumer_key=c.consumer_key,
                                         consumer_secret=c.consumer_secret, ca_bundle=c.ca_bundle),
        "warehouse": WarehouseResource(path=str(db)),
    }


def materialize(org, db, instance, *, partition_key, selection=None):
    assets = [a for a in OBJECT_ASSETS if selection is None or set(a.keys) & set(selection)]
    result = dg.materialize(assets, resources=resources_for(org, db), instance=instance,
                            partition_key=partition_key)
    assert result.success
    return result


def tick(org, db, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources_for(org, db))
    return salesforce_changes(context)


def today_key(org):
    return org.clock.now().strftime("%Y-%m-%d")


def test_first_materialization_imports_everything_with_metadata(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        result = materialize(org, db, instance, partition_key=today_key(org))
        events = result.get_asset_materialization_events()
        meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    account = meta["salesforce/account"]
    assert account["sonora/initial_import"].value == "all"
    assert account["sonora/api_calls"].value > 0
    assert account["dagster/row_count"].value == org.store.count("Account") - 0 or account["dagster/row_count"].value > 0
    assert {c.name for c in account["dagster/column_schema"].schema.columns} >= {"Id", "ARR__c", "BillingAddress"}
    for name in OBJECTS:
        assert differences(org, db, name) == []


def test_sensor_runs_only_changed_windows_and_the_mirror_converges(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        materialize(org, db, instance, partition_key=today_key(org))
        first = tick(org, db, instance, None)
        assert not getattr(first, "run_requests", None)  # nothing changed since the import
        rng = random.Random(7)
        ids = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Account" WHERE NOT "IsDeleted"').fetchall()]
        for rid in rng.sample(ids, 5):
            org.update("Account", rid, {"Sonora_Notes__c": "touched"})
        org.delete("Account", ids[0]) if ids[0] else None
        case_ids = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Case" WHERE NOT "IsDeleted"').fetchall()]
        org.update("Case", case_ids[0], {"Status": "Closed"})
        org.advance_clock(LAG + 3)
        second = tick(org, db, instance, None)
        requested = {(key.to_user_string(), r.partition_key) for r in second.run_requests for key in r.asset_selection}
        assert {key for key, _ in requested} == {"salesforce/account", "salesforce/case"}
        assert len(second.run_requests) == len({r.partition_key for r in second.run_requests})  # one run per window
        for request in second.run_requests:
            materialize(org, db, instance, partition_key=request.partition_key, selection=request.asset_selection)
        for name in OBJECTS:
            assert differences(org, db, name) == []
        third = tick(org, db, instance, None)
        assert not getattr(third, "run_requests", None)


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
        assert "Client Credentials" in text or "client credentials" in text.lower()


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
    assert counts["Account"] == org.store.count("Account", include_deleted=False)
    assert counts["Task"] == org.store.conn.execute(
        'SELECT count(*) FROM "Task" WHERE NOT "IsDeleted" AND NOT "IsArchived"').fetchone()[0]
