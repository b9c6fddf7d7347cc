"""Value formats, REST JSON serialisation and Bulk CSV output (plus a printed Bulk throughput benchmark)."""

from __future__ import annotations

import datetime as dt
import json
import random
import struct
import time

import duckdb
import pyarrow as pa
import pytest

from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import (
    bulk_arrow,
    compile_query,
    dumps,
    java_double,
    render_csv,
    to_bulk_csv,
    to_rest_records,
)
from sonora_pipeline.localorg.soql.formats import bulk_datetime, rest_datetime, sql_java_double
from sonora_pipeline.localorg.store import create_object_table
from sonora_pipeline_tests.localorg.test_soql_execute import A1, NOW, build_org

JAVA_DOUBLES = [
    (0.0, "0.0"), (1.0, "1.0"), (300.0, "300.0"), (61.217061, "61.217061"), (1.2345678e7, "1.2345678E7"),
    (9.0e7, "9.0E7"), (1.0e-4, "1.0E-4"), (-5.5, "-5.5"), (12345678.9, "1.23456789E7"), (100.0, "100.0"),
    (9999999.0, "9999999.0"), (1e7, "1.0E7"), (0.001, "0.001"), (0.00012, "1.2E-4"), (1e20, "1.0E20"),
    (-9.9213206e7, "-9.9213206E7"), (1.5e-5, "1.5E-5"), (0.1 + 0.2, "0.30000000000000004"), (23.0, "23.0"),
]


@pytest.mark.parametrize("value, text", JAVA_DOUBLES)
def test_java_double(value, text):
    assert java_double(value) == text


@pytest.mark.parametrize("value, text", JAVA_DOUBLES)
def test_java_double_in_duckdb(value, text):
    conn = duckdb.connect()
    assert conn.execute(f"SELECT {sql_java_double('x')} FROM (SELECT CAST(? AS DOUBLE) AS x)", [value]).fetchone()[0] \
        == text


# Number fields are exact decimals: every digit is kept, in Java's layout (E-notation from 10^7).
EXACT_DECIMALS = [
    ("999999999999999999", 18, 0, "9.99999999999999999E17"), ("123456789012345678", 18, 0, "1.23456789012345678E17"),
    ("-999999999999999999", 18, 0, "-9.99999999999999999E17"), ("9999999999999999.99", 18, 2, "9.99999999999999999E15"),
    ("12345678.90", 18, 2, "1.23456789E7"), ("90000000", 18, 0, "9.0E7"), ("300.00", 18, 2, "300.0"),
    ("-61.217061000000000", 18, 15, "-61.217061"), ("0.000120000000000", 18, 15, "1.2E-4"), ("0.001", 18, 15, "0.001"),
    ("0", 18, 2, "0.0"), ("-0.5", 18, 2, "-0.5"), ("10000000", 18, 0, "1.0E7"), ("9999999.99", 18, 2, "9999999.99"),
    ("100", 3, 0, "100.0"), ("0.0001", 18, 15, "1.0E-4"),
]


@pytest.mark.parametrize("value, precision, scale, text", EXACT_DECIMALS)
def test_exact_decimals_in_python_and_duckdb(value, precision, scale, text):
    from decimal import Decimal

    from sonora_pipeline.localorg.soql.formats import ExactNumber, java_decimal, sql_java_decimal

    assert java_decimal(Decimal(value)) == text
    conn = duckdb.connect()
    for known_scale in (None, scale):  # the general expression, and the one specialised for the column's scale
        assert conn.execute(f"SELECT {sql_java_decimal('x', known_scale)} FROM "
                            f"(SELECT CAST(? AS DECIMAL({precision},{scale})) AS x)", [value]).fetchone()[0] == text
    assert dumps({"n": ExactNumber(Decimal(value))}) == f'{{"n": {text}}}'
    assert json.loads(dumps([ExactNumber(Decimal(value))]), parse_float=Decimal)[0] == Decimal(value)


def test_csv_nulls_are_written_either_way():
    table = pa.table({"A": pa.array(["x", None], pa.string()), "B": pa.array([None, "1.0"], pa.string())})
    assert render_csv(table) == b'"A","B"\n"x",\n,"1.0"\n'
    assert render_csv(table, nulls="quoted") == b'"A","B"\n"x",""\n"","1.0"\n'
    with pytest.raises(ValueError, match="nulls"):
        render_csv(table, nulls="NULL")


