"""Syncing one object for one read plan: describe, probe, fetch to the spool, commit.

The order matters for "nothing lost": everything is fetched (and counted) before the warehouse is
touched, the commit is one transaction that also moves the cursor, and a failure at any point leaves the
previous state in place for the next run to repeat the same read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from sonora_pipeline.mirror.commit import (
    CommitResult,
    commit_backfill,
    commit_purges,
    commit_window,
    prepare_schema,
    vanished_columns,
)
from sonora_pipeline.mirror.names import quote_literal, raw_table
from sonora_pipeline.mirror.spool import Spool, clean_stale_spools
from sonora_pipeline.mirror.state import ObjectState, OrgIdentity, check_org, read_all_states
from sonora_pipeline.mirror.warehouse import (
    Location,
    as_location,
    read_connection,
    warehouse_exists,
    work_folder,
    write_connection,
)
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import safe_url
from sonora_pipeline.salesforce.describe import ObjectSchema, schema_from_describe
from sonora_pipeline.salesforce.errors import ApiError, InsufficientAccess
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync import progress
from sonora_pipeline.sync.windows import ReadPlan, initial_plan, window_plan

# Rows per Bulk result page: large pages keep API calls low (≈ 10 per million rows), and each page goes
# straight to the spool on disk, so memory stays bounded.
BULK_PAGE_RECORDS = 100_000
MAX_REST_SOQL_LENGTH = 12_000


def _iso(value: datetime | None) -> str:
    return value.isoformat() + "Z" if value else ""


BEGINNING = "beginning of the org's history"


@dataclass
class ReadSummary:
    """One read of a run (the initial import, or a window): its SystemModstamp bounds as queried, and the
    range of the rows the org served for it."""

    kind: str
    read_from: datetime | None  # None: no lower bound (the initial import read the org's whole history)
    read_to: datetime
    rows_read: int
    oldest_modstamp: datetime | None
    newest_modstamp: datetime | None

    def describe(self) -> str:
        what = "initial import" if self.kind == "initial" else self.kind
        served = (f", SystemModstamps {_iso(self.oldest_modstamp)} .. {_iso(self.newest_modstamp)}"
                  if self.rows_read else "")
        return (f"{what}: {self.rows_read:,} rows read, SystemModstamp from {_iso(self.read_from) or BEGINNING} "
                f"to {_iso(self.read_to)}{served}")


@dataclass
class SyncResult:
    object_name: str
    kind: str
    method: str
    read_from: datetime | None
    read_to: datetime | None
    rows_read: int
    rows_upserted: int
    deletes: int
    api_calls: int
    seconds: float
    added_columns: list[str] = field(default_factory=list)
    backfilled_rows: int = 0
    rows_in_table: int = 0
    initial_import: str | None = None
    schema: ObjectSchema | None = None
    reads: list[ReadSummary] = field(default_factory=list)
    cursor: datetime | None = None  # the object's committed cursor after the run
    deleted_rows_in_table: int = 0  # rows kept for records deleted or purged in Salesforce

    def metadata(self) -> dict[str, Any]:
        """What the run did, with names that say which count is which (rows in the table are Dagster's
        `dagster/row_count`, set by the asset): rows read are what the org served, re-reads included."""
        return {
            "reads": "; ".join(r.describe() for r in self.reads) or "nothing to read",
            "method": self.method,
            "read_from": _iso(self.read_from) or (BEGINNING if self.reads else ""),
            "read_to": _iso(self.read_to),
            "cursor_after_run": _iso(self.cursor),
            "rows_read_this_run": self.rows_read,
            "rows_inserted_or_updated": self.rows_upserted,
            "rows_newly_marked_deleted": self.deletes,
            "rows_in_table_deleted_in_salesforce": self.deleted_rows_in_table,
            "api_calls": self.api_calls, "seconds": round(self.seconds, 2),
            "records_per_second": round(self.rows_read / self.seconds) if self.seconds else 0,
            "added_columns": ", ".join(self.added_columns) or "none",
            "backfilled_rows": self.backfilled_rows,
        }


def _server_now(client: SalesforceClient) -> datetime:
    """The org's "now" (from its Date header), so windows follow the org's clock, not ours."""

    server_now = getattr(client, "server_now", None)
    return server_now() if server_now else datetime.now(UTC)


def _spool_root(db_path: Location) -> Path:
    return work_folder(db_path) / ".sonora-spool"


def describe_schema(client: SalesforceClient, object_name: str, required: tuple[str, ...] = ()) -> ObjectSchema:
    try:
        return schema_from_describe(client.describe(object_name), required=required)
    except ApiError as err:
        if err.status == 404:
            raise InsufficientAccess(object_name) from None
        raise


def client_org(client: SalesforceClient, log: Any) -> OrgIdentity | None:
    """The org the client's credentials reach, known once it has a token (None, said once, when the token
    response had no identity URL)."""
    org_id = client.tokens.org_id
    if org_id is None:
        log.warning("The org's id is unknown (no identity URL in the token response): the warehouse's org "
                    "cannot be checked for this run")
        return None
    return OrgIdentity(org_id, safe_url(client.connection.instance_url))


def connected_org(client: SalesforceClient, db_path: Location, log: Any) -> OrgIdentity | None:
    """The org the client's credentials reach, refused at once when the warehouse mirrors another one: before
    anything is fetched, so the refusal costs no Bulk job. Every commit checks again in its own transaction (and
    the first one records the org)."""
    return _checked_org_and_state(client, as_location(db_path), None, log)[0]


def _checked_org_and_state(client: SalesforceClient, db_path: Location, object_name: str | None,
                           log: Any) -> tuple[OrgIdentity | None, ObjectState | None]:
    """`connected_org`, and the object's sync state read in the same short read (each opening of the DuckDB
    file reads its catalog: a run of 25 steps opened it 54 times, a quarter of the run's CPU)."""
    org = client_org(client, log)
    state = ObjectState(object_name) if object_name else None
    if warehouse_exists(db_path):
        with read_connection(db_path) as conn:
            if org is not None:
                check_org(conn, org, database=str(db_path))
            if object_name:
                state = read_all_states(conn, (object_name,))[object_name]
    return org, state


