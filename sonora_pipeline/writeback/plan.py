"""What the write-back would write: model values that differ from what was last pushed (the ledger's memory).

Only customers (rows of `sonora.customers`) that the mirror does not mark deleted or purged are planned, and
only the fields named in `writeback.mappings`; a value equal to the last push costs nothing. Computing the plan
reads DuckDB only, so a run with nothing to write makes no API call.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from sonora_pipeline.mirror.names import quote_identifier
from sonora_pipeline.model.statements import MODEL_SCHEMA
from sonora_pipeline.settings import Settings, SettingsError, WritebackMapping
from sonora_pipeline.writeback.ledger import canonical, ensure_ledger, ledger_state


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
    """Everything a run decides from DuckDB alone, before it asks the org anything."""

    changes: list[Planned] = field(default_factory=list)
    unchanged: int = 0
    column_types: dict[int, str] = field(default_factory=dict)  # mapping index -> DuckDB type of its column
    last_unfinished_send: datetime | None = None  # latest `sending` row of a planned value with no outcome after it

    @property
    def accounts(self) -> list[str]:
        return sorted({p.account_id for p in self.changes})


def _wire(value: Any) -> Any:
    """The JSON value Salesforce takes for a model value (datetimes as ISO text, decimals as numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
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


def compute_plan(conn: duckdb.DuckDBPyConnection, settings: Settings, *, now: datetime | None = None) -> Plan:
    """The values to write: every mapped model value of a live customer that differs from what was last pushed.
    A value never pushed counts as empty, so an empty model value is not written until something was."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
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
