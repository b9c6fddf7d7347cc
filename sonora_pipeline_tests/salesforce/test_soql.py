"""SOQL literals: each escape Salesforce documents, and values that would break a hand-quoted query found
again, exactly, through the local org's SOQL over HTTPS."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sonora_pipeline.salesforce.soql import soql_datetime, soql_string, soql_string_list
from sonora_pipeline_tests.sync.helpers import client_for

# Quote, backslash, newline, carriage return, tab, double quote, and an injection attempt.
AWKWARD = ["O'Brien", "back\\slash", "trailing\\", "line1\nline2", "cr\r\nlf", "tab\there", 'say "hi"',
           "' OR Name != '", "\\'", "Zürich – 東京"]


def test_every_documented_escape():
    assert soql_string("a'b\\c\nd\re\tf\"g") == "'a\\'b\\\\c\\nd\\re\\tf\\\"g'"
    assert soql_string_list(["x", "y'z"]) == "'x', 'y\\'z'"
    assert soql_string_list([]) == ""


def test_datetime_literals_are_utc_with_milliseconds():
    naive = datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert soql_datetime(naive) == "2024-01-02T03:04:05.123Z"
    aware = datetime(2024, 1, 2, 5, 4, 5, 123000, tzinfo=timezone(timedelta(hours=2)))
    assert soql_datetime(aware) == "2024-01-02T03:04:05.123Z"


def test_awkward_values_find_exactly_their_record_through_the_org(org):
    ids = {value: org.create("Account", {"Name": value}) for value in AWKWARD}
    org.create("Account", {"Name": "O"})  # decoys a broken escape would match
    org.create("Account", {"Name": "line1"})
    client = client_for(org)
    for value, record_id in ids.items():
        rows = [r for page in client.query_pages(f"SELECT Id, Name FROM Account WHERE Name = {soql_string(value)}")
                for r in page]
        assert [(r["Id"], r["Name"]) for r in rows] == [(record_id, value)], repr(value)
    rows = [r for page in client.query_pages(f"SELECT Id FROM Account WHERE Name IN ({soql_string_list(AWKWARD)})")
            for r in page]
    assert sorted(r["Id"] for r in rows) == sorted(ids.values())
