"""The change sensor decides from the mirror's committed cursors: failed windows come back, busy orgs are
capped and grouped, a paused quota skips at once, and a quiet org costs one call and launches nothing."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from sonora_pipeline.defs.salesforce.assets import asset_key_for
from sonora_pipeline.defs.salesforce.sensors import (
    RUNS_PER_TICK_CAP,
    salesforce_changes,
)
from sonora_pipeline.defs.salesforce.sync_job import SYNC_JOB_NAME
from sonora_pipeline_tests.suite_settings import write_suite_settings
from sonora_pipeline_tests.sync.helpers import OBJECTS, differences
from sonora_pipeline_tests.sync.test_dagster_sync import (
    LAG,
    materialize,
    resources_for,
    sync_job,
    today_key,
)


def tick(org, db, instance, resources=None, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources=resources or resources_for(org, db)) as context:
        return salesforce_changes(context)


def message(result) -> str:
    return str(getattr(result, "skip_message", None) or getattr(result, "skip_reason", None) or result)


def imported(org, db, instance):
    org.advance_clock(LAG + 3)
    materialize(org, db, instance, partition_key=today_key(org))


def some_id(org, object_name):
    return org.store.conn.execute(f'SELECT "Id" FROM "{object_name}" WHERE NOT "IsDeleted" LIMIT 1').fetchone()[0]


def queued_run(instance, request):
    """A run the daemon created from `request`, started and not finished."""
    instance.add_run(DagsterRun(
        job_name=SYNC_JOB_NAME, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset(request.asset_selection),
        tags={**request.tags, "dagster/partition": request.partition_key}))


def test_a_window_whose_run_failed_is_asked_for_again(org, tmp_path):
    db = tmp_path / "m.duckdb"
    with dg.instance_for_test() as instance:
        imported(org, db, instance)
        org.update("Account", some_id(org, "Account"), {"Name": "Renamed while the sync was broken"})
        org.advance_clock(LAG + 3)
        first = tick(org, db, instance)
        assert [(r.partition_key, r.asset_selection) for r in first.run_requests] == \
            [(today_key(org), [asset_key_for("Account")])]
        org.configure_app(client_credentials_enabled=False)  # the run fails: nothing committed
        org.expire_tokens()
        failed = sync_job(org, db).execute_in_process(
            instance=instance, partition_key=first.run_requests[0].partition_key,
            asset_selection=first.run_requests[0].asset_selection, tags=first.run_requests[0].tags,
            raise_on_error=False)
        assert not failed.success
        assert instance.get_run_by_id(failed.run_id).job_name == SYNC_JOB_NAME == salesforce_changes.job_name
        org.configure_app(client_credentials_enabled=True)
        again = tick(org, db, instance)
        assert [(r.partition_key, r.asset_selection) for r in again.run_requests] == \
            [(first.run_requests[0].partition_key, [asset_key_for("Account")])]
        # While its run waits in the queue, the window is not requested a second time.
        queued_run(instance, again.run_requests[0])
        busy = tick(org, db, instance)
        assert not getattr(busy, "run_requests", None)
        assert "already have a run queued or in progress" in message(busy)
        materialize(org, db, instance, partition_key=again.run_requests[0].partition_key,
                    selection=again.run_requests[0].asset_selection)
    assert differences(org, db, "Account") == []


def test_a_busy_org_gets_one_run_per_window_and_a_capped_tick(org, tmp_path):
    """The mirror last committed 12 days ago (the sensor was off): every object has ~13 due windows."""
    db = tmp_path / "m.duckdb"
    with dg.instance_for_test() as instance:
        imported(org, db, instance)
        for name in ("Account", "Contact", "Case"):
            org.update(name, some_id(org, name), {})  # a change today in each
        org.advance_clock(LAG + 3)
        with duckdb.connect(str(db)) as conn:
            conn.execute("UPDATE salesforce._sync_state SET cursor_modstamp = cursor_modstamp - INTERVAL 12 DAY")
            cursor = conn.execute("SELECT min(cursor_modstamp) FROM salesforce._sync_state").fetchone()[0]
        used = org.quota.snapshot().used
        first = tick(org, db, instance)
        assert org.quota.snapshot().used - used == 1  # one call for all objects, whatever the backlog
        keys = [r.partition_key for r in first.run_requests]
        assert len(keys) == RUNS_PER_TICK_CAP == len(set(keys))
        assert keys == sorted(keys) and keys[0] <= cursor.strftime("%Y-%m-%d")  # oldest windows first
        assert all(len(r.asset_selection) > 1 for r in first.run_requests)  # objects grouped per window
        for request in first.run_requests:
            queued_run(instance, request)
        second = tick(org, db, instance)
        rest = [r.partition_key for r in second.run_requests]
        assert rest and set(rest).isdisjoint(keys) and rest[-1] == today_key(org)
        assert len(keys) + len(rest) == len(set(keys) | set(rest)) >= 13
        assert all(asset_key_for(n) in second.run_requests[-1].asset_selection for n in ("Account", "Contact", "Case"))


@pytest.mark.fault
def test_a_paused_quota_skips_the_tick_at_once_with_the_reason(org, tmp_path):
    db = tmp_path / "m.duckdb"
    with dg.instance_for_test() as instance:
        imported(org, db, instance)
        org.update("Case", some_id(org, "Case"), {"Status": "Closed"})
        org.advance_clock(LAG + 3)
        snap = org.quota.snapshot()
        org.set_quota(used=snap.max)  # spent: the org refuses every call with REQUEST_LIMIT_EXCEEDED
        started = time.monotonic()
        refused = tick(org, db, instance)
        assert time.monotonic() - started < 20  # no pause: a waiting client would sleep and retry for hours
        assert not getattr(refused, "run_requests", None)
        assert "API limit exceeded" in message(refused) and "not waiting" in message(refused)
        # The next tick, within sync.quota_pause_seconds, asks the org nothing: the pause is in the sensor's cursor.
        paused = tick(org, db, instance, cursor=refused.cursor)
        assert "Not asking the org until" in message(paused)
        # Usage back under the limit but over the pipeline's share: one probe call, and no runs that would wait.
        org.set_quota(used=int(snap.max * 0.95))
        time.sleep(0.6)  # past the suite's quota_pause_seconds (0.5)
        before = org.quota.snapshot().used
        over = tick(org, db, instance, cursor=refused.cursor)
        assert org.quota.snapshot().used - before == 1
        assert not getattr(over, "run_requests", None)
        assert "at the pipeline's share" in message(over)
        # Paused again: a tick right after spends no call on an org already at the pipeline's share.
        again = tick(org, db, instance, cursor=over.cursor)
        assert org.quota.snapshot().used - before == 1 and "Not asking the org until" in message(again)
        # Once the pause has passed and the window frees up, the change is requested.
        org.set_quota(used=0)
        time.sleep(0.6)
        freed = tick(org, db, instance, cursor=over.cursor)
        assert [r.asset_selection for r in freed.run_requests] == [[asset_key_for("Case")]]


def test_an_edit_of_the_settings_file_reaches_the_next_tick_without_a_reload(org, tmp_path, monkeypatch):
    """The lag is behaviour: the same loaded sensor reads it from the file at each tick. With an hour of lag a
    change made just now is not asked for; the file edited to 5 s, the next tick requests its window."""
    db, settings_file = tmp_path / "m.duckdb", write_suite_settings(tmp_path / "sonora.yaml",
                                                                    sync={"lag_seconds": 3600})
    resources = resources_for(org, db, settings_file)
    with dg.instance_for_test() as instance:
        imported(org, db, instance)
        org.update("Account", some_id(org, "Account"), {"Name": "Renamed just now"})
        org.advance_clock(LAG + 3)
        waiting = tick(org, db, instance, resources)
        assert not getattr(waiting, "run_requests", None) and "No changes" in message(waiting)
        write_suite_settings(settings_file, sync={"lag_seconds": 5})
        ready = tick(org, db, instance, resources)
        assert [(r.partition_key, r.asset_selection) for r in ready.run_requests] == \
            [(today_key(org), [asset_key_for("Account")])]
        # A mistake in the file skips the tick with the file's own message, and requests nothing.
        settings_file.write_text("sync:\n  lag_seconds: soon\n", "utf-8")
        monkeypatch.setenv("SONORA_CONFIG", str(settings_file))  # as deployed: the org resource reads it too
        broken = tick(org, db, instance, resources)
        assert not getattr(broken, "run_requests", None)
        assert "Not syncing" in message(broken) and "lag_seconds" in message(broken)


def test_a_quiet_org_costs_one_call_and_launches_nothing(org, tmp_path):
    db = tmp_path / "m.duckdb"
    with dg.instance_for_test() as instance:
        imported(org, db, instance)
        org.advance_clock(LAG + 3)
        used = org.quota.snapshot().used
        result = tick(org, db, instance)
        assert org.quota.snapshot().used - used == 1
        assert not getattr(result, "run_requests", None)
        assert "No changes" in message(result)
    for name in OBJECTS:
        assert differences(org, db, name) == []
