"""What the write-back would write: model values that differ from what was last pushed, and the ledger.

The ledger `sonora.writeback_ledger` has one row per (account, field) attempt: the value (as text), when the
model computed it, when it was attempted, the result (`success`, `error`, `skipped_conflict`, `dry_run`), the
org's status code and message, and the run. A `sending` row is written before a batch goes out; when it is
still the latest row of an (account, field), the run that wrote it died before recording the outcome. The latest `success` row of an (account, field) is "what was last
pushed"; a value equal to it costs nothing (no API call), anything else (new, changed, previously failed or
skipped) is planned again.

Only customers (rows of `sonora.customers`) that the mirror does not mark deleted or purged are planned, and
only the fields named in `writeback.mappings`. Reading the plan makes no API call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable

import duckdb
import pyarrow as pa

from sonora_pipeline.model.build import document
from sonora_pipeline.mirror.names import quote_identifier
from sonora_pipeline.model.statements import MODEL_SCHEMA
from sonora_pipeline.settings import Settings, SettingsError, WritebackMapping

LEDGER = f"{MODEL_SCHEMA}.writeback_ledger"
LEDGER_DDL = f"""
    CREATE TABLE IF NOT EXISTS {LEDGER} (
        account_id VARCHAR, field VARCHAR, value VARCHAR, computed_at TIMESTAMP, attempted_at TIMESTAMP,
        result VARCHAR, status_code VARCHAR, message VARCHAR, run_id VARCHAR
    )"""
_LEDGER_SCHEMA = pa.schema([("account_id", pa.string()), ("field", pa.string()), ("value", pa.string()),
                            ("computed_at", pa.timestamp("us")), ("attempted_at", pa.timestamp("us")),
                            ("result", pa.string()), ("status_code", pa.string()), ("message", pa.string()),
                            ("run_id", pa.string())])


@dataclass
class Planned:
    """One value to write: `value` is its ledger text, `wire` what is sent (None clears the field)."""

    account_id: str
    field: str
    mapping_index: int
    column: str
    value: str | None
    wire: Any
    computed_at: datetime
    last_pushed: str | None
    mirror_modified_at: datetime | None
    mirror_modified_by: str | None


@dataclass
class Plan:
    changes: list[Planned] = field(default_factory=list)
    unchanged: int = 0
    column_types: dict[int, str] = field(default_factory=dict)  # mapping index -> DuckDB type of its column
    last_unfinished_send: datetime | None = None  # latest `sending` row of a planned value with no outcome after it

    @property
    def accounts(self) -> list[str]:
        return sorted({p.account_id for p in self.changes})


@dataclass(frozen=True)
class LedgerRow:
    account_id: str
    field: str
    value: str | None
    computed_at: datetime | None
    result: str
    status_code: str | None = None
    message: str | None = None


def ensure_ledger(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MODEL_SCHEMA}")
    conn.execute(LEDGER_DDL)
    document(conn, "writeback_ledger")  # its comments live with the model's (model/docs.py)


def canonical(value: Any) -> str | None:
    """The ledger's text for a model value: stable, so an unchanged value compares equal run after run."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    try:
        from decimal import Decimal
        if isinstance(value, Decimal):
            return canonical(float(value))
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _wire(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    from decimal import Decimal
    if isinstance(value, Decimal):
        return float(value)
    return value


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    return dict(conn.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? "
                             "AND table_name = ? AND database_name = current_database()", [schema, table]).fetchall())


def _id_column(table: str) -> str:
    return "external_id" if table == "customers" else "customer_id"


def check_columns(conn: duckdb.DuckDBPyConnection, settings: Settings) -> dict[int, str]:
    """{mapping index: DuckDB type} of each mapped model column; a SettingsError (with the file's line) when a
    table or column is not there."""
    problems = []
    types: dict[int, str] = {}
    for i, mapping in enumerate(settings.writeback.mappings):
        cols = _columns(conn, MODEL_SCHEMA, mapping.table)
        where = settings.locate(("writeback", "mappings", i, "column"))
        if not cols:
            problems.append(f"{where}: the model table {MODEL_SCHEMA}.{mapping.table} is not built yet; materialize the "
                            "customer model first (customer_model_job)")
        elif mapping.model_column not in cols:
            import difflib
            close = difflib.get_close_matches(mapping.model_column, list(cols), n=1, cutoff=0.6)
            hint = f" (did you mean '{mapping.table}.{close[0]}'?)" if close else ""
            problems.append(f"{where}: {MODEL_SCHEMA}.{mapping.table} has no column '{mapping.model_column}'{hint}; its "
                            f"columns are: {', '.join(cols)}")
        elif _id_column(mapping.table) not in cols:
            problems.append(f"{where}: {MODEL_SCHEMA}.{mapping.table} has no {_id_column(mapping.table)} column to find "
                            "the Account by")
        else:
            types[i] = cols[mapping.model_column]
    if problems:
        raise SettingsError(*problems)
    return types


