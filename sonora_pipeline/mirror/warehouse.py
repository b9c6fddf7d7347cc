"""Opening the DuckDB file for writing, one writer at a time.

DuckDB allows one read-write process per file, and a read-only process (an analyst's notebook) blocks
writers too. So every writer (a Dagster run, which also waits on its pool where the UI shows it, or the CLI)
first takes an OS file lock next to the database (`filelock`; the kernel frees it if its holder dies), then
opens DuckDB, retrying while someone else holds DuckDB's own lock. Only the short commit happens under
them: fetching from Salesforce never does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

DEFAULT_LOCK_TIMEOUT_SECONDS = 1800.0
WRITE_MEMORY_LIMIT = os.environ.get("SONORA_DUCKDB_MEMORY_LIMIT", "256MB")


class WarehouseBusy(Exception):
    """The DuckDB file stayed locked by another process for longer than the allowed wait."""


class WarehouseTooNew(ValueError):
    """The DuckDB file was written in a storage format newer than the installed DuckDB reads (a warehouse made
    before the project pinned the 1.x line analysts' tools read, or by someone's newer DuckDB)."""


def _connect(db_path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as err:
        if "version number" not in str(err):
            raise
        detail = str(err).split("\n")[0].removeprefix("IO Error: ")
        raise WarehouseTooNew(
            f"The DuckDB file {db_path} cannot be read by DuckDB {duckdb.__version__}, which this pipeline uses "
            f"({detail}). Nothing was written. Fix: move the file aside and sync into a new one "
            f"(`sonora-pipeline sync --lookback all`; the mirror is rebuilt from the org), or copy it with the "
            f"DuckDB that wrote it (`ATTACH 'old.duckdb' AS old; ATTACH 'new.duckdb' AS new "
            f"(STORAGE_VERSION 'v1.0.0'); COPY FROM DATABASE old TO new;`).") from None


def _is_lock_conflict(err: BaseException) -> bool:
    return isinstance(err, duckdb.IOException) and "lock" in str(err).lower()


@contextlib.contextmanager
def _write_lock(path: Path, timeout: float) -> Iterator[None]:
    lock = FileLock(path, mode=0o644)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise WarehouseBusy(f"another sync kept the write lock {path} for more than {timeout:.0f} s") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def write_connection(db_path: Path, *,
                     timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection, held only for the duration of the `with` block."""
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock(db_path.with_name(db_path.name + ".write.lock"), timeout):
        try:
            for attempt in Retrying(retry=retry_if_exception(_is_lock_conflict), stop=stop_after_delay(timeout),
                                    wait=wait_exponential(multiplier=0.05, max=5), reraise=True):
                with attempt:
                    conn = _connect(db_path, read_only=False)
        except duckdb.IOException as err:
            raise WarehouseBusy(
                f"the DuckDB file {db_path} stayed locked by another process for {timeout:.0f} s ({err}). "
                "Nothing was written and the sync cursor did not move; the next run applies the same window. "
                "Fix: close read-only connections to the file while syncs run (analysts: use "
                "`sonora-pipeline snapshot` for a copy to query).") from None
        # Bounded memory whatever the window's size: DuckDB spills to disk past this, and need not keep
        # insertion order (rows are keyed by Id).
        conn.execute(f"SET memory_limit = '{WRITE_MEMORY_LIMIT}'")
        conn.execute("SET preserve_insertion_order = false")
        conn.execute(f"SET temp_directory = '{db_path.parent / '.sonora-tmp'}'")
        try:
            yield conn
        finally:
            conn.close()


@contextlib.contextmanager
def read_connection(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection (for sensors and checks), retried while a writer holds the file."""
    for attempt in Retrying(retry=retry_if_exception(_is_lock_conflict), stop=stop_after_delay(120),
                            wait=wait_exponential(multiplier=0.05, max=2), reraise=True):
        with attempt:
            conn = _connect(db_path, read_only=True)
    try:
        yield conn
    finally:
        conn.close()


def publish_snapshot(db_path: Path, snapshot_path: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Path:
    """Copy the warehouse to a file analysts can keep open for as long as they like.

    DuckDB lets a read-only process block every writer, so analysts' notebooks and BI tools should open
    this copy, never the live file. The copy is taken between two commits (under the write lock, after a
    checkpoint folds the write-ahead log into the file) and replaces the old snapshot atomically.
    """
    db_path, snapshot_path = Path(db_path), Path(snapshot_path)
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = snapshot_path.with_name(snapshot_path.name + ".tmp")
    with write_connection(db_path, timeout=timeout) as conn:
        conn.execute("CHECKPOINT")
        conn.close()
        shutil.copyfile(db_path, tmp)
    os.replace(tmp, snapshot_path)
    return snapshot_path
