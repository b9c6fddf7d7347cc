"""What a run reads: the SOQL filters of a sync window and of the initial import, and the SOQL literals in them.

Expected values are worked out by hand from the defaults (lag 120 s, overlap 600 s) unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sonora_pipeline.salesforce.soql import soql_datetime, soql_string
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.windows import initial_plan, window_plan

DEFAULTS = SyncSettings()  # lag 120 s, overlap 600 s, initial import "active"
DAY = datetime(2026, 3, 10)
NEXT = datetime(2026, 3, 11)


# -- window_plan ----------------------------------------------------------------------------------------------

def test_a_closed_window_reads_from_start_minus_overlap_to_its_end():
    plan = window_plan(DAY, NEXT, datetime(2026, 3, 12, 9), DEFAULTS)
    assert plan.kind == "window"
    assert (plan.read_from, plan.read_to) == (datetime(2026, 3, 9, 23, 50), NEXT)
    assert plan.filters == ("SystemModstamp >= 2026-03-09T23:50:00.000Z AND SystemModstamp < 2026-03-11T00:00:00.000Z",)
    assert not plan.empty


def test_todays_window_stops_lag_seconds_before_now():
    plan = window_plan(DAY, NEXT, datetime(2026, 3, 10, 9, 0, 30), DEFAULTS)
    assert plan.read_to == datetime(2026, 3, 10, 8, 58, 30)
    assert plan.filters[0].endswith("SystemModstamp < 2026-03-10T08:58:30.000Z")


@pytest.mark.parametrize(("after_end", "read_to"), [
    (timedelta(seconds=120), NEXT),                               # now - lag is exactly the window's end
    (timedelta(seconds=121), NEXT),                               # past it: the end bounds the read
    (timedelta(seconds=119), NEXT - timedelta(seconds=1)),         # one second short: the lag bounds it
    (timedelta(seconds=119, milliseconds=999), NEXT - timedelta(milliseconds=1)),
])
def test_the_end_is_the_earlier_of_window_end_and_now_minus_lag(after_end, read_to):
    plan = window_plan(DAY, NEXT, NEXT + after_end, DEFAULTS)
    assert plan.read_to == read_to


def test_a_window_not_yet_readable_is_empty_and_the_boundary_at_lag_is_empty_too():
    no_overlap = SyncSettings(lag_seconds=120, overlap_seconds=0)
    assert window_plan(DAY, NEXT, DAY + timedelta(seconds=60), no_overlap).empty       # read_to before read_from
    at_lag = window_plan(DAY, NEXT, DAY + timedelta(seconds=120), no_overlap)           # read_to == read_from
    assert at_lag.read_to == at_lag.read_from == DAY and at_lag.empty
    assert not window_plan(DAY, NEXT, DAY + timedelta(seconds=121), no_overlap).empty
    # with the overlap, the same instant still re-reads the tail of the day before
    overlapping = window_plan(DAY, NEXT, DAY + timedelta(seconds=120), DEFAULTS)
    assert (overlapping.read_from, overlapping.read_to, overlapping.empty) == (DAY - timedelta(minutes=10), DAY, False)


def test_consecutive_windows_leave_no_gap_and_overlap_by_exactly_the_overlap():
    """After a gap of days (the sensor was off), each day's window still starts `overlap` before its own
    start: the union of the windows is one contiguous range, whatever order they run in."""
    days = [datetime(2026, 3, d) for d in (10, 11, 12, 13, 14)]
    now = datetime(2026, 4, 1)
    plans = [window_plan(a, b, now, DEFAULTS) for a, b in zip(days, days[1:])]
    for earlier, later in zip(plans, plans[1:]):
        assert later.read_from == earlier.read_to - timedelta(seconds=600)
    assert (plans[0].read_from, plans[-1].read_to) == (datetime(2026, 3, 9, 23, 50), datetime(2026, 3, 14))


def test_aware_inputs_are_read_as_their_utc_instant():
    plus2 = timezone(timedelta(hours=2))
    aware = window_plan(datetime(2026, 3, 10, 2, tzinfo=plus2), datetime(2026, 3, 11, 2, tzinfo=plus2),
                        datetime(2026, 3, 12, tzinfo=UTC), DEFAULTS)
    assert aware == window_plan(DAY, NEXT, datetime(2026, 3, 12), DEFAULTS)
    assert aware.read_from.tzinfo is None and aware.read_to.tzinfo is None


# -- initial_plan ----------------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 12, 9, 0, 0)
UPPER = "SystemModstamp < 2026-03-12T08:58:00.000Z"  # NOW - 120 s
OPEN_OPP_ACCOUNTS = "(SELECT AccountId FROM Opportunity WHERE IsClosed = false)"
TYPED_ACCOUNTS = "(SELECT Id FROM Account WHERE Type IN ('Customer - Direct', 'Customer - Channel'))"


def test_initial_all_reads_everything_before_now_minus_lag():
    plan = initial_plan("Account", NOW, SyncSettings(initial_import="all"))
    assert (plan.kind, plan.filters, plan.read_from, plan.read_to) == (
        "initial", (UPPER,), None, datetime(2026, 3, 12, 8, 58))
    assert not plan.empty


def test_initial_since_starts_at_midnight_of_that_day():
    plan = initial_plan("Case", NOW, SyncSettings(initial_import="since:2026-02-01"))
    assert plan.filters == (f"SystemModstamp >= 2026-02-01T00:00:00.000Z AND {UPPER}",)
    assert (plan.read_from, plan.read_to) == (datetime(2026, 2, 1), datetime(2026, 3, 12, 8, 58))


def test_the_initial_import_ends_where_the_first_window_begins_reading():
    """The cursor is set to the import's read_to; today's window read right after starts `overlap` before."""
    initial = initial_plan("Account", NOW, DEFAULTS)
    window = window_plan(initial.read_to, datetime(2026, 3, 13), NOW + timedelta(minutes=5), DEFAULTS)
    assert window.read_from == initial.read_to - timedelta(seconds=600) < initial.read_to < window.read_to


@pytest.mark.parametrize(("object_name", "filters"), [
    ("Account", ("Type IN ('Customer - Direct', 'Customer - Channel')", f"Id IN {OPEN_OPP_ACCOUNTS}")),
    ("Opportunity", ("IsClosed = false", f"AccountId IN {TYPED_ACCOUNTS}")),
    ("Contact", (f"AccountId IN {TYPED_ACCOUNTS}", f"AccountId IN {OPEN_OPP_ACCOUNTS}")),
    ("Task", (f"AccountId IN {TYPED_ACCOUNTS}", f"AccountId IN {OPEN_OPP_ACCOUNTS}")),
    ("CaseComment", ("Parent.Account.Type IN ('Customer - Direct', 'Customer - Channel')",
                     "ParentId IN (SELECT Id FROM Case WHERE IsClosed = false)")),
])
def test_initial_active_is_a_union_of_filters_each_bounded_by_the_lag(object_name, filters):
    plan = initial_plan(object_name, NOW, DEFAULTS)
    assert plan.filters == tuple(f"({f}) AND {UPPER}" for f in filters)
    assert plan.read_from is None


@pytest.mark.parametrize("object_name", ["User", "Invoice__c"])
def test_initial_active_reads_every_user_and_every_custom_object_row(object_name):
    assert initial_plan(object_name, NOW, DEFAULTS).filters == (UPPER,)


def test_initial_active_without_account_types_keeps_only_the_open_opportunity_filters():
    settings = SyncSettings(active_account_types=[])
    assert initial_plan("Account", NOW, settings).filters == (f"(Id IN {OPEN_OPP_ACCOUNTS}) AND {UPPER}",)
    assert initial_plan("Opportunity", NOW, settings).filters == (f"(IsClosed = false) AND {UPPER}",)


def test_account_types_are_quoted_so_no_value_changes_the_query():
    settings = SyncSettings(active_account_types=["O'Brien \\ Sons"])
    assert initial_plan("Account", NOW, settings).filters[0] == f"(Type IN ('O\\'Brien \\\\ Sons')) AND {UPPER}"


# -- SOQL literals ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "literal"), [
    (datetime(2026, 3, 1, 12, 34, 56), "2026-03-01T12:34:56.000Z"),                  # naive = UTC
    (datetime(2026, 3, 1, 12, 34, 56, 789999), "2026-03-01T12:34:56.789Z"),          # ms truncated, not rounded
    (datetime(2026, 3, 1, 0, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2026-02-28T18:30:00.000Z"),
    (datetime(2026, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))), "2027-01-01T01:00:00.000Z"),
    (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "2026-03-01T12:00:00.000Z"),
])
def test_soql_datetime_is_utc_with_milliseconds_and_z(value, literal):
    assert soql_datetime(value) == literal


@pytest.mark.parametrize(("value", "literal"), [
    ("Acme", "'Acme'"),
    ("", "''"),
    ("O'Brien", "'O\\'Brien'"),
    ('say "hi"', "'say \\\"hi\\\"'"),
    ("C:\\temp", "'C:\\\\temp'"),
    ("\\'", "'\\\\\\''"),                       # the backslash is escaped first, then the quote
    ("two\nlines", "'two\\nlines'"),
    ("cr\r", "'cr\\r'"),
    ("tab\there", "'tab\\there'"),
    ("Zoë 東京 🚀", "'Zoë 東京 🚀'"),             # unicode passes as it is
    ("' OR Name != '", "'\\' OR Name != \\''"),
])
def test_soql_string_escapes_every_special_character(value, literal):
    assert soql_string(value) == literal


@pytest.mark.parametrize("value", ["O'Brien", "\\'", "a\\\nb", "'\"\\\r\t", "Zoë", "\\\\''"])
def test_soql_string_round_trips_through_the_soql_escape_rules(value):
    """Decoding the literal by Salesforce's escape rules gives the value back, and no quote ends it early."""
    literal = soql_string(value)
    assert literal[0] == literal[-1] == "'"
    decoded, body, i = [], literal[1:-1], 0
    escapes = {"n": "\n", "r": "\r", "t": "\t", "'": "'", '"': '"', "\\": "\\"}
    while i < len(body):
        if body[i] == "\\":
            decoded.append(escapes[body[i + 1]])
            i += 2
        else:
            assert body[i] != "'", f"an unescaped quote ends the literal early: {literal}"
            decoded.append(body[i])
            i += 1
    assert "".join(decoded) == value
