"""Salesforce value formats, in Python (REST JSON) and as DuckDB SQL expressions (Bulk CSV).

Numbers follow Java's `Double.toString` layout because that is what Salesforce emits everywhere: plain
between 10^-3 and 10^7, otherwise `d.dddE<exp>` (salesforce-api.md §2, §7). Number fields are exact
decimals (up to 18 digits of precision), so they are written with every significant digit they hold,
`1.23456789012345678E17`: the same text as Java's for any value a double holds exactly. A client must
accept both plain and E-notation either way.
The Bulk path formats inside DuckDB so a 100k-row, 70-column extract never touches Python per value;
DuckDB's DOUBLE -> VARCHAR cast already gives the shortest round-trip digits (same as Python `repr`),
so the SQL only has to move the decimal point.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

NUMBER_TYPES = {"double", "currency", "percent"}
INT_TYPES = {"int", "long"}


# -- Python side (REST) -------------------------------------------------------------------------------

def java_double(x: float) -> str:
    """Java `Double.toString(x)`: `300.0`, `61.217061`, `1.2345678E7`, `1.0E-4`."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    ax = abs(x)
    sign = "-" if x < 0 else ""
    if 1e-3 <= ax < 1e7:
        s = repr(ax)  # plain in this range, always with a fraction ("300.0")
        return sign + s
    digits, exp = _digits_exponent(repr(ax))
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{sign}{mantissa}E{exp}"


def java_decimal(x: Decimal) -> str:
    """An exact decimal in Java's `Double.toString` layout, keeping every significant digit:
    `300.0`, `61.217061`, `1.2345678E7`, `1.23456789012345678E17`, `1.0E-4`."""
    if not x.is_finite():
        return java_double(float(x))
    if x.is_zero():
        return "0.0"
    if -3 <= x.adjusted() <= 6:  # 0.001 <= |x| < 10^7: plain (the common case, kept cheap: one str())
        whole, _, fraction = format(x, "f").partition(".")
        return f"{whole}.{fraction.rstrip('0') or '0'}"
    sign = "-" if x < 0 else ""
    _, digit_tuple, exponent = abs(x).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    power = len(digits) - 1 + int(exponent)
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{power}"


class ExactNumber(float):
    """A decimal on its way into REST JSON: a float (so the encoder writes a number token) that carries its
    exact text, which `results.dumps` writes instead of the float's digits."""

    __slots__ = ("text",)

    def __new__(cls, value: Decimal) -> ExactNumber:
        number = float.__new__(cls, value)
        number.text = java_decimal(value)
        return number


def _digits_exponent(s: str) -> tuple[str, int]:
    """Significant digits and decimal exponent of a positive shortest-repr string."""
    if "e" in s:
        m, e = s.split("e")
        return m.replace(".", ""), int(e)
    ip, _, fp = s.partition(".")
    if ip.strip("0"):
        return (ip + fp).rstrip("0") or "0", len(ip.lstrip("0")) - 1
    stripped = fp.lstrip("0")
    return stripped.rstrip("0") or "0", -(len(fp) - len(stripped) + 1)


def rest_datetime(v: dt.datetime) -> str:
    """`2021-04-27T19:33:04.000+0000` (naive values are UTC)."""
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


def bulk_datetime(v: dt.datetime) -> str:
    """`2024-04-16T19:00:00.000Z`, the Bulk CSV form."""
    return rest_datetime(v)[:-5] + "Z"


def time_text(v: dt.time) -> str:
    return v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def rest_value(ftype: str, v: Any) -> Any:
    """A stored value as REST JSON carries it. Doubles stay floats; `dumps` writes them Java-style."""
    if v is None:
        return None
    if ftype == "datetime" and isinstance(v, dt.datetime):
        return rest_datetime(v)
    if ftype == "date" and isinstance(v, dt.date):
        return v.isoformat()
    if ftype == "time" and isinstance(v, dt.time):
        return time_text(v)
    if ftype in NUMBER_TYPES:
        return ExactNumber(v) if isinstance(v, Decimal) else float(v)
    if ftype in INT_TYPES:
        return int(v)
    if ftype == "boolean":
        return bool(v)
    return v


def csv_value(ftype: str, v: Any) -> str | None:
    """A stored value as Bulk CSV text (None = empty field). The slow path; see `sql_text` for the fast one."""
    if v is None:
        return None
    if ftype == "datetime" and isinstance(v, dt.datetime):
        return bulk_datetime(v)
    if ftype == "date" and isinstance(v, dt.date):
        return v.isoformat()
    if ftype == "time" and isinstance(v, dt.time):
        return time_text(v)
    if ftype in NUMBER_TYPES:
        return java_decimal(v) if isinstance(v, Decimal) else java_double(v)
    if ftype == "boolean":
        return "true" if v else "false"
    return str(v)


# -- SQL side (Bulk) ----------------------------------------------------------------------------------

