"""Sync state, kept in the warehouse itself so it commits in the same transaction as the data it covers:
the cursor can never be ahead of committed rows.

`salesforce._sync_state`: one row per object (cursor, totals, last success, columns awaiting back-fill).
`salesforce._sync_windows`: one row per committed window (what was read, how, and what it cost) — the
coverage record analysts and the sensor read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from sonora_pipeline.mirror.tables import SCHEMA

STATE = f"{SCHEMA}._sync_state"
WINDOWS = f"{SCHEMA}._sync_windows"


def ensure_state_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {STATE} (
            object_name VARCHAR PRIMARY KEY,
            cursor_modstamp TIMESTAMP,
            cursor_id VARCHAR,
            rows_upserted_total BIGINT DEFAULT 0,
            deletes_total BIGINT DEFAULT 0,
            purges_total BIGINT DEFAULT 0,
            api_calls_total BIGINT DEFAULT 0,
            initial_import VARCHAR,
            initial_import_at TIMESTAMP,
            pending_backfill VARCHAR[] DEFAULT [],
            last_method VARCHAR,
            last_success_at TIMESTAMP,
            last_reconciled_at TIMESTAMP
        )""")
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {WINDOWS} (
            object_name VARCHAR,
            partition_key VARCHAR,
            window_start TIMESTAMP,
            window_end TIMESTAMP,
            read_from TIMESTAMP,
            read_to TIMESTAMP,
            kind VARCHAR,
            method VARCHAR,
            rows_read BIGINT,
            rows_upserted BIGINT,
            deletes BIGINT,
            api_calls BIGINT,
            run_id VARCHAR,
            committed_at TIMESTAMP
        )""")


@dataclass
class ObjectState:
    object_name: str
    cursor_modstamp: datetime | None = None
    cursor_id: str | None = None
    rows_upserted_total: int = 0
    deletes_total: int = 0
    purges_total: int = 0
    api_calls_total: int = 0
    initial_import: str | None = None
    initial_import_at: datetime | None = None
    pending_backfill: tuple[str, ...] = ()
    last_method: str | None = None
    last_success_at: datetime | None = None
    last_reconciled_at: datetime | None = None


def read_state(conn: duckdb.DuckDBPyConnection, object_name: str) -> ObjectState:
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = '_sync_state'", [SCHEMA]
    ).fetchone()[0]
    if not exists:
        return ObjectState(object_name)
    row = conn.execute(
        f"SELECT cursor_modstamp, cursor_id, rows_upserted_total, deletes_total, purges_total, api_calls_total, "
        f"initial_import, initial_import_at, pending_backfill, last_method, last_success_at, last_reconciled_at "
        f"FROM {STATE} WHERE object_name = ?", [object_name]).fetchone()
    if row is None:
        return ObjectState(object_name)
    return ObjectState(object_name, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                       tuple(row[8] or ()), row[9], row[10], row[11])


def read_all_states(conn: duckdb.DuckDBPyConnection, object_names: tuple[str, ...]) -> dict[str, ObjectState]:
    return {name: read_state(conn, name) for name in object_names}


def write_state(conn: duckdb.DuckDBPyConnection, state: ObjectState) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO {STATE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [state.object_name, state.cursor_modstamp, state.cursor_id, state.rows_upserted_total, state.deletes_total,
         state.purges_total, state.api_calls_total, state.initial_import, state.initial_import_at,
         list(state.pending_backfill), state.last_method, state.last_success_at, state.last_reconciled_at])


def log_window(conn: duckdb.DuckDBPyConnection, **values) -> None:
    cols = ["object_name", "partition_key", "window_start", "window_end", "read_from", "read_to", "kind", "method",
            "rows_read", "rows_upserted", "deletes", "api_calls", "run_id", "committed_at"]
    conn.execute(f"INSERT INTO {WINDOWS} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                 [values.get(c) for c in cols])
