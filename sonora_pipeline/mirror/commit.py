"""Committing a spooled window: load, upsert by Id, mark deletes, move the cursor — one transaction.

Rules that make a re-run (or a crash and re-run) leave the same tables as one clean run:
- upsert by Id, and only when the incoming `SystemModstamp` is not older than the mirror's (an old window
  re-read after a newer one never rolls a row back);
- a row that arrives with `IsDeleted = true` only flips `IsDeleted`, `SystemModstamp` and
  `_sonora_deleted_at`: Salesforce blanks some fields on delete, and the last known values are worth more;
- duplicates inside one load (overlapping queries) keep the newest version of each Id;
- the loaded row count must equal what the org announced, or nothing is committed;
- the state row and the window log are written in the same transaction as the data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from sonora_pipeline.mirror.lake import is_lake, retry_conflicts
from sonora_pipeline.mirror.names import RAW_SCHEMA, quote_identifier, quote_literal, raw_table, table_name_for
from sonora_pipeline.mirror.spool import Spool
from sonora_pipeline.mirror.state import (
    ObjectState,
    OrgIdentity,
    claim_org,
    document_state_tables,
    ensure_state_tables,
    log_window,
    read_state,
    write_state,
)
from sonora_pipeline.mirror.tables import OWN_COLUMNS, ensure_table, existing_columns
from sonora_pipeline.salesforce.describe import ObjectSchema
from sonora_pipeline.salesforce.errors import TooManyPurges


class IncompleteData(Exception):
    """The rows loaded differ from the rows the org announced: the window is not committed."""


@dataclass
class CommitResult:
    rows_read: int
    rows_upserted: int
    deletes: int
    added_columns: list[str]
    cursor_modstamp: datetime | None
    cursor_id: str | None
    # The SystemModstamp range of the rows read (None when none were): what a read really covered, which for
    # an unbounded initial import is where the org's history starts.
    oldest_modstamp: datetime | None = None
    newest_modstamp: datetime | None = None


@contextlib.contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing, and no staging table left behind either way. A COMMIT that fails (DuckLake's conflict)
    has already rolled back: that error is the one raised, for `retry_conflicts` to see."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    finally:
        conn.execute("DROP TABLE IF EXISTS staged")


def rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if a failed COMMIT has not already."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.TransactionException as err:
        if "no transaction is active" not in str(err):
            raise


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _stage(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, spool: Spool) -> int:
    """Load the spooled pages into `staged`. An empty field is NULL whether bare or quoted (`""`), for every
    type: Salesforce stores no empty strings, and orgs differ in how they write a null."""
    types = {f.name: f.duckdb_type for f in schema.fields}
    conn.execute("DROP TABLE IF EXISTS staged_raw")
    selects = []
    if spool.csv_files:
        files = "[" + ", ".join(quote_literal(str(p)) for p in spool.csv_files) + "]"
        columns = "{" + ", ".join(f"'{c}': '{types[c]}'" for c in spool.columns) + "}"
        selects.append(
            f"SELECT {', '.join(quote_identifier(c) for c in spool.columns)} FROM read_csv({files}, header = true, "
            "delim = ',', "
            f"quote = '\"', escape = '\"', columns = {columns}, auto_detect = false, nullstr = '', "
            f"allow_quoted_nulls = true)")
    if spool.parquet_files:
        files = "[" + ", ".join(quote_literal(str(p)) for p in spool.parquet_files) + "]"
        casts = ", ".join(f"CAST({quote_identifier(c)} AS {types[c]}) AS {quote_identifier(c)}"
                          for c in spool.columns)
        selects.append(f"SELECT {casts} FROM read_parquet({files})")
    conn.execute(f"CREATE TEMP TABLE staged_raw AS {' UNION ALL '.join(selects)}")
    loaded = conn.execute("SELECT count(*) FROM staged_raw").fetchone()[0]
    if loaded != spool.rows_expected:
        raise IncompleteData(f"{schema.object_name}: loaded {loaded} rows but the org announced "
                             f"{spool.rows_expected}; nothing was committed")
    conn.execute("DROP TABLE IF EXISTS staged")
    distinct = conn.execute('SELECT count(DISTINCT "Id") FROM staged_raw').fetchone()[0]
    if distinct == loaded:
        conn.execute("ALTER TABLE staged_raw RENAME TO staged")
    else:  # overlapping queries (initial import filters) returned some Ids twice: keep the newest
        conn.execute('CREATE TEMP TABLE staged AS SELECT * FROM staged_raw '
                     'QUALIFY row_number() OVER (PARTITION BY "Id" ORDER BY "SystemModstamp" DESC) = 1')
        conn.execute("DROP TABLE staged_raw")
    return loaded


def _compound_exprs(schema: ObjectSchema, columns: list[str]) -> list[tuple[str, str]]:
    present = set(columns)
    out = []
    for compound in schema.compounds:
        parts = [(key, col) for key, col in compound.parts if col in present]
        if not parts:
            continue
        all_null = " AND ".join(f"s.{quote_identifier(col)} IS NULL" for _, col in parts)
        packed = ", ".join(f"{key} := s.{quote_identifier(col)}" for key, col in parts)
        out.append((compound.name, f"CASE WHEN {all_null} THEN NULL ELSE struct_pack({packed}) END"))
    return out


def _merge(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, columns: list[str], synced_at: datetime) -> tuple[int, int]:
    table = raw_table(schema.object_name)
    compounds = _compound_exprs(schema, columns)
    stamp = f"TIMESTAMP '{synced_at.isoformat(sep=' ')}'"
    newer = 's."SystemModstamp" >= t."SystemModstamp"'
    # Objects without IsDeleted (User) never delete: their table's IsDeleted keeps its default, false.
    deleted = 'coalesce(s."IsDeleted", false)' if "IsDeleted" in columns else "false"
    sets = [f"{quote_identifier(c)} = s.{quote_identifier(c)}" for c in columns if c != "Id"]
    sets += [f"{quote_identifier(n)} = {e}" for n, e in compounds]
    sets += [f"_sonora_synced_at = {stamp}", "_sonora_deleted_at = NULL", "_sonora_purged_at = NULL"]
    if "IsDeleted" not in columns:  # a row seen again is live, even if a reconcile had marked it gone
        sets.append('"IsDeleted" = false')
    insert_cols = columns + [n for n, _ in compounds] + ["_sonora_synced_at", "_sonora_deleted_at"]
    insert_vals = [f"s.{quote_identifier(c)}" for c in columns] + [e for _, e in compounds] + [
        stamp, f'CASE WHEN {deleted} THEN s."SystemModstamp" END']
    if conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)").fetchone()[0] == 0:
        # First load into an empty table: a plain insert does what the merge would, much faster.
        counts = conn.execute(
            f'SELECT count(*) FILTER (WHERE NOT {deleted}), count(*) FILTER (WHERE {deleted}) FROM staged AS s'
        ).fetchone()
        conn.execute(f"INSERT INTO {table} ({', '.join(quote_identifier(c) for c in insert_cols)}) "
                     f"SELECT {', '.join(insert_vals)} FROM staged AS s")
        return counts[0], counts[1]
    # Counted against the table before the merge: a row re-read by an overlap, no newer than the mirror's
    # copy, is not an upsert (the two passes of an initial import overlap by design).
    changed_upserts, changed_deletes = conn.execute(
        f'SELECT count(*) FILTER (WHERE NOT {deleted} AND (t."Id" IS NULL OR s."SystemModstamp" > t."SystemModstamp" '
        f'OR t._sonora_deleted_at IS NOT NULL)), '
        f'count(*) FILTER (WHERE {deleted} AND (t."Id" IS NULL OR t._sonora_deleted_at IS NULL)) '
        f'FROM staged s LEFT JOIN {table} t ON t."Id" = s."Id"').fetchone()
    if is_lake(conn):  # DuckLake's MERGE takes one UPDATE action: the same two cases, as one
        _merge_single_update(conn, table, newer, deleted, sets, stamp, insert_cols, insert_vals)
        return changed_upserts, changed_deletes
    conn.execute(f"""
        MERGE INTO {table} AS t USING staged AS s ON t."Id" = s."Id"
        WHEN MATCHED AND {newer} AND NOT {deleted} THEN UPDATE SET {', '.join(sets)}
        WHEN MATCHED AND {newer} AND {deleted} THEN UPDATE SET "IsDeleted" = true,
            "SystemModstamp" = s."SystemModstamp", _sonora_synced_at = {stamp},
            _sonora_deleted_at = coalesce(t._sonora_deleted_at, s."SystemModstamp")
        WHEN NOT MATCHED THEN INSERT ({', '.join(quote_identifier(c) for c in insert_cols)})
            VALUES ({', '.join(insert_vals)})
    """)
    return changed_upserts, changed_deletes


def _merge_single_update(conn: duckdb.DuckDBPyConnection, table: str, newer: str, deleted: str, sets: list[str],
                         stamp: str, insert_cols: list[str], insert_vals: list[str]) -> None:
    """The upsert of `_merge` with one WHEN MATCHED action: each column takes the live row's value, or for a
    delete keeps the mirror's (only IsDeleted, SystemModstamp and the stamps change), as the two actions do."""
    on_delete = {'"IsDeleted"': "true", '"SystemModstamp"': 's."SystemModstamp"', "_sonora_synced_at": stamp,
                 "_sonora_deleted_at": 'coalesce(t._sonora_deleted_at, s."SystemModstamp")'}
    merged = []
    for assignment in sets:
        column, live = assignment.split(" = ", 1)
        kept = on_delete.get(column, f"t.{column}")
        merged.append(f"{column} = CASE WHEN {deleted} THEN {kept} ELSE {live} END")
    conn.execute(f"""
        MERGE INTO {table} AS t USING staged AS s ON t."Id" = s."Id"
        WHEN MATCHED AND {newer} THEN UPDATE SET {', '.join(merged)}
        WHEN NOT MATCHED THEN INSERT ({', '.join(quote_identifier(c) for c in insert_cols)})
            VALUES ({', '.join(insert_vals)})
    """)


