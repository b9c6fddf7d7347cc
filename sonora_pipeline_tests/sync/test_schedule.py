"""The fixed-cadence alternative to the sensor: at 00:30 UTC the schedule asks for the day that has closed."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from sonora_pipeline.defs.jobs import salesforce_sync_job, salesforce_sync_schedule
from sonora_pipeline.defs.partitions import sync_window


@pytest.fixture(scope="module")
def repository():
    """The project's definitions as loaded by Dagster (the schedule's partition key is checked against them)."""
    from sonora_pipeline.definitions import defs

    return defs().get_repository_def()


@pytest.mark.parametrize(("tick", "closed"), [
    (datetime(2026, 3, 15, 0, 30, tzinfo=UTC), "2026-03-14"),
    (datetime(2026, 3, 1, 0, 30, tzinfo=UTC), "2026-02-28"),   # month boundary
    (datetime(2026, 1, 1, 0, 30, tzinfo=UTC), "2025-12-31"),   # year boundary
    (datetime(2028, 3, 1, 0, 30, tzinfo=UTC), "2028-02-29"),   # leap day
])
def test_the_0030_tick_requests_the_day_that_has_closed(tick, closed, repository):
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repository) as context:
        request = salesforce_sync_schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in request] == [closed]
    assert request[0].run_key == closed  # one run per closed day, whatever the number of evaluations
    # The window it names is a whole day that ended at midnight, before the tick.
    window = sync_window.time_window_for_partition_key(closed)
    assert window.end == tick.replace(minute=0)
    assert salesforce_sync_schedule.cron_schedule == "30 0 * * *"
    assert salesforce_sync_schedule.execution_timezone == "UTC"
    assert salesforce_sync_schedule.job_name == salesforce_sync_job.name


def test_a_day_before_the_first_window_is_skipped_with_the_reason(repository):
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, repository_def=repository,
            scheduled_execution_time=datetime(2020, 1, 1, 0, 30, tzinfo=UTC)) as context:
        result = salesforce_sync_schedule.evaluate_tick(context)
    assert not result.run_requests
    assert "partitions_start" in result.skip_message


