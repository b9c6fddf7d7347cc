"""Mirror tables in the `salesforce` schema, typed from describe, evolved as the org's schema changes.

Columns keep Salesforce API names ("Id", "ARR__c"; DuckDB identifiers are case-insensitive, so analysts
may type them in any case), comments carry field labels (and formulas), and three columns of our own
record what the mirror knows beyond the org's values:
`_sonora_synced_at` (last commit touching the row), `_sonora_deleted_at` (when a soft delete was seen) and
`_sonora_purged_at` (when the Id reconciliation found the record gone from the org: hard delete or purge).
"""

from __future__ import annotations

import duckdb

from sonora_pipeline.sync.catalog import ObjectSchema

SCHEMA = "salesforce"
OWN_COLUMNS = {
    "_sonora_synced_at": ("TIMESTAMP", "When Sonora last committed this row"),
    "_sonora_deleted_at": ("TIMESTAMP", "When the record was deleted in Salesforce (soft delete, recycle bin)"),
    "_sonora_purged_at": ("TIMESTAMP", "When Sonora found the record gone from Salesforce (hard delete or purge)"),
}
NO_SOFT_DELETE_COMMENT = ("Added by Sonora: this object has no IsDeleted in Salesforce (its records are deactivated, "
                          "not deleted); true only when the Id reconciliation finds the record gone")
ADDRESS_STRUCT = ("STRUCT(street VARCHAR, city VARCHAR, state VARCHAR, postalCode VARCHAR, country VARCHAR, "
                  "latitude DOUBLE, longitude DOUBLE, geocodeAccuracy VARCHAR)")


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: ObjectSchema) -> str:
    return f"{SCHEMA}.{q(schema.table)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def existing_columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [SCHEMA, table]).fetchall()
    return {name: dtype for name, dtype in rows}


def ensure_table(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema) -> list[str]:
    """Create the table or add the columns it lacks; returns the org columns that were added to an
    existing table (they need a back-fill of their old rows)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    have = existing_columns(conn, schema.table)
    wanted: list[tuple[str, str, str]] = [(f.name, f.duckdb_type, f.comment) for f in schema.fields]
    wanted += [(c.name, ADDRESS_STRUCT, c.label) for c in schema.compounds]
    wanted += [(name, dtype, comment) for name, (dtype, comment) in OWN_COLUMNS.items()]
    if not schema.soft_deletes:  # e.g. User: no recycle bin, but the same "is this row live?" column
        wanted.append(("IsDeleted", "BOOLEAN DEFAULT false", NO_SOFT_DELETE_COMMENT))
    if not have:
        cols = ", ".join(f"{q(n)} {t}" for n, t, _ in wanted)
        conn.execute(f'CREATE TABLE {qualified(schema)} ({cols}, PRIMARY KEY ("Id"))')
        conn.execute(f"COMMENT ON TABLE {qualified(schema)} IS "
                     f"{_literal(f'Salesforce {schema.object_name} ({schema.label}), mirrored by Sonora')}")
        added: list[str] = []
        new_columns = wanted
    else:
        lower = {n.lower() for n in have}
        new_columns = [w for w in wanted if w[0].lower() not in lower]
        for name, dtype, _ in new_columns:
            conn.execute(f"ALTER TABLE {qualified(schema)} ADD COLUMN {q(name)} {dtype}")
        added = [n for n, _, _ in new_columns if n in schema.field_names]
    for name, _, comment in new_columns:
        conn.execute(f"COMMENT ON COLUMN {qualified(schema)}.{q(name)} IS {_literal(comment)}")
    return added
