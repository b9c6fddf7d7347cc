"""Deleting a removed org's share of the lake: its metadata schema in the PostgreSQL catalog, then its data folder.

Why this order: a catalog naming Parquet files that are gone is a broken warehouse, while Parquet files no catalog
names are only orphans. So the schema goes first (one `DROP SCHEMA ... CASCADE`, all or nothing in PostgreSQL),
the files after, and each step takes "already gone" as done: running the purge again finishes an interrupted one.
The schema is dropped through DuckDB's own postgres extension, the one the lake already loads (no driver of ours),
and only when it really holds a DuckLake catalog, so a same-named schema of something else is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import duckdb

from sonora_pipeline.mirror.lake import LakeLocation, LakeUnavailable, extension_directory, redact
from sonora_pipeline.settings.lake import PASSWORD_FIX
from sonora_pipeline.settings.registry import Registry, org_name_problem

# PostgreSQL's own schemas and the one every database shares: never an org's to drop, whatever its name.
SHARED_SCHEMAS = frozenset({"public", "information_schema", "pg_catalog", "pg_toast"})
_CATALOG_ALIAS = "sonora_catalog"


class LakePurgeRefused(LakeUnavailable):
    """The org's lake data cannot be purged as asked (names what and the fix); nothing was deleted."""


@dataclass(frozen=True)
class OrgLakeData:
    """What of one org is in the lake: its catalog schema (tables, last commit) and its data folder."""

    location: LakeLocation
    schema_exists: bool
    tables: int = 0
    last_commit: str | None = None     # the newest snapshot's time, as PostgreSQL prints it
    folder: Path | None = None         # the org's local data folder, when it exists
    files: int = 0
    size: int = 0

    @property
    def remote(self) -> bool:
        """Data under object storage: this command cannot list or delete it (the storage's own tool does)."""
        return "://" in self.location.data_path

    @property
    def empty(self) -> bool:
        return not self.schema_exists and self.folder is None


