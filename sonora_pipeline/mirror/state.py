"""Sync state, kept in the warehouse itself so it commits in the same transaction as the data it covers:
the cursor can never be ahead of committed rows.

`salesforce._sync_state`: one row per object (cursor, totals, last success, columns awaiting back-fill).
`salesforce._sync_windows`: one row per committed window (what was read, how, and what it cost) — the
coverage record analysts and the sensor read.
`salesforce._org`: the one org this warehouse mirrors (id, instance URL, first seen), written by the first commit
and checked by every later one, so records of two orgs are never mixed.
`salesforce._record_types` (written by the commit): the record types describe lists.
Each table and column carries a DuckDB comment (`DOCS`), re-applied whenever one is missing or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from sonora_pipeline.mirror.lake import is_lake
from sonora_pipeline.mirror.names import RAW_SCHEMA
from sonora_pipeline.mirror.tables import set_comments
from sonora_pipeline.salesforce.errors import OrgMismatch

STATE = f"{RAW_SCHEMA}._sync_state"
WINDOWS = f"{RAW_SCHEMA}._sync_windows"
ORG = f"{RAW_SCHEMA}._org"

# What the state tables say, as DuckDB comments (the tables are analysts' record of coverage and cost too).
DOCS: dict[str, tuple[str, dict[str, str]]] = {
    "_sync_state": ("Sonora's sync state: one row per mirrored Salesforce object (cursor, totals, last success). "
                    "Written in the same transaction as the rows it covers.", {
        "object_name": "Salesforce object API name (Account, Task, Invoice__c, ...)",
        "cursor_modstamp": "SystemModstamp up to which every change has been read and committed (the next "
                           "incremental read starts here, minus the overlap)",
        "cursor_id": "Id tie-breaker within cursor_modstamp (NULL: the cursor covers the whole instant, "
                     "which is what commits write)",
        "rows_upserted_total": "Rows inserted or updated in the mirror table, all runs",
        "deletes_total": "Soft deletes (IsDeleted) seen, all runs",
        "purges_total": "Records the Id reconciliation found gone from the org (hard delete or purge), all runs",
        "api_calls_total": "Salesforce API calls spent on this object, all runs",
        "initial_import": "Mode of the initial import (all, active, since:YYYY-MM-DD; NULL: not done yet)",
        "initial_import_at": "When the initial import committed (UTC)",
        "pending_backfill": "Columns added after rows were mirrored, whose old rows still await a back-fill",
        "last_method": "How the last commit read Salesforce (rest or bulk)",
        "last_success_at": "When the last successful commit happened (UTC)",
        "last_reconciled_at": "When the Id reconciliation last ran (UTC; it finds hard-deleted records)",
    }),
    "_sync_windows": ("One row per committed read of Salesforce (a window, the initial import, a column "
                      "back-fill, a formula refresh or an Id reconciliation): what was read, how, and what it "
                      "cost.", {
        "object_name": "Salesforce object API name",
        "partition_key": "Dagster partition (daily sync window) of the run, NULL outside a partitioned run",
        "window_start": "Start of the sync window (UTC; kind window only)",
        "window_end": "End of the sync window (UTC, exclusive; kind window only)",
        "read_from": "Lowest SystemModstamp read (UTC; NULL: from the beginning)",
        "read_to": "SystemModstamp read up to (UTC, exclusive)",
        "kind": "What was read: window, initial, backfill_columns, formula_refresh or reconcile_ids "
                "(several joined by + in one run)",
        "method": "API used: rest or bulk (Bulk API 2.0)",
        "rows_read": "Rows received from Salesforce",
        "rows_upserted": "Rows inserted or changed in the mirror table",
        "deletes": "Records marked deleted (soft deletes; for reconcile_ids: purges)",
        "api_calls": "Salesforce API calls this read cost",
        "run_id": "Dagster run (or CLI run) that committed it",
        "committed_at": "When it was committed (UTC)",
    }),
    "_org": ("The one Salesforce org this warehouse mirrors: every commit checks it, so records of two orgs are "
             "never mixed.", {
        "org_id": "Salesforce organization Id (15 or 18 characters, as the org gave it)",
        "instance_url": "The org's instance URL",
        "first_seen_at": "When the first commit recorded the org (UTC)",
    }),
    "_record_types": ("Record types of the mirrored objects, from describe: the model filters customers by "
                      "developer name.", {
        "object_name": "Salesforce object API name",
        "record_type_id": "Record type Id (RecordTypeId of the object's rows)",
        "developer_name": "Record type API (developer) name",
        "name": "Record type label",
    }),
}


def document_state_tables(conn: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Comment the state tables (default: all that exist), writing only the comments that differ."""
    set_comments(conn, {name: DOCS[name] for name in (tables or DOCS)})


