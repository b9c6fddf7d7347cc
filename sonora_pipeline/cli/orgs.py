"""`sonora-pipeline orgs list | purge | sql`: the registry of orgs (`SONORA_ORGS`) as a person sees it.

Why these three: removing an org from the registry stops its runs but keeps its data (a mistaken edit must
cost nothing), so `list` shows what is registered, what is wrong and what was removed, and `purge` is the one
explicit way to delete a removed org's data, exactly that (its folder; with a DuckLake, its catalog schema and data
folder too). `sql` prints the cross-org query for
Sonora's staff: each org's file ATTACHed read-only and one view over them, a query rather than a copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from tabulate import tabulate

PURGE_HINT = "sonora-pipeline orgs purge {name} --yes"


def add_orgs_parser(sub: argparse._SubParsersAction) -> None:
    """The `orgs` command and its three subcommands, on the main parser's subparsers."""
    orgs = sub.add_parser("orgs", help="the registry of orgs (SONORA_ORGS): list them, purge a removed org's data, "
                                       "print the cross-org SQL")
    commands = orgs.add_subparsers(dest="orgs_command", required=True)
    registry = argparse.ArgumentParser(add_help=False)
    registry.add_argument("--registry", metavar="PATH", help="the registry file (default: $SONORA_ORGS)")
    listing = commands.add_parser("list", parents=[registry], help="registered orgs, their credentials source, "
                                  "settings and data folder; entries skipped and why; removed orgs' kept data")
    listing.set_defaults(func=cmd_orgs_list)
    purge = commands.add_parser("purge", parents=[registry], help="delete the data of an org removed from the registry "
                                "(<warehouse_root>/NAME/; with a ducklake block also the catalog schema NAME and "
                                "<data_path>/NAME/; nothing else)")
    purge.add_argument("name", metavar="NAME")
    purge.add_argument("--yes", action="store_true", help="really delete (without it, only say what would go)")
    purge.set_defaults(func=cmd_orgs_purge)
    sql = commands.add_parser("sql", parents=[registry], help="print SQL that ATTACHes every org's warehouse "
                              "read-only and a view all_customers over them (pipe it into the DuckDB CLI)")
    sql.add_argument("--snapshots", action="store_true", help="attach each org's analyst snapshot "
                     "(warehouse-analyst.duckdb, from `orgs snapshot`) instead of its live warehouse")
    sql.set_defaults(func=cmd_orgs_sql)
    snapshot = commands.add_parser("snapshot", parents=[registry], help="copy each registered org's warehouse (or "
                                   "the NAMEs given) to its analyst snapshot, between two commits")
    snapshot.add_argument("names", metavar="NAME", nargs="*", help="orgs to copy (default: every registered org "
                          "with a warehouse)")
    snapshot.set_defaults(func=cmd_orgs_snapshot)


def _registry(args: argparse.Namespace):
    """The registry, or None after saying why not (with the fix)."""
    from sonora_pipeline.settings import RegistryError, load_registry

    path = Path(args.registry) if args.registry else None
    try:
        return load_registry(path)
    except RegistryError as err:
        print(f"sonora-pipeline orgs {args.orgs_command}: {err}", file=sys.stderr)
        return None


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _data_state(folder: Path) -> str:
    if not folder.is_dir():
        return "none yet (the first sync creates it)"
    from sonora_pipeline.mirror.lake_purge import files_and_bytes
    return _count(*files_and_bytes(folder))


def _count(files: int, size: int) -> str:
    return f"{human_size(size)} in {files} file{'s' if files != 1 else ''}"


def _credentials_state(entry) -> str:
    """Where the secrets are, and whether they are there from this shell; never their values."""
    from sonora_pipeline.salesforce.secrets import env_names

    if entry.credentials_file is not None:
        absent = not entry.credentials_file.exists()
    else:
        absent = any(not os.environ.get(name) for name in env_names(entry.credentials_env))
    return entry.credentials_source + ((" (missing)" if entry.credentials_file else " (not set in this shell)")
                                       if absent else "")


