"""Formula freshness: re-read the formula fields of mirrored rows, without touching anything else.

A formula's value can change while its record's SystemModstamp stays put (one reading a parent's field,
such as Account.Owner.Name on an Opportunity, or one using TODAY()), so incremental windows on
SystemModstamp never see the change. This refresh reads Id, SystemModstamp and the formula fields of
every live record (one Bulk API 2.0 job per object that has formulas; ~100,000 records a result page) and
updates only those columns of rows already in the mirror, in one transaction that leaves the sync cursor
where it was. Objects with no formula field cost one describe call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sonora_pipeline.mirror.commit import commit_formula_refresh
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.mirror.spool import Spool, clean_stale_spools
from sonora_pipeline.mirror.tables import existing_columns
from sonora_pipeline.mirror.warehouse import (
    Location,
    as_location,
    read_connection,
    warehouse_exists,
    work_folder,
    write_connection,
)
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.describe import ObjectSchema
from sonora_pipeline.sync.engine import BULK_PAGE_RECORDS, connected_org, describe_schema


@dataclass
class FormulaRefresh:
    """What one object's refresh did and cost."""

    object_name: str
    formula_fields: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_changed: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was read (no formula field, not mirrored yet)

    def metadata(self) -> dict[str, Any]:
        return {"formula_fields": ", ".join(self.formula_fields) or "none", "rows_read": self.rows_read,
                "rows_changed": self.rows_changed, "api_calls": self.api_calls, "seconds": round(self.seconds, 2),
                "skipped": self.skipped or ""}


def _mirrored_columns(db_path: Location, schema: ObjectSchema) -> set[str] | None:
    """Lower-cased columns of the object's mirror table; None when it has no table yet."""
    if not warehouse_exists(db_path):
        return None
    with read_connection(db_path) as conn:
        columns = existing_columns(conn, table_name_for(schema.object_name))
    return {c.lower() for c in columns} or None


def refresh_formulas(client: SalesforceClient, db_path: Location, object_name: str, *, run_id: str | None,
                     log: Any) -> FormulaRefresh:
    """Refresh one object's formula columns in the mirror (see the module docstring)."""
    started = time.monotonic()
    calls_before = client.api_calls
    db_path = as_location(db_path)
    result = FormulaRefresh(object_name)
    schema = describe_schema(client, object_name)
    org = connected_org(client, db_path, log)  # another org's values never land in this warehouse
    mirrored = _mirrored_columns(db_path, schema)
    formulas = [f for f in schema.formula_fields if mirrored is not None and f.name.lower() in mirrored]
    result.formula_fields = [f.name for f in formulas]
    if mirrored is None:
        result.skipped = "not mirrored yet (the first sync imports it)"
    elif not formulas:
        # A formula new since the last sync has no column yet: the next sync adds and back-fills it.
        result.skipped = "no formula field"
    if result.skipped:
        result.api_calls = client.api_calls - calls_before
        result.seconds = time.monotonic() - started
        return result
    wanted = {"Id", "SystemModstamp", *result.formula_fields}
    narrow = ObjectSchema(schema.object_name, schema.label, [f for f in schema.fields if f.name in wanted])
    spool_root = work_folder(db_path) / ".sonora-spool"
    clean_stale_spools(spool_root)
    spool = Spool.create(spool_root, object_name + "-formulas", narrow.field_names)
    try:
        # Rows committed by a sync after this instant keep what the sync wrote (it may be newer than our read).
        read_started = datetime.now(UTC).replace(tzinfo=None)
        soql = f"SELECT {', '.join(narrow.field_names)} FROM {object_name}"
        # Live records only: a deleted row keeps its last known values, as the sync keeps them.
        for page in client.bulk_query_pages(soql, include_deleted=False, max_records=BULK_PAGE_RECORDS):
            spool.add_csv_page(page.csv, page.number_of_records)
        result.rows_read = spool.rows_expected
        with write_connection(db_path) as conn:
            result.rows_changed = commit_formula_refresh(
                conn, narrow, spool, result.formula_fields, read_started=read_started,
                api_calls=client.api_calls - calls_before, run_id=run_id, org=org)
    finally:
        spool.remove()
    result.api_calls = client.api_calls - calls_before
    result.seconds = time.monotonic() - started
    log.info(f"{object_name}: formula refresh of {', '.join(result.formula_fields)}: {result.rows_read:,} rows "
             f"read, {result.rows_changed:,} changed, {result.api_calls} API calls in {result.seconds:.1f} s")
    return result


def refresh_all_formulas(client: SalesforceClient, db_path: Location, object_names: tuple[str, ...], *,
                         run_id: str | None, log: Any) -> list[FormulaRefresh]:
    """Refresh every object in turn; each object's update is its own transaction."""
    return [refresh_formulas(client, db_path, name, run_id=run_id, log=log) for name in object_names]
