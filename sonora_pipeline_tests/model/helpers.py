"""Shared by the model tests: a local org mirrored into a DuckDB file, and the org's own rows to compare with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.conftest import running_org
from sonora_pipeline_tests.sync.helpers import client_for, log


def sync_into(org: LocalOrg, db: Path, objects) -> None:
    """Mirror `objects` of `org` into `db` (full import), as the sync does."""
    client = client_for(org)
    sync = SyncSettings(initial_import="all", lag_seconds=5)
    for name in objects:
        sync_object(client, db, name, sync, window=None, partition_key=None, run_id="model-test", log=log)


@contextlib.contextmanager
def mirrored_org(state_dir: Path, db: Path, *, records: int, seed: int, objects=None, **options) -> Iterator[LocalOrg]:
    """A local org serving for the `with` block, its standard objects (or `objects`) mirrored into `db`."""
    with running_org(state_dir, records=records, seed=seed, **options) as org:
        org.advance_clock(8)
        sync_into(org, db, objects or SyncSettings().objects)
        yield org


def org_rows(org: LocalOrg, object_name: str) -> list[dict]:
    """Every row of one object in the org's own store (deleted ones included: check IsDeleted)."""
    cur = org.store.cursor()
    try:
        result = cur.execute(f'SELECT * FROM "{object_name}"')
        names = [d[0] for d in result.description]
        return [dict(zip(names, r)) for r in result.fetchall()]
    finally:
        cur.close()


def query(db: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()