def quote_pg_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _catalog_connection(location: LakeLocation, work: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the catalog database attached through the postgres extension (extension links in
    `work`, a temporary folder: the org's own work folder is about to go)."""
    folder = extension_directory(work)
    db = duckdb.connect(config={"extension_directory": str(folder), "autoinstall_known_extensions": False})
    try:
        db.execute("LOAD postgres")
        db.execute(f"ATTACH '{location.catalog.replace(chr(39), chr(39) * 2)}' AS {_CATALOG_ALIAS} (TYPE postgres)")
    except duckdb.Error as err:
        db.close()
        detail = redact(str(err).split("\n")[0])
        if "password" in detail.lower() or "authentication" in detail.lower():
            fix = f"give libpq the password outside the setting: {PASSWORD_FIX.split(': ', 1)[-1]}"
        else:
            fix = (f"check {location.catalog_setting} (dbname, host, port, user) and that PostgreSQL is running and "
                   "reachable from this machine, then purge again")
        raise LakeUnavailable(f"the DuckLake catalog {location.catalog} (set by {location.catalog_setting}) cannot "
                              f"be opened ({detail}). Fix: {fix}.") from None
    return db


def _schema_facts(db: duckdb.DuckDBPyConnection, schema: str) -> tuple[bool, int, str | None]:
    """(exists, live tables, last commit) of the org's metadata schema; refuses a schema that is not DuckLake's."""
    tables = {name for (name,) in db.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?",
        [_CATALOG_ALIAS, schema]).fetchall()}
    exists = bool(db.execute("SELECT count(*) FROM duckdb_schemas() WHERE database_name = ? AND schema_name = ?",
                             [_CATALOG_ALIAS, schema]).fetchone()[0])
    if not exists:
        return False, 0, None
    if "ducklake_metadata" not in tables:
        raise LakePurgeRefused(f"the schema {schema!r} in the catalog database holds no DuckLake catalog (no "
                               "ducklake_metadata table), so it is not this org's lake data. Fix: if it is "
                               "yours to remove, drop it by hand.")
    qualified = f"{_CATALOG_ALIAS}.{quote_pg_identifier(schema)}"
    live = db.execute(f"SELECT count(*) FROM {qualified}.ducklake_table WHERE end_snapshot IS NULL").fetchone()[0]
    last = db.execute(f"SELECT max(snapshot_time) FROM {qualified}.ducklake_snapshot").fetchone()[0]
    return True, live, last.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if last else None


def _local_folder(location: LakeLocation) -> Path | None:
    """The org's data folder when it exists; refuses one that is not a real folder directly under the data path."""
    if "://" in location.data_path:
        return None
    folder = Path(location.data_path.rstrip("/"))
    if not os.path.lexists(folder):
        return None
    if folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != folder.parent.resolve():
        raise LakePurgeRefused(f"{folder} is not a folder directly under the lake's data path {folder.parent} (a "
                               "symlink or a file), so it is not an org's data folder this command may delete. Fix: "
                               "remove it by hand if it is yours.")
    return folder


def files_and_bytes(folder: Path) -> tuple[int, int]:
    """(files, bytes) under `folder`, not following symlinks."""
    files = size = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                continue
    return files, size


def _check(location: LakeLocation) -> None:
    schema = location.metadata_schema
    if schema in SHARED_SCHEMAS or org_name_problem(schema):
        raise LakePurgeRefused(f"the schema {schema!r} is not one org's own (PostgreSQL or other users share it). "
                               "Fix: remove its ducklake_* tables by hand if they are yours.")


def org_lake_data(location: LakeLocation) -> OrgLakeData:
    """What the org has in the lake, read from the catalog (LakeUnavailable when it cannot be reached)."""
    _check(location)
    folder = _local_folder(location)
    with tempfile.TemporaryDirectory(prefix="sonora-purge-") as work:
        db = _catalog_connection(location, Path(work))
        try:
            exists, tables, last = _schema_facts(db, location.metadata_schema)
        finally:
            db.close()
    files, size = files_and_bytes(folder) if folder else (0, 0)
    return OrgLakeData(location, exists, tables, last, folder, files, size)


def drop_org_catalog(location: LakeLocation) -> bool:
    """Drop the org's metadata schema (its whole DuckLake catalog: tables, snapshots, inlined rows); False when it
    was already gone. Nothing else in the catalog database is touched."""
    _check(location)
    with tempfile.TemporaryDirectory(prefix="sonora-purge-") as work:
        db = _catalog_connection(location, Path(work))
        try:
            exists, _tables, _last = _schema_facts(db, location.metadata_schema)
            if exists:
                db.execute(f"CALL postgres_execute('{_CATALOG_ALIAS}', ?)",
                           [f"DROP SCHEMA {quote_pg_identifier(location.metadata_schema)} CASCADE"])
        finally:
            db.close()
    return exists


def purge_org_lake(location: LakeLocation) -> OrgLakeData:
    """Delete the org's catalog schema, then its local data folder (what was there is returned). Interrupted, the
    state left is a folder of orphan Parquet files, and calling this again finishes the job."""
    found = org_lake_data(location)
    drop_org_catalog(location)
    if found.folder is not None:
        shutil.rmtree(found.folder)
    return found


def unregistered_data_folders(registry: Registry) -> list[str]:
    """Org data folders under the registry's local lake data path whose org is no longer registered (no catalog
    connection: `orgs list` stays cheap; a schema without a folder shows up at `orgs purge NAME`)."""
    if registry.ducklake is None or not registry.ducklake.is_local:
        return []
    try:
        children = sorted(Path(registry.ducklake.data_path).iterdir())
    except OSError:
        return []
    return [child.name for child in children if org_name_problem(child.name) is None and child.is_dir()
            and not child.is_symlink() and not registry.is_registered(child.name)]
