"""Malformed answers from the org that do not heal — a JSON body cut short, a CSV page missing a row, a wrong
Sforce-NumberOfRecords, every time — stop the sync with a clear error before anything is written. (Answers
malformed once are read again: `test_fault_matrix.py`.)"""

from __future__ import annotations

import pytest

from sonora_pipeline.salesforce.errors import ApiError
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.sync.helpers import client_for, log


def _sync(org, db, settings, name="Contact"):
    return sync_object(client_for(org, max_backoff_seconds=0.05), db, name, settings, window=None,
                       partition_key=None, run_id="t", log=log)


@pytest.mark.bad_input
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
