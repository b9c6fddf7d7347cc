"""Mirror tables in the `salesforce` schema, typed from describe, evolved as the org's schema changes.

Columns keep Salesforce API names ("Id", "ARR__c"; DuckDB identifiers are case-insensitive, so analysts
may type them in any case), comments carry field labels (and formulas), and three columns of our own
record what the mirror knows beyond the org's values:
`_sonora_synced_at` (last commit touching the row), `_sonora_deleted_at` (when a soft delete was seen) and
`_sonora_purged_at` (when the Id reconciliation found the record gone from the org: hard delete or purge).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import duckdb

from sonora_pipeline.mirror.lake import is_lake
from sonora_pipeline.mirror.names import RAW_SCHEMA, quote_identifier, quote_literal, raw_table, table_name_for
from sonora_pipeline.salesforce.describe import ObjectSchema

OWN_COLUMNS = {
    "_sonora_synced_at": ("TIMESTAMP", "When Sonora last committed this row"),
    "_sonora_deleted_at": ("TIMESTAMP", "When the record was deleted in Salesforce (soft delete, recycle bin)"),
    "_sonora_purged_at": ("TIMESTAMP", "When Sonora found the record gone from Salesforce (hard delete or purge)"),
}
NO_SOFT_DELETE_COMMENT = ("Added by Sonora: this object has no IsDeleted in Salesforce (its records are deactivated, "
                          "not deleted); true only when the Id reconciliation finds the record gone")
ADDRESS_STRUCT = ("STRUCT(street VARCHAR, city VARCHAR, state VARCHAR, postalCode VARCHAR, country VARCHAR, "
                  "latitude DOUBLE, longitude DOUBLE, geocodeAccuracy VARCHAR)")


_TEXT = {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "UUID"}
_BOOLEAN = {"BOOLEAN", "BOOL"}
_NUMBER = {"TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
           "UBIGINT", "UHUGEINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL", "NUMERIC"}
_DATETIME = {"TIMESTAMP", "DATETIME", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_S", "TIMESTAMP_MS",
             "TIMESTAMP_NS"}


def column_kind(duckdb_type: str) -> str:
    """text | number | boolean | date | datetime | other, of a DuckDB column type (as duckdb_columns() spells
    it: VARCHAR, DECIMAL(18,2), TIMESTAMP WITH TIME ZONE). Anything else, lists (VARCHAR[]) and structs
    included, is "other": a caller decides what that allows, rather than a guess calling it text."""
    t = " ".join(duckdb_type.upper().split())
    base = t.split("(", 1)[0].strip()
    if t.endswith("]") or base in ("STRUCT", "MAP", "UNION"):
        return "other"
    if base in _TEXT:
        return "text"
    if base in _BOOLEAN:
        return "boolean"
    if base in _NUMBER:
        return "number"
    if base == "DATE":
        return "date"
    if base in _DATETIME:
        return "datetime"
    return "other"


class MirrorColumn(NamedTuple):
    """One column of a mirror table: its DDL type and the comment analysts and the Dagster UI see."""

    name: str
    ddl_type: str
    comment: str

    @property
    def type(self) -> str:
        """The type without DDL clauses (DEFAULT) or a STRUCT's members, for display."""
        plain = self.ddl_type.split(" DEFAULT ")[0]
        return "STRUCT" if plain.startswith("STRUCT") else plain


def table_comment(schema: ObjectSchema) -> str:
    return f"Salesforce {schema.object_name} ({schema.label}), mirrored by Sonora"


def column_docs(schema: ObjectSchema) -> list[MirrorColumn]:
    """Every column the mirror table of `schema` has, in order, with its comment: the field's describe label
    (and formula), a compound's label and components, and the columns of our own. The one source of the
    DuckDB comments and of the Dagster column schema."""
    columns = [MirrorColumn(f.name, f.duckdb_type, f.comment or f.name) for f in schema.fields]
    columns += [MirrorColumn(c.name, ADDRESS_STRUCT,
                             f"{c.label or c.name} (built from {', '.join(part for _, part in c.parts)})")
                for c in schema.compounds]
    columns += [MirrorColumn(name, dtype, comment) for name, (dtype, comment) in OWN_COLUMNS.items()]
    if not schema.soft_deletes:  # e.g. User: no recycle bin, but the same "is this row live?" column
        columns.append(MirrorColumn("IsDeleted", "BOOLEAN DEFAULT false", NO_SOFT_DELETE_COMMENT))
    return columns