def _map_value(mapping: WritebackMapping, value: Any) -> Any:
    if mapping.values is None:
        return value
    return None if value is None else mapping.values.get(canonical(value) or "")


def ledger_state(conn: duckdb.DuckDBPyConnection) -> tuple[dict[tuple[str, str], str | None],
                                                           dict[tuple[str, str], datetime]]:
    """One pass over the ledger: {(account, field): value of its latest successful write} (the value may be
    None: a cleared field), and {(account, field): when it was sent} for values whose latest row is
    `sending` (the run that sent it died before recording the outcome)."""
    rows = conn.execute(f"""
        SELECT account_id, field, value, result, attempted_at,
               row_number() OVER (PARTITION BY account_id, field ORDER BY attempted_at DESC) AS nth,
               row_number() OVER (PARTITION BY account_id, field, result = 'success'
                                  ORDER BY attempted_at DESC) AS nth_of_kind
        FROM {LEDGER}
        QUALIFY nth = 1 OR (result = 'success' AND nth_of_kind = 1)""").fetchall()
    pushed = {(a, f): v for a, f, v, result, _, _, kind in rows if result == "success" and kind == 1}
    unfinished = {(a, f): at for a, f, _, result, at, nth, _ in rows if result == "sending" and nth == 1}
    return pushed, unfinished


def compute_plan(conn: duckdb.DuckDBPyConnection, settings: Settings, *, now: datetime | None = None) -> Plan:
    """The values to write: every mapped model value of a live customer that differs from what was last pushed.
    A value never pushed counts as empty, so an empty model value is not written until something was."""
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    ensure_ledger(conn)
    types = check_columns(conn, settings)
    pushed, unfinished = ledger_state(conn)
    plan = Plan(column_types=types)
    mirror = _columns(conn, "salesforce", "account")
    if not mirror:
        raise SettingsError("the mirror has no salesforce.account table yet; sync Account first")
    purged = '"_sonora_purged_at" IS NULL' if "_sonora_purged_at" in mirror else "true"
    by = 'a."LastModifiedById"' if "LastModifiedById" in mirror else "NULL"
    for i, mapping in enumerate(settings.writeback.mappings):
        cols = _columns(conn, MODEL_SCHEMA, mapping.table)
        computed = "t.computed_at" if "computed_at" in cols else "NULL"
        idc = _id_column(mapping.table)
        rows = conn.execute(f"""
            SELECT t.{quote_identifier(idc)}, t.{quote_identifier(mapping.model_column)}, {computed}, a."LastModifiedDate", {by}
            FROM {MODEL_SCHEMA}.{quote_identifier(mapping.table)} t
            JOIN {MODEL_SCHEMA}.customers c ON c.external_id = t.{quote_identifier(idc)}
            JOIN salesforce.account a ON a."Id" = t.{quote_identifier(idc)}
            WHERE NOT coalesce(a."IsDeleted", false) AND {purged}""").fetchall()
        for account_id, raw, computed_at, modified_at, modified_by in rows:
            value = _map_value(mapping, raw)
            text = canonical(value)
            before = pushed.get((account_id, mapping.field))
            if text == before:
                plan.unchanged += 1
                continue
            sent_at = unfinished.get((account_id, mapping.field))
            if sent_at is not None and (plan.last_unfinished_send is None or sent_at > plan.last_unfinished_send):
                plan.last_unfinished_send = sent_at
            plan.changes.append(Planned(
                account_id=account_id, field=mapping.field, mapping_index=i, column=mapping.column, value=text,
                wire=_wire(value) if text is not None else None, computed_at=computed_at or now,
                last_pushed=before, mirror_modified_at=modified_at, mirror_modified_by=modified_by))
    return plan


def record(conn: duckdb.DuckDBPyConnection, rows: Iterable[LedgerRow], *, run_id: str,
           attempted_at: datetime | None = None) -> int:
    """Append ledger rows in one transaction."""
    rows = list(rows)
    if not rows:
        return 0
    attempted_at = attempted_at or datetime.now(timezone.utc).replace(tzinfo=None)
    ensure_ledger(conn)
    table = pa.table({
        "account_id": [r.account_id for r in rows], "field": [r.field for r in rows],
        "value": [r.value for r in rows], "computed_at": [r.computed_at for r in rows],
        "attempted_at": [attempted_at] * len(rows), "result": [r.result for r in rows],
        "status_code": [r.status_code for r in rows], "message": [r.message for r in rows],
        "run_id": [run_id] * len(rows)}, schema=_LEDGER_SCHEMA)
    conn.register("_writeback_rows", table)
    try:
        conn.execute(f"INSERT INTO {LEDGER} SELECT * FROM _writeback_rows")
    finally:
        conn.unregister("_writeback_rows")
    return len(rows)