@retry_conflicts
def commit_window(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, spool: Spool, *, kind: str,
                  method: str, partition_key: str | None, window_start: datetime | None,
                  window_end: datetime | None, read_from: datetime | None, read_to: datetime | None,
                  api_calls: int, run_id: str | None, advance_cursor: bool,
                  initial_import: str | None = None, org: OrgIdentity | None = None) -> CommitResult:
    """Load `spool` into the object's table and record the window, atomically (refused for another `org`)."""
    synced_at = _utcnow()
    with transaction(conn):
        if org is not None:
            claim_org(conn, org)
        ensure_state_tables(conn)
        added = ensure_table(conn, schema)
        state = read_state(conn, schema.object_name)
        if added and state.rows_upserted_total:
            state.pending_backfill = tuple(sorted(set(state.pending_backfill) | set(added)))
        rows_read = upserted = deletes = 0
        oldest = newest = None
        if not spool.empty:
            rows_read = _stage(conn, schema, spool)
            oldest, newest = conn.execute('SELECT min("SystemModstamp"), max("SystemModstamp") FROM staged').fetchone()
            upserted, deletes = _merge(conn, schema, spool.columns, synced_at)
        if advance_cursor and read_to is not None:
            # The cursor is the end of what has been read contiguously; it only ever moves forward.
            if state.cursor_modstamp is None or read_to > state.cursor_modstamp:
                if read_from is None or state.cursor_modstamp is None or read_from <= state.cursor_modstamp:
                    state.cursor_modstamp = read_to
                    state.cursor_id = None
        if initial_import:
            state.initial_import = initial_import
            state.initial_import_at = synced_at
        state.rows_upserted_total += upserted
        state.deletes_total += deletes
        state.api_calls_total += api_calls
        state.last_method = method
        state.last_success_at = synced_at
        write_state(conn, state)
        log_window(conn, object_name=schema.object_name, partition_key=partition_key, window_start=window_start,
                   window_end=window_end, read_from=read_from, read_to=read_to, kind=kind, method=method,
                   rows_read=rows_read, rows_upserted=upserted, deletes=deletes, api_calls=api_calls,
                   run_id=run_id, committed_at=synced_at)
    return CommitResult(rows_read, upserted, deletes, added, state.cursor_modstamp, state.cursor_id, oldest, newest)


