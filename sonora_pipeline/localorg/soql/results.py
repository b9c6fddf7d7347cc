"""Rows of a compiled query -> REST JSON records or Bulk API 2.0 CSV, byte-for-byte like Salesforce.

REST records are assembled in Python (pages are at most 2,000 rows); they keep doubles as floats and
`dumps` writes them as Java `Double.toString` number tokens (`1.2345678E7`), which `json.dumps` cannot.
Bulk results can be millions of rows, so `bulk_arrow` lets DuckDB produce every cell's final text and
`render_csv` hands string columns to Arrow's C++ CSV writer; Python never touches a value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sonora_pipeline.localorg.soql import formats
from sonora_pipeline.localorg.soql.compiler import CompiledQuery, RecordShape, ValueColumn

COLUMN_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


# -- REST ----------------------------------------------------------------------------------------------

def _record(shape: RecordShape, row: Sequence[Any], api_version: str) -> dict[str, Any] | None:
    rec_id = row[shape.id_index]
    if rec_id is None:
        return None
    rtype = shape.type_name or (row[shape.type_index] if shape.type_index is not None else None)
    out: dict[str, Any] = {
        "attributes": {"type": rtype, "url": f"/services/data/v{api_version}/sobjects/{rtype}/{rec_id}"},
    }
    for key, item in shape.items:
        if isinstance(item, RecordShape):
            out[key] = _record(item, row, api_version)
        elif isinstance(item, ValueColumn):
            out[key] = formats.rest_value(item.ftype, row[item.index])
        else:
            parts = {k: formats.rest_value(t, row[i]) for k, i, t in item.parts}
            out[key] = parts if any(v is not None for v in parts.values()) else None
    return out


def to_rest_records(compiled: CompiledQuery, rows: Iterable[Sequence[Any]], api_version: str) -> list[dict]:
    """REST `records` for rows of `compiled.sql` (`api_version` like "59.0"). Empty for COUNT()."""
    if compiled.is_count or compiled.shape is None:
        return []
    version = api_version[1:] if api_version.lower().startswith("v") else api_version
    return [_record(compiled.shape, row, version) for row in rows]


class _JavaJSONEncoder(json.JSONEncoder):
    """json encoder writing floats as Java `Double.toString` tokens (valid JSON numbers)."""

    def iterencode(self, o, _one_shot=False):
        markers = {} if self.check_circular else None
        _encoder = json.encoder.encode_basestring_ascii if self.ensure_ascii else json.encoder.encode_basestring

        def floatstr(x: float) -> str:
            if isinstance(x, formats.ExactNumber):
                return x.text
            if math.isnan(x) or math.isinf(x):
                return "null"
            return formats.java_double(x)

        return json.encoder._make_iterencode(  # type: ignore[attr-defined]
            markers, self.default, _encoder, self.indent, floatstr, self.key_separator,
            self.item_separator, self.sort_keys, self.skipkeys, _one_shot)(o, 0)


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` with Salesforce number formatting (`300.0`, `1.2345678E7`)."""
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(obj, cls=_JavaJSONEncoder, **kwargs)


def dumps_records(records: list[dict], **kwargs: Any) -> str:
    return dumps(records, **kwargs)


# -- Bulk ----------------------------------------------------------------------------------------------

def bulk_arrow(conn: duckdb.DuckDBPyConnection, compiled: CompiledQuery) -> pa.Table:
    """All result rows as an Arrow table of Salesforce-formatted strings, columns named by SOQL path."""
    if compiled.bulk_sql is None:
        raise ValueError("query has no Bulk projection (COUNT() or compound fields)")
    table = conn.sql(compiled.bulk_sql, params=compiled.params or None).to_arrow_table()
    columns = [c if c.type == pa.string() else c.cast(pa.string()) for c in table.columns]
    return pa.table(columns, names=compiled.headers)


# Below this many rows one writer thread is cheaper than splitting the page.
_PARALLEL_MIN_ROWS = 20_000


# How a null cell is written: an empty field, or a quoted empty string. Salesforce's choice is unverified
# (salesforce-api.md §7) and a loader must take both, so the local org can write either.
CSV_NULL_FORMS = ("empty", "quoted")


def render_csv(table: pa.Table, offset: int = 0, limit: int | None = None, *,
               column_delimiter: str = "COMMA", line_ending: str = "LF", nulls: str = "empty") -> bytes:
    """One Bulk results page: header row + rows [offset, offset+limit), every non-null value quoted, nulls
    as empty fields (`nulls="empty"`) or as `""` (`nulls="quoted"`).

    Arrow's CSV writer releases the GIL, so large pages are written as two halves on two threads.
    """
    if nulls not in CSV_NULL_FORMS:
        raise ValueError(f"nulls must be one of {CSV_NULL_FORMS}, not {nulls!r}")
    part = table.slice(offset, limit) if limit is not None else table.slice(offset)
    if nulls == "quoted" and part.num_rows:
        part = pa.table([pc.fill_null(c, "") for c in part.columns], names=part.column_names)
    delim = COLUMN_DELIMITERS[column_delimiter.upper()]
    eol = LINE_ENDINGS[line_ending.upper()]
    if part.num_rows == 0:
        return _header_only(table.column_names, delim, eol)
    if part.num_rows < _PARALLEL_MIN_ROWS:
        return _write(part, delim, eol, True)
    half = part.num_rows // 2
    future = _pool().submit(_write, part.slice(half), delim, eol, False)
    first = _write(part.slice(0, half), delim, eol, True)
    return first + future.result()


def _write(part: pa.Table, delim: str, eol: str, header: bool) -> bytes:
    sink = pa.BufferOutputStream()
    opts = pacsv.WriteOptions(include_header=header, delimiter=delim, eol=eol, quoting_style="all_valid",
                              quoting_header="all_valid", batch_size=8192)
    pacsv.write_csv(part, sink, write_options=opts)
    return sink.getvalue().to_pybytes()


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="soql-csv")
    return _POOL


def _header_only(names: list[str], delim: str, eol: str) -> bytes:
    return (delim.join('"' + n.replace('"', '""') + '"' for n in names) + eol).encode("utf-8")


def to_bulk_csv(compiled: CompiledQuery, arrow_table_or_rows: pa.Table | Iterable[Sequence[Any]], *,
                column_delimiter: str = "COMMA", line_ending: str = "LF") -> str:
    """Bulk CSV text from `bulk_arrow`'s table (fast) or from rows of `compiled.sql` (formatted in Python)."""
    if isinstance(arrow_table_or_rows, pa.Table):
        table = arrow_table_or_rows
    else:
        cols = [c for c in compiled.columns if isinstance(c, ValueColumn)]
        if len(cols) != len(compiled.columns):
            raise ValueError("compound fields cannot be written to Bulk CSV")
        data: list[list[str | None]] = [[] for _ in cols]
        for row in arrow_table_or_rows:
            for j, c in enumerate(cols):
                data[j].append(formats.csv_value(c.ftype, row[c.index]))
        table = pa.table([pa.array(d, type=pa.string()) for d in data], names=[c.path for c in cols])
    return render_csv(table, column_delimiter=column_delimiter, line_ending=line_ending).decode("utf-8")


__all__ = ["to_rest_records", "dumps", "dumps_records", "bulk_arrow", "render_csv", "to_bulk_csv",
           "COLUMN_DELIMITERS", "LINE_ENDINGS", "CSV_NULL_FORMS"]
