"""`sonora-pipeline sync` killed with SIGKILL at a random point, then run again, leaves the same tables as a
clean sync; while it lies dead, its cursor never claims rows that were not committed.

Each trial has its own org (seeded by the trial number) and syncs two of the seven objects, so that every
object is killed in several trials (windows over 40 rows go through Bulk API 2.0, smaller ones through REST).
Even trials kill the initial import, odd ones an incremental sync after a clean import and a round of changes
in the org (edits, new records, deletes). The kill point is the k-th API call the org has received from the
sync (k drawn from the calls a clean run makes), plus a few random milliseconds, so kills land while a page is
read, spooled or committed. The processes are
forked from a warm host (`kill_host.py`) so a trial costs its syncs, not Dagster's imports.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import duckdb
import pytest

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.conftest import running_org
from sonora_pipeline_tests.kill_host import KillHost
from sonora_pipeline_tests.sync.helpers import OBJECTS, client_for, differences
from sonora_pipeline_tests.sync.helpers import log as test_log

TRIALS = int(os.environ.get("SONORA_KILL_TRIALS", "20"))  # a longer soak: SONORA_KILL_TRIALS=200
SETTINGS = "sync:\n  initial_import: all\n  lag_seconds: 5\n  overlap_seconds: 60\n  bulk_threshold: 40\n"
OBJECTS_PER_TRIAL = 2
SYNC = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60, bulk_threshold=40)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = KillHost(tmp_path_factory.mktemp("kill-host"), SETTINGS)
    yield h
    h.close()


def sync_argv(objects) -> list[str]:
    return ["sync", "--quiet", "--objects", ",".join(objects)]


def calls(org: LocalOrg) -> int:
    return org.quota.snapshot().used


def change_the_org(org: LocalOrg, rng: random.Random) -> None:
    """A round of what users do between syncs: edits, new records, deletions (recycle bin)."""
    accounts = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Account" WHERE NOT "IsDeleted"').fetchall()]
    contacts = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Contact" WHERE NOT "IsDeleted"').fetchall()]
    for rid in rng.sample(accounts, 25):
        org.update("Account", rid, {"Sonora_Notes__c": f"note {rng.random():.6f}", "ARR__c": rng.randint(1, 10**6)})
    for rid in rng.sample(contacts, 8):
        org.delete("Contact", rid)
    for i in range(12):
        new = org.create("Account", {"Name": f"Trial Co {i}", "Type": "Prospect"})
        org.create("Contact", {"LastName": f"Person {i}", "AccountId": new})
    org.advance_clock(8)


def cursor_never_ahead(org: LocalOrg, db: Path) -> list[str]:
    """Every org record modified before an object's committed cursor must already be in the mirror."""
    if not db.exists():
        return []
    problems = []
    with duckdb.connect(str(db), read_only=True) as conn:
        try:
            states = dict(conn.execute("SELECT object_name, cursor_modstamp FROM salesforce._sync_state").fetchall())
        except duckdb.CatalogException:
            return []
        for name, cursor in states.items():
            if cursor is None:
                continue
            mirrored = {r[0] for r in conn.execute(f'SELECT "Id" FROM salesforce."{table_name_for(name)}"').fetchall()}
            expected = {r[0] for r in org.store.conn.execute(
                f'SELECT "Id" FROM "{name}" WHERE "SystemModstamp" < ?', [cursor]).fetchall()}
            missing = expected - mirrored
            if missing:
                problems.append(f"{name}: cursor {cursor} but {len(missing)} older rows not committed")
    return problems


def mirror_equals_org(org: LocalOrg, db: Path, objects) -> None:
    for name in objects:
        assert differences(org, db, name) == []
    with duckdb.connect(str(db), read_only=True) as conn:
        for name in objects:
            total, distinct = conn.execute(
                f'SELECT count(*), count(DISTINCT "Id") FROM salesforce."{table_name_for(name)}"').fetchone()
            assert total == distinct, f"{name}: duplicate rows"


@pytest.fixture(scope="module")
def clean_run_calls(host, tmp_path_factory):
    """API calls per object of a clean initial import and of a clean incremental sync (the range kill points
    are drawn from)."""
    workdir = tmp_path_factory.mktemp("calibration")
    with running_org(workdir / "org", records=400, seed=100) as org:
        org.advance_clock(8)
        db, log = workdir / "mirror.duckdb", workdir / "sync.log"
        before = calls(org)
        assert host.run(org, db, log, argv=sync_argv(OBJECTS)) == 0, log.read_text()[-3000:]
        initial = calls(org) - before
        change_the_org(org, random.Random(100))
        before = calls(org)
        assert host.run(org, db, log, argv=sync_argv(OBJECTS)) == 0, log.read_text()[-3000:]
        return {"initial": initial / len(OBJECTS), "incremental": (calls(org) - before) / len(OBJECTS)}


@pytest.mark.sigkill_trial
@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_at_a_random_point_then_rerun_equals_a_clean_sync(host, clean_run_calls, tmp_path, trial,
                                                                  local_org_factory):
    rng = random.Random(trial)
    org = local_org_factory(records=400, seed=trial)
    org.advance_clock(8)
    db, log = tmp_path / "mirror.duckdb", tmp_path / "sync.log"
    mode = "incremental" if trial % 2 else "initial"
    objects = rng.sample(OBJECTS, OBJECTS_PER_TRIAL)
    if mode == "incremental":  # a clean import first (in this process: it is the set-up, not the trial)
        client = client_for(org)
        for name in objects:
            sync_object(client, db, name, SYNC, window=None, partition_key=None, run_id="setup", log=test_log)
        change_the_org(org, rng)
    org.set_faults(latency_seconds=rng.choice([0.0, 0.005, 0.02]))
    # Well inside a clean run's calls, whose number varies a little with the seed.
    kill_at = rng.randint(1, max(1, int(clean_run_calls[mode] * len(objects) * 0.7)))
    before = calls(org)
    pid = host.start(org, db, log, argv=sync_argv(objects))
    deadline = time.monotonic() + 120
    while calls(org) - before < kill_at and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0, 0.03))
    os.kill(pid, signal.SIGKILL)
    status = host.wait()
    assert status == -signal.SIGKILL, f"the sync ended on its own ({status}) before call {kill_at}"
    assert cursor_never_ahead(org, db) == []
    org.clear_faults()
    assert host.run(org, db, log, argv=sync_argv(objects)) == 0, log.read_text()[-3000:]
    mirror_equals_org(org, db, objects)
    spool = tmp_path / ".sonora-spool"
    assert not spool.exists() or not any(spool.iterdir())