def vanished_columns(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema) -> list[str]:
    """Mirrored columns that describe no longer shows (field deleted, or read access revoked): they are
    kept with their last known values, and the caller says so."""
    known = {f.name.lower() for f in schema.fields} | {c.name.lower() for c in schema.compounds} | {"isdeleted"}
    return sorted(c for c in existing_columns(conn, table_name_for(schema.object_name))
                  if c.lower() not in known and c not in OWN_COLUMNS)


def _store_record_types(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema) -> None:
    """Record types from describe (no extra API call): the model filters customers by developer name."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}._record_types (object_name VARCHAR, record_type_id VARCHAR, "
                 "developer_name VARCHAR, name VARCHAR)")
    document_state_tables(conn, "_record_types")
    conn.execute(f"DELETE FROM {RAW_SCHEMA}._record_types WHERE object_name = ?", [schema.object_name])
    for rt_id, developer_name, label in schema.record_types:
        conn.execute(f"INSERT INTO {RAW_SCHEMA}._record_types VALUES (?, ?, ?, ?)",
                     [schema.object_name, rt_id, developer_name, label])


@retry_conflicts
def prepare_schema(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, *,
                   org: OrgIdentity | None = None) -> tuple[list[str], tuple[str, ...]]:
    """Bring the table in line with today's describe: new fields become columns, and if the table already
    had rows, those columns are queued for back-fill (recorded in the state, so a crash between here and the
    back-fill still back-fills on the next run). Returns (columns added, columns awaiting back-fill)."""
    with transaction(conn):
        if org is not None:
            claim_org(conn, org)
        ensure_state_tables(conn)
        added = ensure_table(conn, schema)
        _store_record_types(conn, schema)
        state = read_state(conn, schema.object_name)
        if added and state.rows_upserted_total:
            state.pending_backfill = tuple(sorted(set(state.pending_backfill) | set(added)))
            write_state(conn, state)
    return added, state.pending_backfill


@retry_conflicts
def commit_backfill(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, spool: Spool, columns: list[str],
                    *, api_calls: int, run_id: str | None, org: OrgIdentity | None = None) -> int:
    """Fill columns added after rows were mirrored: update those columns only, for rows already present."""
    with transaction(conn):
        if org is not None:
            claim_org(conn, org)
        ensure_state_tables(conn)
        ensure_table(conn, schema)
        updated = 0
        if not spool.empty:
            _stage(conn, schema, spool)
            sets = ", ".join(f"{quote_identifier(c)} = s.{quote_identifier(c)}" for c in columns)
            table = raw_table(schema.object_name)
            updated = conn.execute(f'SELECT count(*) FROM staged s JOIN {table} t ON t."Id" = s."Id"').fetchone()[0]
            conn.execute(f'UPDATE {table} AS t SET {sets} FROM staged AS s WHERE t."Id" = s."Id"')
        state = read_state(conn, schema.object_name)
        state.pending_backfill = tuple(c for c in state.pending_backfill if c not in columns)
        _record_bulk_refresh(conn, state, "backfill_columns", rows_read=spool.rows_expected, rows_changed=updated,
                             api_calls=api_calls, run_id=run_id)
    return updated


@retry_conflicts
def commit_formula_refresh(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, spool: Spool,
                           columns: list[str], *, read_started: datetime, api_calls: int,
                           run_id: str | None, org: OrgIdentity | None = None) -> int:
    """Refresh formula columns of rows already mirrored, in one transaction; returns the rows whose values
    changed. Nothing else moves: no other column, no cursor, no row added. A row is left as it is when the
    mirror's copy is newer (a higher SystemModstamp, or a sync committed it after this read began), when it
    was deleted (it keeps its last known values), or when the refresh did not read it. Refused for another `org`."""
    with transaction(conn):
        ensure_state_tables(conn)
        if org is not None:
            claim_org(conn, org)
        changed = 0
        if not spool.empty:
            _stage(conn, schema, spool)
            table = raw_table(schema.object_name)
            applies = ('t."Id" = s."Id" AND s."SystemModstamp" >= t."SystemModstamp" '
                       "AND t._sonora_synced_at < ? AND t._sonora_deleted_at IS NULL AND t._sonora_purged_at IS NULL")
            differs = " OR ".join(f"t.{quote_identifier(c)} IS DISTINCT FROM s.{quote_identifier(c)}" for c in columns)
            where = f"{applies} AND ({differs})"
            changed = conn.execute(f"SELECT count(*) FROM staged s JOIN {table} t ON {where}",
                                   [read_started]).fetchone()[0]
            sets = ", ".join(f"{quote_identifier(c)} = s.{quote_identifier(c)}" for c in columns)
            conn.execute(f"UPDATE {table} AS t SET {sets} FROM staged AS s WHERE {where}", [read_started])
        _record_bulk_refresh(conn, read_state(conn, schema.object_name), "formula_refresh",
                             rows_read=spool.rows_expected, rows_changed=changed, api_calls=api_calls, run_id=run_id)
    return changed


def _record_bulk_refresh(conn: duckdb.DuckDBPyConnection, state: ObjectState, kind: str, *, rows_read: int,
                         rows_changed: int, api_calls: int, run_id: str | None) -> None:
    """The bookkeeping of a Bulk re-read of some columns (back-fill, formula refresh), in its transaction:
    its API calls counted in the object's state (the cursor stays), and a line in _sync_windows."""
    state.api_calls_total += api_calls
    write_state(conn, state)
    log_window(conn, object_name=state.object_name, kind=kind, method="bulk", rows_read=rows_read,
               rows_upserted=rows_changed, deletes=0, api_calls=api_calls, run_id=run_id, committed_at=_utcnow())