def ensure_state_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    # DuckLake has no keys and no list defaults: there write_state replaces a row itself (every column written).
    lake = is_lake(conn)
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {STATE} (
            object_name VARCHAR{"" if lake else " PRIMARY KEY"},
            cursor_modstamp TIMESTAMP,
            cursor_id VARCHAR,
            rows_upserted_total BIGINT DEFAULT 0,
            deletes_total BIGINT DEFAULT 0,
            purges_total BIGINT DEFAULT 0,
            api_calls_total BIGINT DEFAULT 0,
            initial_import VARCHAR,
            initial_import_at TIMESTAMP,
            pending_backfill VARCHAR[]{"" if lake else " DEFAULT []"},
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
    document_state_tables(conn)  # _org and _record_types too, when a commit made them


@dataclass(frozen=True)
class OrgIdentity:
    """The org the credentials reach: its id (15 or 18 characters, as Salesforce gave it) and instance URL."""

    org_id: str
    instance_url: str

    def same_org(self, other_id: str) -> bool:
        # The first 15 characters are the id; the 3 more of the 18-character form only encode its letters' case.
        return self.org_id[:15] == other_id[:15]


def mirrored_org(conn: duckdb.DuckDBPyConnection) -> tuple[str, str, datetime] | None:
    """(org id, instance URL, first seen) of the org this warehouse mirrors; None before the first commit."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = '_org'", [RAW_SCHEMA]
    ).fetchone()[0]
    if not exists:
        return None
    return conn.execute(f"SELECT org_id, instance_url, first_seen_at FROM {ORG} LIMIT 1").fetchone()


def check_org(conn: duckdb.DuckDBPyConnection, org: OrgIdentity, database: str = "this warehouse") -> None:
    """Raise OrgMismatch when the warehouse mirrors another org than `org` (read-only: usable before a fetch)."""
    known = mirrored_org(conn)
    if known is not None and not org.same_org(known[0]):
        raise OrgMismatch(known[0], known[1], org.org_id, org.instance_url, database)


def claim_org(conn: duckdb.DuckDBPyConnection, org: OrgIdentity) -> None:
    """Inside a commit's transaction: record `org` if the warehouse has no org yet, refuse if it has another.
    Being in the same transaction as the data, the record and the first rows appear together or not at all."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {ORG} (org_id VARCHAR NOT NULL, instance_url VARCHAR, "
                 "first_seen_at TIMESTAMP)")
    check_org(conn, org)
    if mirrored_org(conn) is None:
        first_seen = datetime.now(UTC).replace(tzinfo=None)
        conn.execute(f"INSERT INTO {ORG} VALUES (?, ?, ?)", [org.org_id, org.instance_url, first_seen])


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
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = '_sync_state'", [RAW_SCHEMA]
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
    """Several objects' states with one query (a sensor tick reads every org's: one query each, not 2 per
    object)."""
    exists = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = '_sync_state'", [RAW_SCHEMA]
    ).fetchone()[0]
    states = {name: ObjectState(name) for name in object_names}
    if not exists or not object_names:
        return states
    rows = conn.execute(
        f"SELECT object_name, cursor_modstamp, cursor_id, rows_upserted_total, deletes_total, purges_total, "
        f"api_calls_total, initial_import, initial_import_at, pending_backfill, last_method, last_success_at, "
        f"last_reconciled_at FROM {STATE} WHERE list_contains(?, object_name)", [list(object_names)]).fetchall()
    for row in rows:
        states[row[0]] = ObjectState(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                                     tuple(row[9] or ()), row[10], row[11], row[12])
    return states


def write_state(conn: duckdb.DuckDBPyConnection, state: ObjectState) -> None:
    """Replace the object's row (inside the commit's transaction; on DuckLake, which has no keys for INSERT OR
    REPLACE, as a delete and an insert)."""
    verb = "INSERT OR REPLACE"
    if is_lake(conn):
        conn.execute(f"DELETE FROM {STATE} WHERE object_name = ?", [state.object_name])
        verb = "INSERT"
    conn.execute(
        f"{verb} INTO {STATE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [state.object_name, state.cursor_modstamp, state.cursor_id, state.rows_upserted_total, state.deletes_total,
         state.purges_total, state.api_calls_total, state.initial_import, state.initial_import_at,
         list(state.pending_backfill), state.last_method, state.last_success_at, state.last_reconciled_at])


def log_window(conn: duckdb.DuckDBPyConnection, **values) -> None:
    cols = ["object_name", "partition_key", "window_start", "window_end", "read_from", "read_to", "kind", "method",
            "rows_read", "rows_upserted", "deletes", "api_calls", "run_id", "committed_at"]
    conn.execute(f"INSERT INTO {WINDOWS} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                 [values.get(c) for c in cols])
