"""Opening the DuckDB file for writing, one writer at a time.

DuckDB allows one read-write process per file, and a read-only process (an analyst's notebook) blocks
writers too. So every writer (a Dagster run, which also waits on its pool where the UI shows it, or the CLI)
first takes an OS file lock next to the database (`filelock`; the kernel frees it if its holder dies), then
opens DuckDB, retrying while someone else holds DuckDB's own lock. Only the short commit happens under
them: fetching from Salesforce never does.

A `LakeLocation` (mirror/lake.py) instead of a path selects the shared DuckLake warehouse: no file lock there
(optimistic concurrency; a lost race is retried by the commit), readers never block writers, and the same SQL
runs on it. `Location` is either; `warehouse_exists`, `work_folder` and `as_location` hide the difference.
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

from sonora_pipeline.mirror import lake
from sonora_pipeline.mirror.lake import LakeLocation

DEFAULT_LOCK_TIMEOUT_SECONDS = 1800.0
WRITE_MEMORY_LIMIT = os.environ.get("SONORA_DUCKDB_MEMORY_LIMIT", "256MB")
Location = Path | LakeLocation


def as_location(location: Location | str) -> Location:
    """A lake as it is; anything else is the DuckDB file's path."""
    return location if isinstance(location, LakeLocation) else Path(location)


def warehouse_exists(location: Location) -> bool:
    """Whether a first commit has created the warehouse (the file, or the org's catalog)."""
    if isinstance(location, LakeLocation):
        return lake.lake_exists(location)
    return Path(location).exists()


def work_folder(location: Location) -> Path:
    """The local folder for the warehouse's spool and temporary files: the file's folder, or the lake's."""
    return location.work_dir if isinstance(location, LakeLocation) else Path(location).parent


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


def _bounded(conn: duckdb.DuckDBPyConnection, folder: Path | None) -> None:
    # Bounded memory whatever the window's size: DuckDB spills to disk past this, and need not keep
    # insertion order (rows are keyed by Id).
    conn.execute(f"SET memory_limit = '{WRITE_MEMORY_LIMIT}'")
    conn.execute("SET preserve_insertion_order = false")
    if folder is not None:  # a lake's shared DuckDB has its spill folder from the start
        conn.execute(f"SET temp_directory = '{folder / '.sonora-tmp'}'")


@contextlib.contextmanager
def write_connection(db_path: Location, *,
                     timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection, held only for the duration of the `with` block."""
    if isinstance(db_path, LakeLocation):
        db_path.work_dir.mkdir(parents=True, exist_ok=True)
        conn = lake.connect(db_path, read_only=False)
        _bounded(conn, None)
        try:
            yield conn
        finally:
            conn.close()
        return
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
        _bounded(conn, db_path.parent)
        try:
            yield conn
        finally:
            conn.close()


@contextlib.contextmanager
def read_connection(db_path: Location) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection (for sensors and checks), retried while a writer holds the file (a lake
    never blocks a reader)."""
    if isinstance(db_path, LakeLocation):
        conn = lake.connect(db_path, read_only=True)
        try:
            yield conn
        finally:
            conn.close()
        return
    for attempt in Retrying(retry=retry_if_exception(_is_lock_conflict), stop=stop_after_delay(120),
                            wait=wait_exponential(multiplier=0.05, max=2), reraise=True):
        with attempt:
            conn = _connect(db_path, read_only=True)
    try:
        yield conn
    finally:
        conn.close()


def publish_snapshot(db_path: Location, snapshot_path: Path, *,
                     timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Path:
    """Copy the warehouse to a file analysts can keep open for as long as they like.

    DuckDB lets a read-only process block every writer, so analysts' notebooks and BI tools should open
    this copy, never the live file. The copy is taken between two commits (under the write lock, after a
    checkpoint folds the write-ahead log into the file) and replaces the old snapshot atomically.
    """
    snapshot_path = Path(snapshot_path)
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = snapshot_path.with_name(snapshot_path.name + ".tmp")
    if isinstance(db_path, LakeLocation):
        _copy_lake(db_path, tmp)
        os.replace(tmp, snapshot_path)
        return snapshot_path
    db_path = Path(db_path)
    with write_connection(db_path, timeout=timeout) as conn:
        conn.execute("CHECKPOINT")
        conn.close()
        shutil.copyfile(db_path, tmp)
    os.replace(tmp, snapshot_path)
    return snapshot_path


def _copy_lake(location: LakeLocation, target: Path) -> None:
    """The org's catalog as one DuckDB file, at one DuckLake snapshot: a read-only attach reads one snapshot per
    transaction, so the copy is consistent while writers go on committing (analysts of a lake need no copy:
    they attach it read-only; this is for those who want a file)."""
    target.unlink(missing_ok=True)
    with read_connection(location) as conn:
        conn.execute(f"ATTACH '{str(target).replace(chr(39), chr(39) * 2)}' AS sonora_snapshot")
        lake_name = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute("BEGIN TRANSACTION")
        conn.execute(f"COPY FROM DATABASE {lake_name} TO sonora_snapshot")
        conn.execute("COMMIT")
        conn.execute("DETACH sonora_snapshot")