@retry_conflicts
def commit_purges(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, live_ids_table: str, *,
                  api_calls: int, run_id: str | None, org: OrgIdentity | None = None,
                  max_purge_share: float = 1.0) -> int:
    """Mark rows whose Id the org no longer has (hard-deleted or purged from the recycle bin).

    The safety valve: when more than `max_purge_share` of the object's live rows (not deleted, not purged) would
    be marked, nothing is marked and TooManyPurges says why. A reconcile against the wrong org or by a run-as
    user who lost sharing access looks exactly like a mass delete, and would drop those rows from the model."""
    now = _utcnow()
    table = raw_table(schema.object_name)
    gone = f'NOT EXISTS (SELECT 1 FROM {live_ids_table} o WHERE o."Id" = t."Id")'
    with transaction(conn):
        if org is not None:
            claim_org(conn, org)
        ensure_state_tables(conn)
        ensure_table(conn, schema)
        purged, live, live_gone = conn.execute(
            f'SELECT count(*) FILTER (WHERE t._sonora_purged_at IS NULL AND {gone}), '
            f'count(*) FILTER (WHERE t._sonora_purged_at IS NULL AND NOT coalesce(t."IsDeleted", false)), '
            f'count(*) FILTER (WHERE t._sonora_purged_at IS NULL AND NOT coalesce(t."IsDeleted", false) AND {gone}) '
            f'FROM {table} t').fetchone()
        if live_gone and live_gone > max_purge_share * live:
            raise TooManyPurges(schema.object_name, live_gone, live, max_purge_share)
        conn.execute(
            f'UPDATE {table} AS t SET _sonora_purged_at = ?, "IsDeleted" = true, '
            f'_sonora_deleted_at = coalesce(t._sonora_deleted_at, ?) WHERE t._sonora_purged_at IS NULL AND {gone}',
            [now, now])
        state = read_state(conn, schema.object_name)
        state.purges_total += purged
        state.api_calls_total += api_calls
        state.last_reconciled_at = now
        write_state(conn, state)
        log_window(conn, object_name=schema.object_name, kind="reconcile_ids", method="bulk", rows_read=None,
                   rows_upserted=0, deletes=purged, api_calls=api_calls, run_id=run_id, committed_at=now)
    return purged