def _select(schema: ObjectSchema, where: str) -> str:
    return f"SELECT {', '.join(schema.field_names)} FROM {schema.object_name} WHERE {where}"


def _progress_line(object_name: str, done: int, total: int, started: float) -> str:
    """'Account: 400,000/1,000,000 rows (40%), 31,000 rows/s, about 19 s left' for the run log."""
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done / elapsed
    left = (total - done) / rate if rate and total > done else 0
    share = f" ({100 * done / total:.0f}%)" if total else ""
    return f"{object_name}: {done:,}/{total:,} rows{share}, {rate:,.0f} rows/s, about {progress.duration(left)} left"


def _bulk_jobs_left(client: SalesforceClient, log: Any) -> bool:
    """Read /limits before a Bulk job (its response also updates the API budget): when the org's
    10,000 daily Bulk query jobs are spent, REST still works and nothing waits for tomorrow."""
    jobs = client.limits().get("DailyBulkV2QueryJobs") or {}
    if jobs.get("Remaining", 1) > 0:
        return True
    log.warning(f"The org's daily Bulk API 2.0 query jobs are spent ({jobs.get('Max')} per 24 h): reading via REST")
    return False


def _fetch(client: SalesforceClient, schema: ObjectSchema, plan: ReadPlan, spool: Spool, settings: SyncSettings,
           log: Any) -> str:
    """Fetch every filter of the plan into the spool; returns the method used ('bulk', 'rest' or 'none')."""
    counts = [client.count(f"SELECT COUNT() FROM {schema.object_name} WHERE {where}") for where in plan.filters]
    total = sum(counts)
    if total == 0:
        return "none"
    # REST puts the SOQL in the URL (16,384 bytes at most with headers): very wide objects go to Bulk.
    too_wide = any(len(_select(schema, where)) > MAX_REST_SOQL_LENGTH for where in plan.filters)
    method = "bulk" if total > settings.bulk_threshold or too_wide else "rest"
    if method == "bulk" and not _bulk_jobs_left(client, log):
        method = "rest"
    log.info(f"{schema.object_name}: {total:,} rows to read via {method.upper()} "
             f"({plan.kind}, SystemModstamp {plan.read_from or 'beginning'} .. {plan.read_to})")
    started, done = time.monotonic(), 0
    progress.report(schema.object_name, 0, total)
    for where, count in zip(plan.filters, counts):
        if count == 0:
            continue
        soql = _select(schema, where)
        if method == "bulk":
            for page in client.bulk_query_pages(soql, include_deleted=True, max_records=BULK_PAGE_RECORDS):
                spool.add_csv_page(page.csv, page.number_of_records)
                done += page.number_of_records
                log.info(_progress_line(schema.object_name, done, total, started))
                progress.report(schema.object_name, done, total)
        else:
            for records in client.query_pages(soql, include_deleted=True):
                spool.add_records(records, schema)
                done += len(records)
                progress.report(schema.object_name, done, total)
    return method


