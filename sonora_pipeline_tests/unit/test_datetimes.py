"""Salesforce datetimes in every form the wire notes list, to naive UTC at millisecond precision; and the
text the mirror's load casts, checked against DuckDB's own cast."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import duckdb
import pytest

from sonora_pipeline.salesforce.datetimes import naive_utc, parse_datetime, utc_text

EXPECTED = datetime(2024, 1, 2, 3, 4, 5, 123000)


@pytest.mark.parametrize("text", [
    "2024-01-02T03:04:05.123+0000",   # REST
    "2024-01-02T03:04:05.123Z",       # Bulk CSV
    "2024-01-02T03:04:05.123+00:00",  # other clients' literals
    "2024-01-02T04:04:05.123+0100",   # an offset other than zero
    "2024-01-01T21:34:05.123-05:30",
    "2024-01-02T03:04:05.123456Z",    # more digits than Salesforce keeps
    " 2024-01-02T03:04:05.1234Z ",
])
def test_every_form_is_the_same_instant(text):
    assert parse_datetime(text) == EXPECTED


def test_dates_and_datetimes():
    assert parse_datetime("2024-01-02") == datetime(2024, 1, 2)
    assert parse_datetime(date(2024, 1, 2)) == datetime(2024, 1, 2)
    assert parse_datetime("2024-01-02T03:04:05Z") == datetime(2024, 1, 2, 3, 4, 5)
    aware = datetime(2024, 1, 2, 5, 4, 5, 123999, tzinfo=timezone(timedelta(hours=2)))
    assert parse_datetime(aware) == EXPECTED
    assert naive_utc(aware) == datetime(2024, 1, 2, 3, 4, 5, 123999)
    assert naive_utc(EXPECTED) is EXPECTED


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", "1700000000"])
def test_a_bad_value_is_named(bad):
    with pytest.raises(ValueError, match="is not a Salesforce datetime"):
        parse_datetime(bad)


@pytest.mark.parametrize("text", ["2024-01-02T03:04:05.123Z", "2024-01-02T03:04:05.123+0000",
                                  "2024-01-02T03:04:05.123+00:00", "2024-01-02T04:04:05.123+0100",
                                  "2024-01-01T21:34:05.123-05:30"])
def test_load_text_casts_to_the_instant_in_duckdb(text):
    cast = duckdb.execute("SELECT CAST(? AS TIMESTAMP)", [utc_text(text)]).fetchone()[0]
    assert cast == EXPECTED
