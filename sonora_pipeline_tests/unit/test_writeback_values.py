"""The write-back's pure rules, without an org: the ledger's text for a value, "does the org already hold it",
the ledger's memory of the last push and of an unfinished send, and the target check on a describe.

These carry the guarantees the org-facing tests prove end to end (nothing written twice, nothing written that
does not fit), so a change to them fails here in a second.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import pytest

from sonora_pipeline.settings import validate_settings
from sonora_pipeline.writeback.ledger import LedgerRow, canonical, ledger_state, record
from sonora_pipeline.writeback.readback import same_value, timestamp_or_none
from sonora_pipeline.writeback.report import Change, changes_table
from sonora_pipeline.writeback.targets import Target, TargetError, validate

NUMBER = Target(name="Score__c", type="double", scale=2, length=0)


@pytest.mark.parametrize("value, text", [
    (None, None), (True, "true"), (False, "false"), (3.0, "3"), (2.5, "2.5"), (float("nan"), None),
    (float("inf"), None), (Decimal("12.50"), "12.5"), (7, "7"), (date(2026, 1, 2), "2026-01-02"),
    (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"), ("Green", "Green"),
])
def test_the_ledgers_text_is_stable(value, text):
    assert canonical(value) == text


@pytest.mark.parametrize("value", ["2026-03-04T05:06:07.123+0000", "2026-03-04T05:06:07.123Z",
                                   "2026-03-04T07:06:07.123+02:00", "2026-03-04T05:06:07.123456",
                                   datetime(2026, 3, 4, 6, 6, 7, 123999, tzinfo=timezone(timedelta(hours=1)))])
def test_salesforce_and_duckdb_timestamps_compare_as_timestamp_or_none_milliseconds(value):
    assert timestamp_or_none(value) == datetime(2026, 3, 4, 5, 6, 7, 123000)


@pytest.mark.parametrize("target, org_value, wire, same", [
    (NUMBER, 71.25, 71.2499, True),       # the org rounds to the field's scale
    (NUMBER, 71.25, 71.26, False),
    (NUMBER, "71.25", 71.25, True),       # Bulk CSV gives text
    (NUMBER, None, None, True),
    (NUMBER, "", None, True),             # an empty CSV cell is null
    (NUMBER, None, 1.0, False),
    (NUMBER, 1.0, None, False),           # clearing a field is a change
    (Target("Note__c", "string", 0, 80), None, "", True),
    (Target("Band__c", "picklist", 0, 40), None, "", False),
    (Target("Flag__c", "boolean", 0, 0), "true", True, True),
    (Target("Day__c", "date", 0, 0), "2026-01-02", "2026-01-02T00:00:00", True),
    (Target("At__c", "datetime", 0, 0), "2026-01-02T03:04:05.000+0000", "2026-01-02T03:04:05", True),
    (Target("Band__c", "picklist", 0, 40), "Green", "Yellow", False),
])
def test_the_org_already_holds_the_value(target, org_value, wire, same):
    assert same_value(target, org_value, wire) is same


def test_the_ledger_remembers_the_last_success_and_an_unfinished_send():
    conn = duckdb.connect()
    at = datetime(2026, 1, 1, 12, 0)
    record(conn, [LedgerRow("001A", "Score__c", "70", at, "success")], run_id="r1", attempted_at=at)
    record(conn, [LedgerRow("001A", "Score__c", "71", at, "error", "X", "failed"),
                  LedgerRow("001B", "Score__c", None, at, "success")], run_id="r2", attempted_at=at + timedelta(1))
    record(conn, [LedgerRow("001B", "Score__c", "5", at, "sending")], run_id="r3", attempted_at=at + timedelta(2))
    record(conn, [LedgerRow("001C", "Score__c", "9", at, "sending")], run_id="r3", attempted_at=at + timedelta(2))
    record(conn, [LedgerRow("001C", "Score__c", "9", at, "success")], run_id="r3", attempted_at=at + timedelta(3))
    pushed, unfinished = ledger_state(conn)
    # a failure after a success leaves the success as "last pushed"; a cleared field is remembered as None
    assert pushed == {("001A", "Score__c"): "70", ("001B", "Score__c"): None, ("001C", "Score__c"): "9"}
    # only a `sending` row that is still the latest of its value is unfinished
    assert unfinished == {("001B", "Score__c"): at + timedelta(2)}


def _settings(*mappings):
    return validate_settings({"writeback": {"enabled": True, "mappings": list(mappings)}})


def _describe(*fields):
    return {"name": "Account", "fields": [{"updateable": True, "calculated": False, **f} for f in fields]}


class _Value:
    def __init__(self, wire, mapping_index=0):
        self.wire, self.mapping_index = wire, mapping_index


def test_a_target_that_fits_is_returned_with_the_orgs_spelling():
    s = _settings({"column": "health_scores.score", "field": "sonora_score__c"})
    targets = validate(_describe({"name": "Sonora_Score__c", "type": "double", "precision": 5, "scale": 2}), s,
                       [_Value(99.5)], {0: "DOUBLE"})
    assert targets == {"sonora_score__c": Target("Sonora_Score__c", "double", 2, 0)}


@pytest.mark.parametrize("field, value, message", [
    ({"type": "double", "precision": 4, "scale": 2}, 100.0,
     "Account.Score__c holds numbers below 100 (double, precision 4, scale 2)"),
    ({"type": "int", "digits": 9}, 1.5, "Account.Score__c is a whole-number field"),
    ({"type": "string", "length": 10}, 1.0, "Account.Score__c is a string field but health_scores.score is a number"),
    ({"type": "double", "calculated": True}, 1.0, "Account.Score__c is a formula field (not updateable)"),
    ({"type": "double", "updateable": False}, 1.0, "Account.Score__c is not updateable by the run-as user"),
], ids=["too-big", "decimals-into-int", "wrong-type", "formula", "read-only"])
def test_a_target_that_does_not_fit_names_the_field_and_the_fix(field, value, message):
    s = _settings({"column": "health_scores.score", "field": "Score__c"})
    with pytest.raises(TargetError) as raised:
        validate(_describe({"name": "Score__c", **field}), s, [_Value(value)], {0: "DOUBLE"})
    assert message in str(raised.value) and "writeback.mappings[0].field" in str(raised.value)


def test_a_missing_target_suggests_the_close_name():
    s = _settings({"column": "health_scores.score", "field": "Sonora_Helth_Score__c"})
    with pytest.raises(TargetError, match=r"\(did you mean Sonora_Health_Score__c\?\)"):
        validate(_describe({"name": "Sonora_Health_Score__c", "type": "double"}), s)


def test_the_changes_table_is_cut_at_its_limit():
    changes = [Change(f"001{i}", "Score__c", None, 1.5, "success") for i in range(4)]
    table = changes_table(changes, limit=2).splitlines()
    assert table[2] == "| 0010 | Score__c | None | 1.5 | success |  |"
    assert len(table) == 5 and table[-1].startswith("| … 2 more")
