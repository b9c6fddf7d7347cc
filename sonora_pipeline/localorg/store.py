"""The org's records, held in an in-memory DuckDB database: one table per sObject, one column per field."""

from __future__ import annotations

import duckdb

from sonora_pipeline.localorg.schema import ObjectSpec


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_object_table(conn: duckdb.DuckDBPyConnection, obj: ObjectSpec) -> None:
    """Create the table holding `obj`'s rows: stored (non-compound) fields, typed from describe."""
    cols = ", ".join(f"{quote_ident(f.name)} {f.duckdb_type}" for f in obj.stored_fields())
    conn.execute(f"CREATE TABLE IF NOT EXISTS {obj.table} ({cols}, PRIMARY KEY (\"Id\"))")