def _backfill_columns(client: SalesforceClient, db_path: Location, schema: ObjectSchema, columns: list[str],
                      settings: SyncSettings, run_id: str | None, log: Any, org: OrgIdentity | None = None) -> int:
    """A new field appeared: read Id + that field for every row the mirror has, and fill it in."""
    before = client.api_calls
    wanted = ["Id", "SystemModstamp", "IsDeleted", *[c for c in columns if c in schema.field_names]]
    narrow = ObjectSchema(schema.object_name, schema.label, [f for f in schema.fields if f.name in wanted])
    spool = Spool.create(_spool_root(db_path), schema.object_name + "-backfill", narrow.field_names)
    try:
        soql = f"SELECT {', '.join(narrow.field_names)} FROM {schema.object_name}"
        for page in client.bulk_query_pages(soql, include_deleted=True):
            spool.add_csv_page(page.csv, page.number_of_records)
        with write_connection(db_path) as conn:
            updated = commit_backfill(conn, narrow, spool, [c for c in columns if c in schema.field_names],
                                      api_calls=client.api_calls - before, run_id=run_id, org=org)
        log.info(f"{schema.object_name}: back-filled {', '.join(columns)} on {updated:,} existing rows")
        return updated
    finally:
        spool.remove()


def current_state(db_path: Location, object_name: str) -> ObjectState:
    return all_states(db_path, (object_name,))[object_name]


def all_states(db_path: Location, object_names: tuple[str, ...]) -> dict[str, ObjectState]:
    """Sync state of several objects with one short read of the warehouse."""
    if not warehouse_exists(as_location(db_path)):
        return {name: ObjectState(name) for name in object_names}
    with read_connection(as_location(db_path)) as conn:
        return read_all_states(conn, object_names)


class _AfterReads(NamedTuple):
    added_now: list[str]
    pending: list[str]
    vanished: list[str]
    rows_in_table: int
    deleted_rows: int
    cursor: datetime | None


def _after_reads(conn: duckdb.DuckDBPyConnection, schema: ObjectSchema, org: OrgIdentity | None) -> _AfterReads:
    """After the reads, so a failed read leaves nothing behind: new fields become columns (queued for back-fill
    when the table already has rows) even when no window had rows to commit; then the table's figures."""
    added_now, pending = prepare_schema(conn, schema, org=org)
    vanished = vanished_columns(conn, schema)
    rows_in_table, deleted_rows = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE _sonora_deleted_at IS NOT NULL OR _sonora_purged_at IS NOT NULL) "
        f"FROM {raw_table(schema.object_name)}").fetchone()
    cursor = read_all_states(conn, (schema.object_name,))[schema.object_name].cursor_modstamp
    return _AfterReads(list(added_now), list(pending), list(vanished), rows_in_table, deleted_rows, cursor)


Window = tuple[datetime, datetime]


