"""The mirror's names and SQL quoting, and the kind of a DuckDB column type: pure functions, checked against
DuckDB itself where DuckDB is the judge."""

from __future__ import annotations

import duckdb
import pytest

from sonora_pipeline.mirror.names import (
    RAW_SCHEMA,
    object_for_table,
    quote_identifier,
    quote_literal,
    raw_table,
    table_name_for,
)
from sonora_pipeline.mirror.tables import column_kind
from sonora_pipeline.settings import STANDARD_OBJECTS

AWKWARD = ['plain', 'with "double" quotes', "it's", 'trailing"', '""', "back\\slash", "new\nline", "Zürich 東京"]


def test_every_standard_object_has_a_table_and_back():
    tables = [table_name_for(name) for name in STANDARD_OBJECTS]
    assert "case_comment" in tables and "account" in tables and len(set(tables)) == len(tables)
    for name in STANDARD_OBJECTS:
        assert object_for_table(table_name_for(name), STANDARD_OBJECTS) == name
    assert table_name_for("Invoice__c") == "invoice__c"
    assert object_for_table("invoice__c", [*STANDARD_OBJECTS, "Invoice__c"]) == "Invoice__c"
    assert object_for_table("invoice__c", STANDARD_OBJECTS) is None
    assert raw_table("CaseComment") == f'{RAW_SCHEMA}."case_comment"'


@pytest.mark.parametrize("name", AWKWARD)
def test_quoted_identifiers_and_literals_round_trip_through_duckdb(name):
    conn = duckdb.connect(":memory:")
    conn.execute(f"CREATE TABLE {quote_identifier(name)} ({quote_identifier(name)} VARCHAR)")
    conn.execute(f"INSERT INTO {quote_identifier(name)} VALUES ({quote_literal(name)})")
    assert conn.execute(f"SELECT {quote_identifier(name)} FROM {quote_identifier(name)}").fetchall() == [(name,)]
    assert [r[0] for r in conn.execute("SELECT column_name FROM duckdb_columns() WHERE NOT internal").fetchall()] == [name]


@pytest.mark.parametrize("duckdb_type, kind", [
    ("VARCHAR", "text"), ("varchar", "text"), ("UUID", "text"),
    ("BOOLEAN", "boolean"),
    ("BIGINT", "number"), ("DOUBLE", "number"), ("DECIMAL(18,2)", "number"), ("DECIMAL(38, 0)", "number"),
    ("HUGEINT", "number"), ("UBIGINT", "number"), ("FLOAT", "number"),
    ("DATE", "date"),
    ("TIMESTAMP", "datetime"), ("TIMESTAMP WITH TIME ZONE", "datetime"), ("TIMESTAMP_NS", "datetime"),
    # Not one value of a known kind: the caller decides (settings conditions refuse it, the write-back
    # sends text); never silently "text", which a list or a struct is not.
    ("VARCHAR[]", "other"), ("DECIMAL(18,2)[]", "other"), ("STRUCT(street VARCHAR)", "other"),
    ("MAP(VARCHAR, INTEGER)", "other"), ("INTERVAL", "other"), ("BLOB", "other"), ("", "other"),
])
def test_column_kind(duckdb_type, kind):
    assert column_kind(duckdb_type) == kind


def test_column_kind_of_what_duckdb_reports():
    conn = duckdb.connect(":memory:")
    conn.execute("CREATE TABLE t (a VARCHAR, b DECIMAL(18,2), c TIMESTAMPTZ, d VARCHAR[], e BOOLEAN, f DATE, "
                 "g INTEGER, h STRUCT(x INTEGER))")
    types = dict(conn.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 't'").fetchall())
    assert {name: column_kind(t) for name, t in types.items()} == {
        "a": "text", "b": "number", "c": "datetime", "d": "other", "e": "boolean", "f": "date", "g": "number",
        "h": "other"}
