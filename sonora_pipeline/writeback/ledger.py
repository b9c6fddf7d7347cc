"""The write-back ledger `sonora.writeback_ledger`: the memory that makes a push cost nothing when nothing changed.

One row per (account, field) attempt: the value (as text), when the model computed it, when it was attempted,
the result (`success`, `error`, `skipped_conflict`, `dry_run`), the org's status code and message, and the run.
The latest `success` row of an (account, field) is "what was last pushed". A `sending` row is written before a
batch goes out; while it is still the latest row of an (account, field), the run that wrote it died before
recording the outcome, and the next run waits for that request to land before reading the org back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from sonora_pipeline.mirror.commit import transaction
from sonora_pipeline.mirror.lake import retry_conflicts
from sonora_pipeline.mirror.warehouse import Location, write_connection
from sonora_pipeline.model.build import document
from sonora_pipeline.model.statements import MODEL_SCHEMA

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


@dataclass(frozen=True)
class LedgerRow:
    """One attempt at one (account, field), as the ledger keeps it (the run and the time are added on append)."""

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
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


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


@retry_conflicts  # a shared DuckLake warehouse: a lost commit race appends again, whole
def record(conn: duckdb.DuckDBPyConnection, rows: Iterable[LedgerRow], *, run_id: str,
           attempted_at: datetime | None = None) -> int:
    """Append ledger rows in one transaction."""
    rows = list(rows)
    if not rows:
        return 0
    attempted_at = attempted_at or datetime.now(UTC).replace(tzinfo=None)
    with transaction(conn):
        _append(conn, rows, run_id, attempted_at)
    return len(rows)


def _append(conn: duckdb.DuckDBPyConnection, rows: list[LedgerRow], run_id: str, attempted_at: datetime) -> None:
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


@dataclass(frozen=True)
class LedgerWriter:
    """A run's appends to the ledger: each call is one short transaction of its own, so no DuckDB connection
    (nor the warehouse's write lock) is held while Salesforce is being called."""

    db_path: Location
    run_id: str

    def append(self, rows: list[LedgerRow]) -> None:
        if rows:
            with write_connection(self.db_path) as conn:
                record(conn, rows, run_id=self.run_id)