def cmd_orgs_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if registry is None:
        return 2
    from sonora_pipeline.mirror.lake_purge import unregistered_data_folders

    def state(name: str) -> str:
        """The org's folder under warehouse_root, and with a local lake its data folder there (no catalog query:
        listing stays cheap; `orgs purge NAME` reads the catalog)."""
        if registry.ducklake is None or not registry.ducklake.is_local:
            return _data_state(registry.org_folder(name))
        lake_folder = Path(registry.ducklake.data_path) / name
        return (f"work folder {_data_state(registry.org_folder(name))}; lake data "
                f"{_data_state(lake_folder) if lake_folder.is_dir() else 'none'}")

    rows = [(entry.name, entry.instance_url, _credentials_state(entry),
             str(entry.settings_path) if entry.settings_path else "default (SONORA_CONFIG or built-in)",
             state(entry.name)) for entry in registry.orgs.values()]
    rows += [(name, "-", "-", "-", f"entry skipped (below); {state(name)}") for name in registry.problems]
    removed = sorted(set(registry.unregistered_folders()) | set(unregistered_data_folders(registry)))
    rows += [(name, "-", "-", "-", f"removed — data kept ({state(name)}), purge with "
              f"{PURGE_HINT.format(name=name)}") for name in removed]
    print(f"Registry {registry.path}: {len(registry.orgs)} org(s) to sync, {len(registry.problems)} entr"
          f"{'y' if len(registry.problems) == 1 else 'ies'} skipped, {len(removed)} removed; data folders under "
          f"{registry.warehouse_root}")
    if rows:
        print(tabulate(rows, headers=["org", "instance URL", "credentials", "settings", "data"], tablefmt="plain"))
    if registry.problems:
        print(f"\nSkipped until fixed in {registry.path}:")
        for name, problem in registry.problems.items():
            print(f"  {name}: {problem}")
    return 0