def sql_java_double(x: str) -> str:
    """DuckDB expression: DOUBLE expression `x` as Java `Double.toString` text (NULL stays NULL).

    DuckDB's cast prints shortest digits like Python's repr: exponent form below 1e-4 and from 1e16,
    plain otherwise. Java wants plain only in [1e-3, 1e7), so the three other bands are rewritten with one
    regexp each (kept to a single cast per band: repeated casts dominated the cost).
    """
    s = f"CAST({x} AS VARCHAR)"
    ax = f"abs({x})"
    e_form = (  # -1.5e-05 -> -1.5E-5, 1e+20 -> 1.0E20
        f"regexp_replace(regexp_replace({s}, '^(-?\\d)e', '\\1.0e'), 'e\\+?(-?)0*(\\d)', 'E\\1\\2')"
    )
    big = (  # 12345678.9 -> 1.23456789E7, 90000000.0 -> 9.0E7
        f"regexp_replace(rtrim(regexp_replace({s}, '^(-?\\d)(\\d*)\\.(\\d*)$', '\\1.\\2\\3'), '0'), '\\.$', '.0')"
        f" || 'E' || CAST(length(CAST(trunc({ax}) AS BIGINT)::VARCHAR) - 1 AS VARCHAR)"
    )
    small = (  # 0.00012 -> 1.2E-4
        f"replace(regexp_replace({s}, '^(-?)0\\.000(\\d)(\\d*)$', '\\1\\2.\\3E-4'), '.E', '.0E')"
    )
    return (
        f"(CASE WHEN {x} IS NULL THEN NULL "
        f"WHEN ({ax} >= 0.001 AND {ax} < 10000000) OR {x} = 0 THEN {s} "
        f"WHEN {ax} >= 1e16 OR {ax} < 0.0001 THEN (CASE WHEN isnan({x}) THEN 'NaN' "
        f"WHEN isinf({x}) THEN (CASE WHEN {x} > 0 THEN 'Infinity' ELSE '-Infinity' END) ELSE {e_form} END) "
        f"WHEN {ax} >= 10000000 THEN {big} "
        f"ELSE {small} END)"
    )


def sql_java_decimal(x: str, scale: int | None = None) -> str:
    """DuckDB expression: DECIMAL expression `x` as `java_decimal` text (NULL stays NULL), exact.

    The cast gives `-12345678.90` (no point at scale 0); the integer part and the fraction without its
    trailing zeros are moved around the point for each band of Java's layout. Most values are in the plain
    band, which with a known `scale` needs one cast and one trim (Bulk extracts are millions of cells)."""
    text = f"CAST({x} AS VARCHAR)"
    s = f"ltrim({text}, '-')"
    ip = f"split_part({s}, '.', 1)"
    fp = f"rtrim(split_part({s}, '.', 2), '0')"
    sign = f"(CASE WHEN {x} < 0 THEN '-' ELSE '' END)"
    ax = f"abs({x})"
    if scale == 0:
        plain = f"{text} || '.0'"
    elif scale:
        trimmed = f"rtrim({text}, '0')"
        plain = f"(CASE WHEN right({trimmed}, 1) = '.' THEN {trimmed} || '0' ELSE {trimmed} END)"
    else:
        plain = f"{sign} || {ip} || '.' || (CASE WHEN {fp} = '' THEN '0' ELSE {fp} END)"
    big_digits = f"rtrim({s}, '0')" if scale == 0 else f"rtrim({ip} || {fp}, '0')"
    big = (f"left({big_digits}, 1) || '.' || coalesce(nullif(substr({big_digits}, 2), ''), '0') || 'E' || "
           f"CAST(length({s if scale == 0 else ip}) - 1 AS VARCHAR)")
    small_digits = f"ltrim({fp}, '0')"
    small = (f"left({small_digits}, 1) || '.' || coalesce(nullif(substr({small_digits}, 2), ''), '0') || 'E-' || "
             f"CAST(length({fp}) - length({small_digits}) + 1 AS VARCHAR)")
    return (
        f"(CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 0 THEN '0.0' "
        f"WHEN {ax} >= 0.001 AND {ax} < 10000000 THEN {plain} "
        f"WHEN {ax} >= 10000000 THEN {sign} || {big} "
        f"ELSE {sign} || {small} END)"
    )


def sql_text(ftype: str, x: str, column_type: str | None = None) -> str:
    """DuckDB expression turning column expression `x` of Salesforce type `ftype` (stored as `column_type`)
    into its Bulk CSV text."""
    if ftype in NUMBER_TYPES:
        decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", (column_type or "").upper())
        if decimal:
            return sql_java_decimal(x, int(decimal.group(2)))
        return sql_java_double(x)
    if ftype in INT_TYPES:
        return f"CAST({x} AS VARCHAR)"
    if ftype == "boolean":
        return f"(CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' END)"
    if ftype == "datetime":
        return f"(strftime({x}, '%Y-%m-%dT%H:%M:%S.%g') || 'Z')"
    if ftype == "date":
        return f"CAST({x} AS VARCHAR)"
    if ftype == "time":
        return f"(strftime(DATE '2000-01-01' + {x}, '%H:%M:%S.%g') || 'Z')"
    return f"CAST({x} AS VARCHAR)"
