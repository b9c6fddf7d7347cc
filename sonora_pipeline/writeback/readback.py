"""The org's current state of the planned Accounts, read just before writing, and "does it already hold this?".

The mirror may be hours old, so the run reads the accounts back first: deleted ones are not written, someone
else's newer edit is not overwritten, and a value already in the org (a re-run after a crash between sending and
recording) is recorded without being sent again. REST queryAll per 200 Ids, or one Bulk query for large plans.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.datetimes import parse_datetime
from sonora_pipeline.salesforce.rest import MAX_COLLECTION_RECORDS
from sonora_pipeline.salesforce.soql import soql_string_list
from sonora_pipeline.writeback.targets import TARGET_OBJECT, Target

SYSTEM_FIELDS = ("Id", "IsDeleted", "LastModifiedDate", "LastModifiedById")


@dataclass
class OrgRecord:
    """One Account as the org holds it now: enough to tell deleted, changed by someone else, or already written."""

    deleted: bool
    modified_at: datetime | None
    modified_by: str | None
    values: dict[str, Any]


def timestamp_or_none(value: Any) -> datetime | None:
    """A Salesforce or DuckDB timestamp as naive UTC to the millisecond, so the org's and the mirror's compare;
    an empty value (a field never set) as None."""
    return None if value is None or value == "" else parse_datetime(value)


def same_value(target: Target, org_value: Any, wire: Any) -> bool:
    """Does the org's field already hold the value we would send (as the org would store it)?"""
    if org_value in (None, ""):
        return wire is None or (wire == "" and target.type in ("string", "textarea"))
    if wire is None:
        return False
    if target.type in ("double", "percent", "currency", "int", "long"):
        try:
            return round(float(org_value), target.scale) == round(float(wire), target.scale)
        except (TypeError, ValueError):
            return False
    if target.type == "boolean":
        return str(org_value).lower() == str(wire).lower()
    if target.type == "date":
        return str(org_value)[:10] == str(wire)[:10]
    if target.type == "datetime":
        return timestamp_or_none(org_value) == timestamp_or_none(wire)
    return str(org_value) == str(wire)


def read_org(client: SalesforceClient, ids: list[str], fields: list[str], *, use_bulk: bool
             ) -> dict[str, OrgRecord]:
    """The org's current state of these Accounts (queryAll: deleted ones come back with IsDeleted)."""
    wanted = set(ids)
    select = ", ".join(list(SYSTEM_FIELDS) + [f for f in fields if f not in SYSTEM_FIELDS])
    out: dict[str, OrgRecord] = {}

    def keep(row: dict[str, Any]) -> None:
        rid = row.get("Id")
        if rid not in wanted:
            return
        deleted = row.get("IsDeleted")
        out[rid] = OrgRecord(deleted=deleted is True or str(deleted).lower() == "true",
                             modified_at=timestamp_or_none(row.get("LastModifiedDate")),
                             modified_by=row.get("LastModifiedById") or None,
                             values={f: (None if row.get(f) == "" else row.get(f)) for f in fields})

    if use_bulk:
        for page in client.bulk_query_pages(f"SELECT {select} FROM {TARGET_OBJECT}", include_deleted=True,
                                            max_records=100_000):
            text = io.TextIOWrapper(io.BytesIO(page.csv), encoding="utf-8", newline="")
            for row in csv.DictReader(text):
                keep(row)
        return out
    for start in range(0, len(ids), MAX_COLLECTION_RECORDS):
        chunk = ids[start:start + MAX_COLLECTION_RECORDS]
        soql = f"SELECT {select} FROM {TARGET_OBJECT} WHERE Id IN ({soql_string_list(chunk)})"
        for records in client.query_pages(soql, include_deleted=True):
            for row in records:
                keep(row)
    return out
