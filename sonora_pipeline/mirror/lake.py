"""The shared warehouse: a DuckLake catalog in PostgreSQL, one per org, its data in Parquet under a data path.

Many processes (and machines) commit into it at once with optimistic concurrency, and analysts attach it
read-only without ever blocking a writer. A connection is an in-memory DuckDB that ATTACHes the org's catalog
and `USE`s it, so the warehouse's schema-qualified SQL (`salesforce.account`, `sonora.customers`) runs unchanged.

Each org has its own metadata schema (`METADATA_SCHEMA '<org>'`; `main` for the single org) and data folder, so
two orgs' commits never touch the same catalog rows. A conflict that still happens (two writers of one org)
fails that transaction's COMMIT as a whole; `retry_conflicts` runs the whole commit again from its inputs (the
spool is still on disk), so the cursor still only moves with its data.

The extensions come from the registry packages duckdb-extension-ducklake/-postgres (no network at run time):
DuckDB finds them in a project-owned `extension_directory` under the local working folder, which links to them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from sonora_pipeline.settings.lake import ENV_CATALOG, ENV_DATA_PATH, PASSWORD_FIX, LakeSettings, lake_from_env
from sonora_pipeline.settings.registry import Registry

SINGLE_ORG_SCHEMA = "main"      # the single org's metadata schema: reserved, so no registered org can have it
SINGLE_ORG_ALIAS = "warehouse"  # what the single org's lake is attached as (the DuckDB file's own name too)
EXTENSION_PACKAGES = {"ducklake": ("duckdb_extension_ducklake", "ducklake"),
                      "postgres_scanner": ("duckdb_extension_postgres", "postgres")}
CONFLICT_ATTEMPTS = 8
_SECRET = re.compile(r"(password|sslpassword|passfile)\s*=\s*\S+", re.IGNORECASE)


class LakeUnavailable(RuntimeError):
    """The lake cannot be opened (catalog unreachable, extension packages missing, data path not writable):
    says which setting and the fix; nothing was written."""


@dataclass(frozen=True)
class LakeLocation:
    """One org's catalog in the lake, and the local folder its writers spool and spill to."""

    catalog: str            # libpq string, never with a password
    data_path: str          # this org's folder (absolute, ending in /) or object-storage prefix
    metadata_schema: str    # the PostgreSQL schema holding this org's catalog
    alias: str              # the DuckDB name it is attached as
    work_dir: Path          # local: spool, temp spill, extension links
    catalog_setting: str = ENV_CATALOG
    data_path_setting: str = ENV_DATA_PATH

    @classmethod
    def for_org(cls, lake: LakeSettings, org: str | None, work_dir: Path) -> LakeLocation:
        if org is None:
            return cls(lake.catalog, lake.data_path, SINGLE_ORG_SCHEMA, SINGLE_ORG_ALIAS, Path(work_dir))
        return cls(lake.catalog, f"{lake.data_path}{org}/", org, org, Path(work_dir),
                   "ducklake.catalog (registry)", "ducklake.data_path (registry)")

    def attach_sql(self, *, read_only: bool, with_data_path: bool = True, alias: str | None = None) -> str:
        options = [f"METADATA_SCHEMA '{self.metadata_schema}'"]
        if with_data_path:
            options.insert(0, f"DATA_PATH '{_literal(self.data_path)}'")
        if read_only:
            options.append("READ_ONLY")
        return f"ATTACH '{_literal('ducklake:postgres:' + self.catalog)}' AS {alias or self.alias} ({', '.join(options)})"

    def __str__(self) -> str:
        return f"DuckLake catalog {self.metadata_schema!r} ({self.catalog}; data {self.data_path})"


def _literal(text: str) -> str:
    return text.replace("'", "''")


def redact(text: str) -> str:
    """A message from libpq or DuckDB with anything password-like blanked (none should be there: belt and braces)."""
    return _SECRET.sub(r"\1=***", text)


@functools.cache
def _platform() -> str:
    return duckdb.connect().execute("PRAGMA platform").fetchone()[0]


