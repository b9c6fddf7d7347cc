"""The progress bar shows time left whenever an object's total is known and its read takes over a second."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.salesforce.assets import OBJECT_ASSETS
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.sync.progress import duration, time_left
from sonora_pipeline.sync.runner import run_sync
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.sync.test_dagster_sync import LAG, resources_for


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0, 0.4, 45, 60, 125, 3600, 3660, 7325)] == \
        ["0 s", "0 s", "45 s", "1 min", "2 min 5 s", "1 h", "1 h 1 min", "2 h 2 min"]


def test_time_left_from_the_objects_own_rate():
    assert time_left(400_000, 1_000_000, 20.0) == "~30 s left"  # 20,000 rows/s, 600,000 to go
    assert time_left(1_000, 100_000, 10.0) == "~16 min 30 s left"


def test_time_left_before_the_first_page_uses_the_rate_of_earlier_objects():
    assert time_left(0, 60_000, 5.0, earlier_rate=1_000.0) == "~1 min left"
    assert time_left(0, 60_000, 5.0) is None  # nothing read yet in this command: no rate to go by


def test_no_time_left_when_there_is_nothing_to_estimate():
    assert time_left(10, 0, 5.0, 100.0) is None  # total unknown
    assert time_left(500, 500, 5.0, 100.0) is None  # all read
    assert time_left(100, 1_000, 0.5, 100.0) is None  # under a second: the bar does not need it


@pytest.mark.fault
def test_a_slow_read_shows_time_left_in_the_bar(org, tmp_path, capsys):
    """Each query answers after 1.5 s: the second object's one page is awaited for over a second, and the bar
    (redrawn while it waits) estimates it from the rate the first object was read at."""
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    org.set_faults(latency_seconds=1.5, path_contains="/query")
    defs = dg.Definitions(assets=OBJECT_ASSETS, jobs=[salesforce_sync_job], resources=resources_for(org, db))
    with dg.DagsterInstance.ephemeral() as instance:
        results = run_sync(defs, db, ("Contact", "Account"), SETTINGS.sync.overlap_seconds, sync_window,
                           instance=instance, show_progress=True)
    assert all(r.success for r in results)
    frames = capsys.readouterr().err.split("\r")
    estimates = [f for f in frames if re.search(r"Account initial import: 0/[\d,]+ rows, 0/s, ~\d+ s left", f)]
    assert estimates, "\n".join(frames)
    assert re.search(r"\] 2/2 done", frames[-1])
    assert differences(org, db, "Account") == []
