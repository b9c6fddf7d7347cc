"""Salesforce datetimes, one home. REST sends `2024-01-02T03:04:05.000+0000`, Bulk CSV and other clients
`...Z` or `+00:00`, date fields `2024-01-02`; orgs and API versions differ, so every form is accepted. The
project keeps datetimes as naive UTC at millisecond precision: what Salesforce stores, what the mirror's
TIMESTAMP columns hold, and what cursors compare."""

from __future__ import annotations

from datetime import UTC, date, datetime


def naive_utc(value: datetime) -> datetime:
    """`value` in UTC without a zone (a naive value is taken to be UTC already)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def parse_datetime(value: str | datetime | date) -> datetime:
    """A Salesforce datetime (any of the forms above, a date as its midnight) as naive UTC, truncated to the
    millisecond. Raises ValueError naming the text when it is not a datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text)  # 3.11+: Z, +0000, +00:00, 1 to 6+ fraction digits, date only
        except ValueError:
            raise ValueError(f"{text!r} is not a Salesforce datetime (e.g. 2024-01-02T03:04:05.000+0000)") from None
    parsed = naive_utc(parsed)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def utc_text(text: str) -> str:
    """A datetime from the wire as text DuckDB casts to the right TIMESTAMP: DuckDB ignores an offset other
    than zero (`+01:00` would be read as UTC), so such a value is converted; the usual `Z` and `+0000`
    forms take no parsing (the load's hot path)."""
    if text.endswith("Z"):
        return text
    if text.endswith(("+0000", "+00:00")):
        return text[:-6 if text[-3] == ":" else -5] + "Z"
    parsed = parse_datetime(text)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"
