"""Malformed answers from the org — a JSON body cut short, a CSV page missing a row, a wrong
Sforce-NumberOfRecords — are read again when that can heal them, and otherwise stop the sync with a clear
error before anything is written."""

from __future__ import annotations

import pytest

from sonora_pipeline.salesforce.errors import ApiError
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.sync.helpers import client_for, differences, log


def _sync(org, db, settings, name="Contact"):
    return sync_object(client_for(org, max_backoff_seconds=0.05), db, name, settings, window=None,
                       partition_key=None, run_id="t", log=log)


def test_json_cut_short_once_is_read_again(org, tmp_path):
    settings = SyncSettings(initial_import="all", lag_seconds=5, bulk_threshold=1_000_000)
    org.advance_clock(8)
    org.set_faults(truncate_next_json=2, path_contains="/query")
    _sync(org, tmp_path / "m.duckdb", settings)
    assert org.faults.truncate_next_json == 0
    assert differences(org, tmp_path / "m.duckdb", "Contact") == []


@pytest.mark.parametrize("fault", ["short_next_csv", "miscount_next_csv"])
def test_a_bad_csv_page_once_is_read_again(org, tmp_path, fault):
    settings = SyncSettings(initial_import="all", lag_seconds=5, bulk_threshold=1)
    org.advance_clock(8)
    org.set_faults(**{fault: 1})
    _sync(org, tmp_path / "m.duckdb", settings)
    assert getattr(org.faults, fault) == 0
    assert differences(org, tmp_path / "m.duckdb", "Contact") == []


@pytest.mark.parametrize("fault, settings_kwargs, code", [
    ({"truncate_next_json": 1000, "path_contains": "/query"}, {"bulk_threshold": 1_000_000}, "NOT_JSON"),
    ({"miscount_next_csv": 1000}, {"bulk_threshold": 1}, "RESULT_COUNT_MISMATCH"),
    ({"short_next_csv": 1000}, {"bulk_threshold": 1}, "RESULT_COUNT_MISMATCH"),
])
def test_persistently_malformed_answers_stop_before_anything_is_written(org, tmp_path, fault, settings_kwargs, code):
    settings = SyncSettings(initial_import="all", lag_seconds=5, **settings_kwargs)
    org.advance_clock(8)
    org.set_faults(**fault)
    db = tmp_path / "m.duckdb"
    with pytest.raises(ApiError) as err:
        _sync(org, db, settings)
    assert err.value.error_code == code and str(err.value)
    assert not db.exists()  # nothing written, not even an empty table
