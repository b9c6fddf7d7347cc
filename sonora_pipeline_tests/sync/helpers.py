"""Comparing the mirror with the org, computed from the org's own records (not from the sync's code)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.mirror.lake import LakeLocation
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.mirror.warehouse import read_connection
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import OrgConnection

OBJECTS = ("Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User")
log = logging.getLogger("sonora.tests")


def connection_for(org: LocalOrg) -> OrgConnection:
    c = org.credentials
    return OrgConnection(instance_url=c.instance_url, consumer_key=c.consumer_key,
                         consumer_secret=c.consumer_secret, ca_bundle=c.ca_bundle)


def client_for(org: LocalOrg, **kwargs) -> SalesforceClient:
    return SalesforceClient(connection_for(org), log=log, **kwargs)


def org_fields(org: LocalOrg, object_name: str) -> list[str]:
    obj = org.catalog.object(object_name)
    return [f.name for f in org.catalog.readable_fields(obj) if not f.is_compound]


def _org_column(org: LocalOrg, object_name: str, name: str) -> str:
    """A stored column, or for a formula the org computes when read, its value as of the org's today."""
    f = org.catalog.object(object_name).field_named(name)
    if f.query_formula is None:
        return f'o."{name}"'
    return f'CAST(({f.query_formula("o", org.clock.now().date())}) AS {f.duckdb_type}) AS "{name}"'


def org_rows(org: LocalOrg, object_name: str) -> dict[str, dict]:
    fields = org_fields(org, object_name)
    columns = ", ".join(_org_column(org, object_name, f) for f in fields)
    cur = org.store.cursor()
    try:
        rows = cur.execute(f'SELECT {columns} FROM "{object_name}" AS o').fetchall()
    finally:
        cur.close()
    return {r[0]: dict(zip(fields, r)) for r in rows}


def mirror_rows(db: Path | LakeLocation, object_name: str, fields: list[str]) -> dict[str, dict]:
    with read_connection(db) as conn:
        cols = ", ".join(f'"{f}"' for f in fields)
        extra = ', _sonora_deleted_at, _sonora_purged_at'
        rows = conn.execute(f'SELECT {cols}{extra} FROM salesforce."{table_name_for(object_name)}"').fetchall()
    return {r[0]: dict(zip(fields + ["_sonora_deleted_at", "_sonora_purged_at"], r)) for r in rows}


def differences(org: LocalOrg, db: Path, object_name: str) -> list[str]:
    """Every way the mirror differs from the org for one object (empty when they are equal).

    Live records must match field by field; records in the recycle bin must be present and marked deleted;
    records gone from the org (hard delete) must be marked purged."""
    fields = org_fields(org, object_name)
    expected = org_rows(org, object_name)
    actual = mirror_rows(db, object_name, fields)
    problems = []
    for rid, row in expected.items():
        got = actual.get(rid)
        if got is None:
            problems.append(f"{object_name} {rid} missing")
            continue
        if row.get("IsDeleted"):
            if not got["IsDeleted"] or got["_sonora_deleted_at"] is None:
                problems.append(f"{object_name} {rid} deleted in org, not marked in mirror")
            continue
        for f in fields:
            if got[f] != row[f]:
                problems.append(f"{object_name} {rid}.{f}: org {row[f]!r} != mirror {got[f]!r}")
    for rid, got in actual.items():
        if rid not in expected and got["_sonora_purged_at"] is None:
            problems.append(f"{object_name} {rid} gone from org, not marked purged in mirror")
    return problems


def sync_command(org: LocalOrg, db: Path, settings_file: Path) -> tuple[list[str], dict[str, str]]:
    """`sonora-pipeline sync` against `org` into `db`, as a subprocess command and its environment."""
    env = {**os.environ, **org.credentials.as_environment(), "SONORA_DUCKDB_PATH": str(db), "SONORA_CONFIG": str(settings_file)}
    env.pop("DAGSTER_HOME", None)
    return [sys.executable, "-m", "sonora_pipeline.cli", "sync", "--lookback", "all", "--quiet"], env