def set_comments(conn: duckdb.DuckDBPyConnection, docs: dict[str, tuple[str, dict[str, str]]],
                 schema: str = RAW_SCHEMA) -> None:
    """Comment the tables of `docs` ({table: (comment, {column: comment})}) that exist, and their columns,
    writing only the comments that differ: two catalog queries, cheap enough for every commit, and it repairs
    what a re-created table, an edited label or an older warehouse left blank or stale."""
    where = "WHERE database_name = current_database() AND schema_name = ? AND list_contains(?, table_name)"
    params = [schema, list(docs)]
    tables = conn.execute(f"SELECT table_name, comment FROM duckdb_tables() {where}", params).fetchall()
    rows = conn.execute(f"SELECT table_name, column_name, comment FROM duckdb_columns() {where}", params).fetchall()
    wanted = {table: {name.lower(): text for name, text in columns.items()} for table, (_, columns) in docs.items()}
    statements = [f"COMMENT ON TABLE {schema}.{quote_identifier(table)} IS {quote_literal(docs[table][0])}"
                  for table, have in tables if have != docs[table][0]]
    for table, column, have in rows:
        target = f"{schema}.{quote_identifier(table)}"
        text = wanted[table].get(column.lower())
        if text and have != text:
            statements.append(f"COMMENT ON COLUMN {target}.{quote_identifier(column)} IS {quote_literal(text)}")
    if statements:
        conn.execute(";\n".join(statements))


def existing_columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [RAW_SCHEMA, table]).fetchall()
    return {name: dtype for name, dtype in rows}


def ensure_table(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema) -> list[str]:
    """Create the table or add the columns it lacks, and bring its comments in line with today's describe
    (labels can be edited in the org); returns the org columns that were added to an existing table (they
    need a back-fill of their old rows)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    name, table = table_name_for(schema.object_name), raw_table(schema.object_name)
    have = existing_columns(conn, name)
    wanted = column_docs(schema)
    if not have:
        cols = ", ".join(f"{quote_identifier(c.name)} {c.ddl_type}" for c in wanted)
        # DuckLake has no keys: there the commit's MERGE on Id is what keeps one row per Id.
        key = "" if is_lake(conn) else ', PRIMARY KEY ("Id")'
        conn.execute(f"CREATE TABLE {table} ({cols}{key})")
        added: list[str] = []
    else:
        lower = {n.lower() for n in have}
        new_columns = [c for c in wanted if c.name.lower() not in lower]
        for c in new_columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {quote_identifier(c.name)} {c.ddl_type}")
        added = [c.name for c in new_columns if c.name in schema.field_names]
        _retype_numbers(conn, schema, have)
    set_comments(conn, {name: (table_comment(schema), {c.name: c.comment for c in wanted})})
    return added


def _is_number_type(dtype: str) -> bool:
    return dtype.upper() == "DOUBLE" or dtype.upper().startswith("DECIMAL")


def _widens(current: str, target: str) -> bool:
    have = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", current.upper())
    want = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", target.upper())
    return bool(have and want) and have.group(2) == want.group(2) and int(want.group(1)) > int(have.group(1))


def _retype_numbers(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, have: dict[str, str]) -> None:
    """Give existing number columns the type describe asks for now: a warehouse made before numbers were
    exact holds DOUBLE columns, and a field's precision or scale can be edited in the org.

    A column changes only to a type every stored value converts to (checked first, so the enclosing
    transaction never fails on it). A value a DOUBLE rounded past the field's precision (999999999999999999
    became 1e18) fits no DECIMAL(18,0): the column then becomes DECIMAL(38, scale), exact for everything
    loaded from now on, and narrows to the describe's type once such rows have been read again. Other
    rounded values stay as they were until their record changes (or `sync --lookback all` reads it)."""
    types = {name.lower(): dtype for name, dtype in have.items()}
    table = raw_table(schema.object_name)
    lake = is_lake(conn)
    for f in schema.fields:
        current = types.get(f.name.lower())
        if current is None or current.upper() == f.duckdb_type.upper():
            continue
        if not (_is_number_type(current) and _is_number_type(f.duckdb_type)):
            continue
        column = quote_identifier(f.name)
        candidates = [f.duckdb_type]
        scale = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", f.duckdb_type.upper())
        if scale:
            candidates.append(f"DECIMAL(38,{scale.group(2)})")
        if lake:  # DuckLake only widens a type in place (no USING): a wider DECIMAL of the same scale
            candidates = [t for t in candidates if _widens(current, t)]
        for target in candidates:
            if target.upper().replace(" ", "") == current.upper().replace(" ", ""):
                break
            if lake:
                conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {target}")
                break
            # Through text, so a DOUBLE's shortest digits (61.217061) are what the DECIMAL keeps.
            converted = f"TRY_CAST(CAST({column} AS VARCHAR) AS {target})"
            misfits = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL AND {converted} IS NULL"
            ).fetchone()[0]
            if misfits == 0:
                conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {target} "
                             f"USING CAST(CAST({column} AS VARCHAR) AS {target})")
                break