def cmd_orgs_purge(args: argparse.Namespace) -> int:
    """Delete a removed org's data: its folder under warehouse_root, and with a lake its catalog schema and data
    folder too (mirror/lake_purge.py: schema first, so an interruption leaves only orphan files, and a re-run
    finishes it)."""
    from filelock import FileLock, Timeout

    from sonora_pipeline.settings.registry import WAREHOUSE_FILE, org_name_problem

    def refuse(message: str) -> int:
        print(f"sonora-pipeline orgs purge: {message} Nothing was deleted.", file=sys.stderr)
        return 2

    name = args.name
    bad_name = org_name_problem(name)
    if bad_name:
        return refuse(f"{bad_name}.")
    registry = _registry(args)
    if registry is None:
        return 2
    if registry.is_registered(name):
        return refuse(f"org {name} is still in the registry {registry.path}. Fix: remove it from the registry "
                      f"first (the sensor then stops its runs within one tick), then run {PURGE_HINT.format(name=name)}.")
    folder = registry.org_folder(name)
    root = registry.warehouse_root.resolve()
    has_folder = os.path.lexists(folder)
    if has_folder and (folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != root):
        return refuse(f"{folder} is not a folder directly under {root} (a symlink or a file), so it is not an "
                      "org's namespace this command may delete. Fix: remove it by hand if it is yours.")
    lake = None
    if registry.ducklake is not None:
        from sonora_pipeline.mirror.lake import LakeLocation, LakeUnavailable
        from sonora_pipeline.mirror.lake_purge import org_lake_data

        try:
            lake = org_lake_data(LakeLocation.for_org(registry.ducklake, name, folder))
        except LakeUnavailable as err:
            return refuse(f"{err}")
    if not has_folder and (lake is None or lake.empty):
        if lake is None:
            return refuse(f"there is no folder {folder} (org {name} has no data under {registry.warehouse_root}). "
                          "Fix: check the name with `sonora-pipeline orgs list`.")
        data = (f"(object storage under {lake.location.data_path} is not checked by this command)" if lake.remote
                else f"and no data folder {lake.location.data_path}")
        return refuse(f"there is no folder {folder}, no schema '{name}' in the DuckLake catalog "
                      f"{lake.location.catalog} {data} (org {name} has no data here). Fix: check the name with "
                      "`sonora-pipeline orgs list`.")
    from sonora_pipeline.mirror.lake_purge import files_and_bytes
    files, size = files_and_bytes(folder) if has_folder else (0, 0)
    work = f"the work folder {folder} ({_count(files, size)}: its spool and extension links)" if lake else \
        f"{folder} ({_count(files, size)})"
    parts = _lake_parts(lake) + ([work] if has_folder else [])
    if not args.yes:
        note = (" Runs of a removed org are cancelled by the change sensor within one tick; purge once Dagster's "
                "Runs page shows none of its runs in progress (a run still committing would create its catalog "
                "again)." if lake else "")
        if lake and lake.remote:
            note += (f" The Parquet files under {lake.location.data_path} (object storage) are not deleted by this "
                     "command: remove that prefix with the storage's own tool.")
        return refuse(f"this would delete org {name}'s data: {'; '.join(parts)}.{note} Fix: run "
                      f"{PURGE_HINT.format(name=name)} to delete it.")
    # A run that started before the org left the registry may still be writing a DuckDB file: its lock says so.
    lock = FileLock(folder / f"{WAREHOUSE_FILE}.write.lock") if has_folder else None
    try:
        if lock is not None:
            lock.acquire(timeout=0)
    except Timeout:
        return refuse(f"a run of org {name} is still writing {folder / WAREHOUSE_FILE}. Fix: wait for it to end "
                      "(Dagster's Runs page) and purge again.")
    try:
        if lake is not None:
            from sonora_pipeline.mirror.lake import LakeUnavailable
            from sonora_pipeline.mirror.lake_purge import purge_org_lake

            try:
                purge_org_lake(lake.location)
            except LakeUnavailable as err:
                return refuse(f"{err}")
        if has_folder:
            shutil.rmtree(folder)
    except OSError as err:
        done = "its catalog schema is already gone. " if lake else ""
        print(f"sonora-pipeline orgs purge: deleting org {name}'s files stopped ({err.strerror}: {err.filename}); "
              f"{done}Fix: the cause, then run {PURGE_HINT.format(name=name)} again to finish.", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.release()
    remote = (f" The Parquet files under {lake.location.data_path} are in object storage, which this command "
              "does not delete: remove that prefix with the storage's own tool." if lake and lake.remote else "")
    print(f"Deleted {'; '.join(parts)}: all of org {name}'s data. Nothing else was touched.{remote}")
    return 0


def _lake_parts(lake) -> list[str]:
    """What of an org's lake data a purge deletes, in the order it goes (the catalog schema first)."""
    if lake is None:
        return []
    parts = []
    if lake.schema_exists:
        parts.append(f"the DuckLake catalog schema '{lake.location.metadata_schema}' in {lake.location.catalog} "
                     f"({lake.tables} table{'s' if lake.tables != 1 else ''}, last commit {lake.last_commit})")
    if lake.folder is not None:
        parts.append(f"the lake data folder {lake.folder} ({_count(lake.files, lake.size)})")
    return parts


def cross_org_sql(databases: dict[str, Path], attach: list[str] | None = None) -> str:
    """ATTACH each org's file read-only under its name (or the given ATTACH lines: a lake's), and a view of every
    org's customers with an `org` column. UNION ALL BY NAME lines up columns by name, so orgs with different
    custom fields still combine (a column one org lacks is NULL for its rows)."""
    from sonora_pipeline.mirror.names import quote_identifier, quote_literal
    from sonora_pipeline.model.statements import MODEL_SCHEMA

    if attach is None:
        attach = [f"ATTACH {quote_literal(str(path))} AS {quote_identifier(name)} (READ_ONLY);"
                  for name, path in databases.items()]
    selects = [f"SELECT {quote_literal(name)} AS org, * FROM {quote_identifier(name)}.{MODEL_SCHEMA}.customers"
               for name in databases]
    view = "CREATE OR REPLACE TEMP VIEW all_customers AS\n  " + "\n  UNION ALL BY NAME\n  ".join(selects) + ";"
    return "\n".join([*attach, view])


def lake_sql(registry) -> tuple[str, list[str]]:
    """The ATTACH lines of every registered org with a catalog in the registry's lake (each org its own metadata
    schema; a reader never blocks a writer, so no copy), and the orgs left out (not synced yet)."""
    from sonora_pipeline.mirror.lake import analyst_sql, lake_exists, registry_location

    locations = {name: registry_location(registry, name) for name in registry.orgs}
    present = {name: loc for name, loc in locations.items() if lake_exists(loc)}
    if not present:
        return "", sorted(locations)
    first = analyst_sql(next(iter(present.values())))
    attach = [first[0]] + [analyst_sql(loc)[1] for loc in present.values()]
    return cross_org_sql(dict.fromkeys(present, Path()), attach), sorted(set(locations) - set(present))


def cmd_orgs_sql(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if registry is None:
        return 2
    if registry.ducklake is not None and not args.snapshots:
        sql, missing = lake_sql(registry)
        if not sql:
            print(f"sonora-pipeline orgs sql: no registered org has a catalog in the DuckLake of {registry.path} "
                  "yet. Fix: let the first syncs run.", file=sys.stderr)
            return 1
        print(f"-- DuckLake warehouse of {registry.path}" + (f"; not yet synced, left out: {', '.join(missing)}"
                                                             if missing else ""))
        print("-- Read-only attaches of the live catalogs: syncs never wait for them (libpq reads the password "
              "from PGPASSWORD or ~/.pgpass).")
        print(sql)
        return 0
    paths = {name: (registry.snapshot_path(name) if args.snapshots else registry.warehouse_path(name))
             for name in registry.orgs}
    present = {name: path for name, path in paths.items() if path.exists()}
    if not present:
        what = "analyst snapshot" if args.snapshots else "warehouse"
        print(f"sonora-pipeline orgs sql: no registered org has a {what} file yet under {registry.warehouse_root}. "
              "Fix: let the first syncs run" + (" and take snapshots (`sonora-pipeline orgs snapshot`)" if args.snapshots
                                                else "") + ".", file=sys.stderr)
        return 1
    missing = sorted(set(paths) - set(present))
    print(f"-- {len(present)} org(s) from {registry.path}"
          + (f"; not yet synced, left out: {', '.join(missing)}" if missing else ""))
    if not args.snapshots:
        print("-- A read-only attach of a live warehouse makes its syncs wait while attached: detach soon, or use "
              "`orgs sql --snapshots` for long sessions.")
    print(cross_org_sql(present))
    return 0


def cmd_orgs_snapshot(args: argparse.Namespace) -> int:
    """`orgs snapshot [NAME...]`: each org's analyst copy, `<warehouse_root>/<org>/warehouse-analyst.duckdb`, taken
    under the org's write lock between two commits (the copy `orgs sql --snapshots` attaches)."""
    from sonora_pipeline.mirror.warehouse import publish_snapshot

    registry = _registry(args)
    if registry is None:
        return 2
    unknown = [name for name in args.names if name not in registry.orgs]
    if unknown:
        print(f"sonora-pipeline orgs snapshot: {', '.join(unknown)} not in the registry {registry.path}. Fix: name "
              f"registered orgs ({', '.join(registry.orgs) or 'none yet'}).", file=sys.stderr)
        return 2
    from sonora_pipeline.mirror.lake import registry_location
    from sonora_pipeline.mirror.warehouse import warehouse_exists

    names = args.names or [name for name in registry.orgs if warehouse_exists(registry_location(registry, name))]
    missing = [name for name in names if not warehouse_exists(registry_location(registry, name))]
    if missing or not names:
        print(f"sonora-pipeline orgs snapshot: no warehouse yet for {', '.join(missing) or 'any registered org'}. "
              "Fix: let its first sync run (the change sensor starts it).", file=sys.stderr)
        return 1
    for name in names:
        path = publish_snapshot(registry_location(registry, name), registry.snapshot_path(name))
        print(f"{name}: {path}")
    return 0
