"""Two worker processes (real OS processes, as two machines' run workers would be) commit two orgs into one
DuckLake at the same time: each org has its own catalog (metadata schema) and data folder, so their commits
interleave without a conflict, and each mirror equals its org."""

from __future__ import annotations

import multiprocessing
import traceback

from sonora_pipeline.mirror.lake import LakeLocation
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import OrgConnection
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline_tests.ducklake.helpers import lake_settings, snapshot_times
from sonora_pipeline_tests.sync.helpers import differences, log

SYNC = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60, bulk_threshold=1_000_000)
OBJECTS = ("Account", "Contact", "Opportunity")


def _worker(credentials: dict, location: LakeLocation, barrier, errors) -> None:
    """One run worker: sync the org's objects into its catalog, each object its own commit."""
    from sonora_pipeline.sync.engine import sync_object

    try:
        client = SalesforceClient(OrgConnection(**credentials), log=log)
        barrier.wait(timeout=60)
        for name in OBJECTS:
            sync_object(client, location, name, SYNC, window=None, partition_key=None, run_id="worker", log=log)
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_two_processes_commit_two_orgs_into_one_lake_at_once(local_org_factory, pg, catalog_db, tmp_path):
    lake = lake_settings(pg, catalog_db, tmp_path / "lake")
    orgs = {name: local_org_factory(records=100, seed=seed, name=name) for name, seed in (("acme", 31), ("globex", 32))}
    locations = {name: LakeLocation.for_org(lake, name, tmp_path / "work" / name) for name in orgs}
    spawn = multiprocessing.get_context("spawn")
    barrier, errors = spawn.Barrier(2), spawn.Queue()
    workers = []
    for name, org in orgs.items():
        org.advance_clock(SYNC.lag_seconds + 3)
        c = org.credentials
        credentials = {"instance_url": c.instance_url, "consumer_key": c.consumer_key,
                       "consumer_secret": c.consumer_secret, "ca_bundle": c.ca_bundle}
        workers.append(spawn.Process(target=_worker, args=(credentials, locations[name], barrier, errors)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert [w.exitcode for w in workers] == [0, 0], failures

    # Overlapping: each org's commits (DuckLake's own record of them) fall between the other's first and last.
    times = {name: snapshot_times(location) for name, location in locations.items()}
    assert all(len(t) >= len(OBJECTS) for t in times.values()), times
    acme, globex = times["acme"], times["globex"]
    assert acme[0] < globex[-1] and globex[0] < acme[-1], times
    merged = [name for _, name in sorted((t, name) for name, ts in times.items() for t in ts)]
    assert sum(a != b for a, b in zip(merged, merged[1:])) >= 2, merged   # they took turns, not one then the other

    for name, org in orgs.items():
        for object_name in OBJECTS:
            assert differences(org, locations[name], object_name) == [], (name, object_name)
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["acme", "globex"]
