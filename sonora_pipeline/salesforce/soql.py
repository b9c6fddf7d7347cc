"""SOQL literals, one home: every value the project puts into a query (account types, record Ids, window
bounds) goes through here, so no value can change a query's meaning. Text uses simple-salesforce's escaping
(backslash, both quotes, newline, carriage return, tab, backspace, form feed: Salesforce's documented
escapes); datetimes keep their milliseconds, because window bounds and cursors are exact to the millisecond
and simple-salesforce's own datetime literal drops them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sonora_pipeline.salesforce.datetimes import naive_utc


def soql_string(value: str) -> str:
    """A SOQL string literal: 'O\\'Brien'."""
    # Imported here: simple-salesforce's package import pulls in zeep and lxml (0.46 s and ~40 MB, measured),
    # which a run that only quotes datetimes (every incremental window) need not pay.
    from simple_salesforce.format import quote_soql_value

    return quote_soql_value(str(value))


def soql_string_list(values: Iterable[str]) -> str:
    """The inside of an IN (...) list of string literals: 'a', 'b'."""
    return ", ".join(soql_string(v) for v in values)


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal in UTC with milliseconds: 2024-01-02T03:04:05.123Z (a naive value is UTC)."""
    value = naive_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