def extension_directory(work_dir: Path) -> Path:
    """A folder DuckDB finds ducklake and postgres_scanner in, linking to the registry packages' files."""
    version = duckdb.__version__
    folder = work_dir / ".duckdb-extensions"
    target = folder / f"v{version}" / _platform()
    for name, (package, file_stem) in EXTENSION_PACKAGES.items():
        wanted = target / f"{name}.duckdb_extension"
        if wanted.exists():
            continue
        try:
            module = __import__(package)
        except ImportError:
            raise LakeUnavailable(
                f"the DuckLake warehouse needs the package {package.replace('_', '-')}=={version}, which is not "
                f"installed. Fix: pip install 'sonora-pipeline[ducklake]' (or unset {ENV_CATALOG} and the "
                "registry's ducklake block to keep the DuckDB file)") from None
        source = Path(module.__file__).parent / "extensions" / f"v{version}" / f"{file_stem}.duckdb_extension"
        if not source.exists():
            raise LakeUnavailable(f"{package.replace('_', '-')} holds no extension for DuckDB {version} ({source}). "
                                  f"Fix: install the release matching duckdb: pip install "
                                  f"'{package.replace('_', '-')}=={version}'")
        target.mkdir(parents=True, exist_ok=True)
        tmp = wanted.with_name(f"{wanted.name}.{os.getpid()}.tmp")
        try:
            os.symlink(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, wanted)
    return folder


