"""Many orgs, one database until each one's first write: a fleet's orgs with the same records read one
generated store, and an org gets a database of its own only when something writes to it.

Why: DuckDB keeps ~30 KB per column of any table holding a row, so even a 20-record org costs ~12 MB in
its own database (~17 MB with the rest); 1,000 such orgs would take 17 GB. Forked, they take ~35 KB each.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb

from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.schema import Catalog
from sonora_pipeline.localorg.store import OrgStore, quote_ident


def fork_store(template: OrgStore, catalog: Catalog, clock: OrgClock) -> OrgStore:
    """A store with `template`'s records for another org (its own catalog, clock, Ids and validation rules),
    reading the template's database until its first write, which copies the records into a database of its
    own. The template must never be written once forked (a fleet's templates are never served)."""
    forked = OrgStore.__new__(OrgStore)
    forked.catalog, forked.clock = catalog, clock
    forked.ids = template.ids.copy()
    forked.conn = template.conn
    forked.admin_user_id = template.admin_user_id
    forked.validation_rules = dict(template.validation_rules)
    forked.write_lock = _CopyOnFirstWrite(forked)
    return forked


class _CopyOnFirstWrite:
    """A forked store's `write_lock`: every write takes it first (the store's methods, the generator,
    composite's all-or-none transaction), so its first taking is where the fork gets a database of its own.
    Reentrant, as the plain lock it stands for."""

    def __init__(self, store: OrgStore):
        self._lock = threading.RLock()
        self._store: OrgStore | None = store

    def __enter__(self) -> _CopyOnFirstWrite:
        self._lock.acquire()
        if self._store is not None:
            try:
                self._store.conn = _copy_database(self._store.conn)
            except BaseException:
                self._lock.release()
                raise
            self._store = None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def _copy_database(shared: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new in-memory database with the same tables (keys included) and rows."""
    source = shared.cursor()
    own = duckdb.connect(":memory:", config={"threads": 2})
    try:
        tables = source.execute("SELECT table_name, sql FROM duckdb_tables() "
                                "WHERE database_name = current_database()").fetchall()
        for name, sql in tables:
            own.execute(sql)
            rows = source.execute(f"SELECT * FROM {quote_ident(name)}").to_arrow_table()
            if rows.num_rows:
                own.register("__rows", rows)
                own.execute(f"INSERT INTO {quote_ident(name)} SELECT * FROM __rows")
                own.unregister("__rows")
    finally:
        source.close()
    return own
