"""The initial import shows in partition status as what it is: every window up to today, materialized."""

from __future__ import annotations

import dagster as dg
import duckdb

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.salesforce.assets import OBJECT_ASSETS, asset_key_for
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.sync.runner import run_sync
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.sync.test_dagster_sync import LAG, resources_for

# Two objects: Dagster stores one event per window and object (~700 each), which is what costs time here.
OBJECTS_HERE = ("Account", "Contact")


def test_after_the_initial_import_every_window_up_to_today_is_materialized(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    defs = dg.Definitions(assets=OBJECT_ASSETS, jobs=[salesforce_sync_job], resources=resources_for(org, db))
    objects = OBJECTS_HERE
    keys = sync_window.get_partition_keys()
    # In memory (the suite's time); the CLI does the same on the persistent DAGSTER_HOME instance.
    with dg.DagsterInstance.ephemeral() as instance:
        results = run_sync(defs, db, objects, SETTINGS.sync.overlap_seconds, sync_window, instance=instance,
                           show_progress=False, initial_covers_range=True)
        assert [r.success for r in results] == [True] * len(objects)
        for name in objects:
            assert instance.get_materialized_partitions(asset_key_for(name)) == set(keys), name
        # One run per object, each a single-run backfill of the whole range.
        runs = instance.get_runs()
        assert len(runs) == len(objects)
        assert {(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                for r in runs} == {(keys[0], keys[-1])}
        # A second sync is incremental: it starts at the window of the cursor, not at partitions_start.
        org.advance_clock(LAG + 3)
        again = run_sync(defs, db, objects, SETTINGS.sync.overlap_seconds, sync_window, instance=instance,
                         show_progress=False, initial_covers_range=True)
        assert all(r.success for r in again)
        later = [r for r in instance.get_runs() if r.run_id not in {x.run_id for x in runs}]
        assert {r.tags.get("dagster/asset_partition_range_start", r.tags.get("dagster/partition")) for r in later} \
            >= {keys[-1]} and keys[0] not in {r.tags.get("dagster/asset_partition_range_start") for r in later}
    for name in objects:
        assert differences(org, db, name) == []
    # The import read the org once, plus today's window: not every row modified since partitions_start twice.
    with duckdb.connect(str(db), read_only=True) as conn:
        kinds = conn.execute("SELECT object_name, list(kind ORDER BY kind), list(DISTINCT partition_key) "
                             "FROM salesforce._sync_windows WHERE run_id IN (SELECT unnest(?)) GROUP BY 1",
                             [[r.run_id for r in runs]]).fetchall()
    assert {name for name, _, _ in kinds} == set(objects)
    for name, kind_list, partition_keys in kinds:
        assert kind_list.count("initial") == 1, (name, kind_list)
        assert partition_keys == [keys[-1]], (name, partition_keys)


def test_sqlite_and_ephemeral_instances_materialize_only_today(org, tmp_path):
    """An ephemeral instance forgets partition status, and SQLite storage would pay two writes per window."""
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    defs = dg.Definitions(assets=OBJECT_ASSETS, jobs=[salesforce_sync_job], resources=resources_for(org, db))
    with dg.DagsterInstance.ephemeral() as ephemeral, dg.instance_for_test() as sqlite:
        for instance in (ephemeral, sqlite):
            assert not instance.event_log_storage.supports_partition_subset_in_asset_materialization_planned_events
    with dg.instance_for_test() as instance:
        results = run_sync(defs, db, ("Case",), SETTINGS.sync.overlap_seconds, sync_window, instance=instance,
                           show_progress=False)
        assert results[0].success
        assert instance.get_materialized_partitions(asset_key_for("Case")) == {sync_window.get_last_partition_key()}
    assert differences(org, db, "Case") == []
