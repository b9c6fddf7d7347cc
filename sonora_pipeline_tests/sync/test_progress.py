"""The progress bar shows time left whenever an object's total is known and its read takes over a second."""

from __future__ import annotations

import re

import dagster as dg
import pytest

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.salesforce.objects import OBJECT_ASSETS
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.sync.runner import run_sync
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.sync.test_dagster_sync import LAG, resources_for


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