def _check_data_path(location: LakeLocation) -> None:
    if "://" not in location.data_path:  # object storage is checked by its first write
        folder = Path(location.data_path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LakeUnavailable(f"the lake's data path {folder} cannot be created ({err.strerror}); set by "
                                  f"{location.data_path_setting}. Fix: point it at a folder this user can write, "
                                  "or at object storage (s3://bucket/prefix/). Nothing was written.") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise LakeUnavailable(f"the lake's data path {folder} is not writable by this user; set by "
                                  f"{location.data_path_setting}. Fix: give this user write access or point it "
                                  "elsewhere. Nothing was written.")


def _attach_failure(location: LakeLocation, err: Exception) -> LakeUnavailable:
    detail = redact(str(err).split("\n")[0])
    if "password" in detail.lower() or "authentication" in detail.lower():
        fix = f"give libpq the password outside the setting: {PASSWORD_FIX.split(': ', 1)[-1]}"
    else:
        fix = (f"check {location.catalog_setting} (dbname, host, port, user) and that PostgreSQL is running and "
               "reachable from this machine")
    return LakeUnavailable(f"the DuckLake catalog set by {location.catalog_setting} cannot be opened ({detail}). "
                           f"Fix: {fix}. Nothing was written.")


@dataclass
class _Instance:
    """One in-memory DuckDB holding one org's catalog (read-write and/or read-only attach of the same catalog)."""

    db: duckdb.DuckDBPyConnection
    aliases: dict[bool, str]
    users: int = 0
    last_used: float = 0.0


# Per process and org catalog: an in-memory DuckDB with ducklake and postgres loaded (about a second, so once) and
# the catalog attached (~0.1-0.3 s). One org per DuckDB: the warehouse's catalog queries (duckdb_tables(), ...)
# then never see another org's tables. At most MAX_IDLE_INSTANCES unused ones stay open, so a sensor reading
# 1,000 orgs does not hold 1,000 PostgreSQL connections. Keyed by pid too: a forked child never shares its parent's.
_instances: dict[tuple, _Instance] = {}
_instances_lock = threading.Lock()
_aliases = itertools.count(1)
MAX_IDLE_INSTANCES = 8


def _instance(location: LakeLocation) -> _Instance:
    key = (os.getpid(), location.catalog, location.metadata_schema, location.data_path)
    with _instances_lock:
        found = _instances.get(key)
        if found is None:
            folder = extension_directory(location.work_dir)
            db = duckdb.connect(config={"extension_directory": str(folder), "autoinstall_known_extensions": False,
                                        "temp_directory": str(location.work_dir / ".sonora-tmp")})
            db.execute("LOAD ducklake; LOAD postgres")
            found = _instances[key] = _Instance(db, {})
        found.users += 1
        return found


def _release(instance: _Instance) -> None:
    with _instances_lock:
        instance.users -= 1
        instance.last_used = time.monotonic()
        idle = sorted((e.last_used, k) for k, e in _instances.items() if e.users == 0 and k[0] == os.getpid())
        for _, old in idle[:max(0, len(idle) - MAX_IDLE_INSTANCES)]:
            with contextlib.suppress(duckdb.Error):
                _instances.pop(old).db.close()


def _attach(instance: _Instance, location: LakeLocation, read_only: bool) -> str:
    with _instances_lock:
        alias = instance.aliases.get(read_only)
        if alias is None:
            alias = f"{location.alias}_{next(_aliases)}"
            try:
                instance.db.execute(location.attach_sql(read_only=read_only, with_data_path=not read_only, alias=alias))
            except duckdb.Error as err:
                if read_only and "does not exist" in str(err):
                    raise LakeNotCreated(str(location)) from None
                raise _attach_failure(location, err) from None
            instance.aliases[read_only] = alias
        return alias


def connect(location: LakeLocation, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection with the org's catalog attached (read-only for readers) and in use: a cursor of the org's
    DuckDB in this process, with its own transactions and temporary tables (DuckLake starts each transaction at
    the catalog's latest snapshot, so a kept attach sees every other writer's commits)."""
    if not read_only:
        _check_data_path(location)
    instance = _instance(location)
    try:
        alias = _attach(instance, location, read_only)
        conn = instance.db.cursor()
        conn.execute(f"USE {alias}")
    except BaseException:
        _release(instance)
        raise
    return _Borrowed(conn, instance)


class _Borrowed:
    """A cursor on an org's DuckDB; closing it leaves the catalog attached for the process's next connection."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, instance: _Instance):
        self._conn, self._instance = conn, instance

    def close(self) -> None:
        if self._instance is None:
            return
        try:
            with contextlib.suppress(duckdb.Error):  # a transaction an error left open
                self._conn.execute("ROLLBACK")
            self._conn.close()
        finally:
            _release(self._instance)
            self._instance = None

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LakeNotCreated(LakeUnavailable):
    """Read-only open of an org's catalog that no commit has created yet (nothing to read)."""


def lake_exists(location: LakeLocation) -> bool:
    """Whether the org's catalog has been created (by a first commit); opening it read-only is the only test."""
    known = _instances.get((os.getpid(), location.catalog, location.metadata_schema, location.data_path))
    if known is not None and known.aliases:
        return True
    try:
        connect(location, read_only=True).close()
    except LakeNotCreated:
        return False
    return True


def is_lake(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether `conn`'s current database is a DuckLake catalog (which refuses keys, list defaults, retyping)."""
    row = conn.execute("SELECT type FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return bool(row) and row[0] == "ducklake"


def is_conflict(err: BaseException) -> bool:
    """DuckLake's refusal of a commit that raced another writer of the same catalog rows."""
    return isinstance(err, duckdb.TransactionException) and "conflict" in str(err).lower()


# Re-run a whole commit (a function taking the connection and its inputs) when it lost a race: its transaction
# was rolled back whole, and running it again reads the state afresh and loads the same spool.
retry_conflicts = retry(retry=retry_if_exception(is_conflict), stop=stop_after_attempt(CONFLICT_ATTEMPTS),
                        wait=wait_random_exponential(multiplier=0.05, max=3), reraise=True)


def registry_location(registry: Registry, org: str) -> Path | LakeLocation:
    """Where a registered org's warehouse is: its catalog in the registry's lake, else its DuckDB file."""
    if registry.ducklake is None:
        return registry.warehouse_path(org)
    return LakeLocation.for_org(registry.ducklake, org, registry.org_folder(org))


def single_org_location(db_file: Path) -> Path | LakeLocation:
    """The single org's warehouse: the lake of SONORA_DUCKLAKE_CATALOG (its work folder beside where the DuckDB
    file would be), else `db_file`."""
    lake = lake_from_env()
    return db_file if lake is None else LakeLocation.for_org(lake, None, Path(db_file).parent)


def analyst_sql(location: LakeLocation, *, alias: str | None = None) -> list[str]:
    """What an analyst types in the DuckDB CLI (the same 1.x release) to read the org's catalog: readers never
    block writers, so no copy is needed. The first line only matters offline (DuckDB otherwise downloads the two
    extensions itself); libpq takes the password from PGPASSWORD or ~/.pgpass, never from this line."""
    folder = str(location.work_dir / ".duckdb-extensions").replace("'", "''")
    return [f"SET extension_directory = '{folder}';  -- offline only: the extensions installed with the pipeline",
            location.attach_sql(read_only=True, with_data_path=False, alias=alias) + ";"]