def test_sql_and_python_double_formats_agree_on_random_values():
    rng = random.Random(7)
    values = []
    for _ in range(5000):
        bits = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if bits == bits and abs(bits) != float("inf"):
            values.append(bits)
        values.append(10 ** rng.uniform(-9, 21) * rng.choice((1, -1)))
        values.append(round(rng.uniform(0, 1e9), 2))
    conn = duckdb.connect()
    conn.register("vals", pa.table({"x": pa.array(values, pa.float64())}))
    got = conn.execute(f"SELECT x, {sql_java_double('x')} FROM vals").fetchall()
    mismatches = [(x, s, java_double(x)) for x, s in got if s != java_double(x)]
    assert mismatches == []


def test_datetime_formats():
    v = dt.datetime(2021, 4, 27, 19, 33, 4, 123999)
    assert rest_datetime(v) == "2021-04-27T19:33:04.123+0000"
    assert bulk_datetime(v) == "2021-04-27T19:33:04.123Z"
    assert rest_datetime(dt.datetime(2021, 4, 27, 21, 33, 4, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == \
        "2021-04-27T19:33:04.000+0000"


def test_dumps_emits_java_number_tokens():
    text = dumps({"a": 1.2345678e7, "b": 300.0, "c": 7, "d": True, "e": None, "f": [1.0e-4], "g": "é"})
    assert text == '{"a": 1.2345678E7, "b": 300.0, "c": 7, "d": true, "e": null, "f": [1.0E-4], "g": "é"}'
    assert json.loads(text)["a"] == 1.2345678e7


@pytest.fixture(scope="module")
def org():
    return build_org()


def _compiled(org, soql, **kw):
    catalog, _ = org
    return compile_query(soql, catalog, include_deleted=kw.pop("include_deleted", False), now=NOW, **kw)


def test_rest_record_json(org):
    catalog, conn = org
    c = _compiled(org, f"SELECT Name, ARR__c, AnnualRevenue, BillingAddress, Owner.Name FROM Account WHERE Id = '{A1}'")
    recs = to_rest_records(c, conn.execute(c.sql, c.params).fetchall(), "62.0")
    assert dumps(recs) == (
        '[{"attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001000000000001AAA"}, '
        '"Name": "Acme", "ARR__c": 1.23456789E7, "AnnualRevenue": 9.0E7, "BillingAddress": {"city": "Anchorage", '
        '"country": null, "geocodeAccuracy": null, "latitude": 61.217061, "longitude": null, "postalCode": null, '
        '"state": null, "street": null}, "Owner": {"attributes": {"type": "User", "url": '
        '"/services/data/v62.0/sobjects/User/005000000000001AAA"}, "Name": "Jane Doe"}}]')


def test_count_has_no_records(org):
    c = _compiled(org, "SELECT COUNT() FROM Account")
    assert to_rest_records(c, [], "59.0") == []


def test_count_sql_matches_rows(org):
    _, conn = org
    c = _compiled(org, "SELECT Id FROM Account WHERE Name != 'Acme' LIMIT 5")
    assert conn.execute(c.count_sql, c.params).fetchone()[0] == len(conn.execute(c.sql, c.params).fetchall()) == 2


BULK_SOQL = ("SELECT Id, Name, Owner.Name, ARR__c, AnnualRevenue, NumberOfEmployees, CreatedDate, "
             "Contract_End_Date__c, IsPartner FROM Account ORDER BY Name")
BULK_EXPECTED = (
    '"Id","Name","Owner.Name","ARR__c","AnnualRevenue","NumberOfEmployees","CreatedDate","Contract_End_Date__c",'
    '"IsPartner"\n'
    '"001000000000001AAA","Acme","Jane Doe","1.23456789E7","9.0E7","120","2024-05-01T10:00:00.000Z","2024-06-01",'
    '"true"\n'
    '"001000000000002AAA","beta Corp",,"300.0",,,"2024-05-06T08:30:00.000Z",,"false"\n'
    '"001000000000003AAA","O\'Reilly","Bob Ray",,,,"2023-01-01T00:00:00.000Z",,"false"\n'
)


def test_bulk_csv_exact(org):
    _, conn = org
    c = _compiled(org, BULK_SOQL, for_bulk=True)
    table = bulk_arrow(conn, c)
    assert table.column_names == c.headers
    assert render_csv(table).decode() == BULK_EXPECTED
    assert to_bulk_csv(c, table) == BULK_EXPECTED


def test_bulk_csv_from_rows_matches_arrow_path(org):
    _, conn = org
    c = _compiled(org, BULK_SOQL, for_bulk=True)
    assert to_bulk_csv(c, conn.execute(c.sql, c.params).fetchall()) == BULK_EXPECTED


def test_bulk_csv_pages_delimiters_and_line_endings(org):
    _, conn = org
    c = _compiled(org, BULK_SOQL, for_bulk=True)
    table = bulk_arrow(conn, c)
    lines = BULK_EXPECTED.splitlines(keepends=True)
    assert render_csv(table, 1, 1).decode() == lines[0] + lines[2]
    assert render_csv(table, 5, 10).decode() == lines[0]
    tab = render_csv(table, 0, 1, column_delimiter="TAB", line_ending="CRLF").decode()
    assert tab == lines[0].replace('","', '"\t"').replace("\n", "\r\n") + \
        lines[1].replace('","', '"\t"').replace("\n", "\r\n")
    for name, ch in [("PIPE", "|"), ("SEMICOLON", ";"), ("CARET", "^"), ("BACKQUOTE", "`"), ("COMMA", ",")]:
        assert render_csv(table, 0, 1, column_delimiter=name).decode().startswith(f'"Id"{ch}"Name"{ch}')


def test_bulk_quotes_and_newlines_inside_values():
    catalog = build_standard_catalog()
    conn = duckdb.connect()
    create_object_table(conn, catalog.object("Account"))
    conn.execute('INSERT INTO "Account" ("Id", "Name", "IsDeleted") VALUES (?, ?, false)',
                 [A1, 'Say "hi"\nnext line'])
    c = compile_query("SELECT Id, Name FROM Account", catalog, include_deleted=False, now=NOW, for_bulk=True)
    assert render_csv(bulk_arrow(conn, c)).decode() == \
        '"Id","Name"\n"001000000000001AAA","Say ""hi""\nnext line"\n'


def _bench(rows: int) -> float:
    """Bulk rows/s for a full-width Account extract (every readable stored field + Owner.Name)."""
    catalog = build_standard_catalog()
    acct = catalog.object("Account")
    conn = duckdb.connect()
    for obj in catalog.objects():
        create_object_table(conn, obj)
    exprs = []
    for k, f in enumerate(acct.stored_fields()):
        t = f.duckdb_type
        if f.name == "Id":
            exprs.append("'001' || lpad(CAST(i AS VARCHAR), 15, '0')")
        elif t == "VARCHAR":
            exprs.append(f"CASE WHEN (i + {k}) % 2 = 0 THEN NULL ELSE 'v{k}-' || CAST(i % 9973 AS VARCHAR) END")
        elif t == "BOOLEAN":
            exprs.append("false" if f.name == "IsDeleted" else "i % 2 = 0")
        elif t == "BIGINT":
            exprs.append("i * 3")
        elif t == "DOUBLE":
            exprs.append("CASE WHEN i % 3 = 0 THEN i * 1234.5678 WHEN i % 3 = 1 THEN NULL ELSE i / 7.0 END")
        elif t == "DATE":
            exprs.append("DATE '2020-01-01' + CAST(i % 1000 AS INTEGER)")
        elif t == "TIMESTAMP":
            exprs.append("TIMESTAMP '2020-01-01 00:00:00' + to_milliseconds(i * 1000)")
        else:
            exprs.append("NULL")
    conn.execute(f'INSERT INTO "Account" SELECT {", ".join(exprs)} FROM range({rows}) t(i)')
    fields = [f.name for f in catalog.readable_fields(acct) if not f.is_compound]
    c = compile_query(f"SELECT {', '.join(fields)}, Owner.Name FROM Account", catalog, include_deleted=False,
                      now=NOW, for_bulk=True)
    start = time.perf_counter()
    table = bulk_arrow(conn, c)
    size = sum(len(render_csv(table, off, 50_000)) for off in range(0, table.num_rows, 50_000))
    elapsed = time.perf_counter() - start
    rate = rows / elapsed
    print(f"\nBulk CSV: {len(fields) + 1} columns x {rows} rows, {size / rows:.0f} B/row, {elapsed:.2f}s, "
          f"{rate:,.0f} rows/s")
    return rate


def test_bulk_benchmark_prints_rate():
    """Not timing-dependent: prints the rate (run this file with -s, or as a script for 200k rows)."""
    assert _bench(20_000) > 0


if __name__ == "__main__":
    import sys

    _bench(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