def sync_object(client: SalesforceClient, db_path: Location, object_name: str, settings: SyncSettings, *,
                window: Window | Callable[[ObjectState], Window | None] | None, partition_key: str | None,
                run_id: str | None, log: Any, force_initial: bool = False) -> SyncResult:
    """Sync one object. With `window`, read that window (doing the initial import first if the object
    has never been imported); without, only the initial import (or nothing if it is done). A window that
    depends on the committed state (from the cursor on) is a function of it, called with the state read
    here rather than in a read of its own."""
    started = time.monotonic()
    calls_before = client.api_calls
    db_path = as_location(db_path)
    clean_stale_spools(_spool_root(db_path))
    schema = describe_schema(client, object_name, tuple(settings.required_fields.get(object_name, ())))
    org, state = _checked_org_and_state(client, db_path, object_name, log)
    if callable(window):
        window = window(state)
    now = _server_now(client)
    results: list[tuple[ReadPlan, str, CommitResult]] = []
    plans: list[ReadPlan] = []
    if state.initial_import is None or force_initial:
        plans.append(initial_plan(object_name, now, settings))
    if window is not None:
        plans.append(window_plan(window[0], window[1], now, settings))
    plans = [plan for plan in plans if not plan.empty]
    after: _AfterReads | None = None
    for plan in plans:
        spool = Spool.create(_spool_root(db_path), object_name, schema.field_names)
        try:
            calls = client.api_calls
            method = _fetch(client, schema, plan, spool, settings, log)
            with write_connection(db_path) as conn:
                committed = commit_window(
                    conn, schema, spool, kind=plan.kind, method=method, partition_key=partition_key,
                    window_start=window[0] if window and plan.kind == "window" else None,
                    window_end=window[1] if window and plan.kind == "window" else None,
                    read_from=plan.read_from, read_to=plan.read_to, api_calls=client.api_calls - calls,
                    run_id=run_id, advance_cursor=True,
                    initial_import=settings.initial_import if plan.kind == "initial" else None, org=org)
                if plan is plans[-1]:  # every read is done: what follows them, in the same opening of the file
                    after = _after_reads(conn, schema, org)
            results.append((plan, method, committed))
        finally:
            spool.remove()
    if after is None:  # nothing was read
        with write_connection(db_path) as conn:
            after = _after_reads(conn, schema, org)
    added_now, pending, vanished, rows_in_table, deleted_rows, cursor = after
    added_now = sorted(set(added_now) | {col for _, _, c in results for col in c.added_columns})
    if added_now:
        log.info(f"{object_name}: new field(s) {', '.join(added_now)} added as column(s)")
    if vanished:
        log.warning(f"{object_name}: {', '.join(vanished)} no longer readable by the run-as user (or deleted); "
                    "the column(s) keep their last known values and are no longer updated")
    backfilled = 0
    if pending:
        backfilled = _backfill_columns(client, db_path, schema, list(pending), settings, run_id, log, org)
    return SyncResult(
        object_name=object_name,
        kind="+".join(p.kind for p, _, _ in results) or "nothing-to-read",
        method="+".join(sorted({m for _, m, _ in results})) or "none",
        # An initial import without a lower bound read from the org's beginning, whatever the window after it.
        read_from=None if any(p.read_from is None for p, _, _ in results) else min(
            (p.read_from for p, _, _ in results), default=None),
        read_to=max((p.read_to for p, _, _ in results), default=None),
        rows_read=sum(c.rows_read for _, _, c in results),
        rows_upserted=sum(c.rows_upserted for _, _, c in results),
        deletes=sum(c.deletes for _, _, c in results),
        api_calls=client.api_calls - calls_before,
        seconds=time.monotonic() - started,
        added_columns=added_now,
        backfilled_rows=backfilled,
        initial_import=settings.initial_import if any(p.kind == "initial" for p, _, _ in results) else None,
        schema=schema,
        rows_in_table=rows_in_table,
        reads=[ReadSummary(p.kind, p.read_from, p.read_to, c.rows_read, c.oldest_modstamp, c.newest_modstamp)
               for p, _, c in results],
        cursor=cursor,
        deleted_rows_in_table=deleted_rows,
    )


def reconcile_ids(client: SalesforceClient, db_path: Location, object_name: str, *, run_id: str | None,
                  log: Any, max_purge_share: float | None = None) -> int:
    """Find hard-deleted and purged records: one Id-only Bulk job, diffed against the mirror. Refused (nothing
    marked) for another org, or when more than `max_purge_share` (default: the setting's default) of the
    object's live rows would be marked."""
    if max_purge_share is None:
        max_purge_share = SyncSettings().max_purge_share
    calls = client.api_calls
    schema = describe_schema(client, object_name)
    org = connected_org(client, db_path, log)
    spool = Spool.create(_spool_root(as_location(db_path)), object_name + "-ids", ["Id"])
    try:
        for page in client.bulk_query_pages(f"SELECT Id FROM {object_name}", include_deleted=True):
            spool.add_csv_page(page.csv, page.number_of_records)
        with write_connection(as_location(db_path)) as conn:
            files = "[" + ", ".join(quote_literal(str(p)) for p in spool.csv_files) + "]"
            if spool.csv_files:
                conn.execute(f"CREATE OR REPLACE TEMP TABLE live_ids AS SELECT \"Id\" FROM read_csv({files}, "
                             "header = true, columns = {'Id': 'VARCHAR'}, auto_detect = false)")
            else:
                conn.execute('CREATE OR REPLACE TEMP TABLE live_ids ("Id" VARCHAR)')
            loaded = conn.execute("SELECT count(*) FROM live_ids").fetchone()[0]
            if loaded != spool.rows_expected:
                raise ApiError(200, "INCOMPLETE_RESULTS", f"{loaded} Ids loaded, {spool.rows_expected} announced")
            purged = commit_purges(conn, schema, "live_ids", api_calls=client.api_calls - calls, run_id=run_id,
                                   org=org, max_purge_share=max_purge_share)
        if purged:
            log.info(f"{object_name}: {purged:,} records are gone from Salesforce (hard delete or purge)")
        return purged
    finally:
        spool.remove()
