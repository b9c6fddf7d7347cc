"""The warehouse commands: `sync`, `model`, `refresh-formulas`, `snapshot` (and the demo's org inventory).

Each runs the definitions' own jobs in process, so a command's run is the run the UI or the sensor would
make; settings are loaded first, so a mistake in them stops the command before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from sonora_pipeline.cli.runs import (
    dagster_instance,
    failure_message,
    materializations,
    refuse_missing_warehouse,
    run_job,
)


def cmd_sync(args: argparse.Namespace) -> int:
    from sonora_pipeline.settings import SettingsError

    try:
        from sonora_pipeline.definitions import defs as lazy_defs
        from sonora_pipeline.defs.partitions import sync_window
        from sonora_pipeline.defs.settings import SETTINGS
    except SettingsError as err:
        print(f"sonora-pipeline sync: {err}", file=sys.stderr)
        return 2
    from sonora_pipeline.paths import duckdb_path
    from sonora_pipeline.settings import parse_initial_import
    from sonora_pipeline.sync.runner import run_sync

    try:
        lookback = parse_initial_import(args.lookback) if args.lookback else ""
    except ValueError as err:
        print(f"sonora-pipeline sync: --lookback {err}", file=sys.stderr)
        return 2
    objects = tuple(SETTINGS.sync.objects)
    if args.objects:
        wanted = [o.strip() for o in args.objects.split(",") if o.strip()]
        unknown = [o for o in wanted if o not in objects]
        if unknown:
            print(f"sonora-pipeline sync: unknown object(s) {', '.join(unknown)}. Fix: name objects the settings "
                  f"sync ({', '.join(objects)}); add custom objects under sync.custom_objects.", file=sys.stderr)
            return 2
        objects = tuple(wanted)
    from sonora_pipeline.mirror.lake import single_org_location

    defs = lazy_defs()
    db = single_org_location(duckdb_path())
    with dagster_instance() as instance:
        results = run_sync(defs, db, objects, SETTINGS.sync.overlap_seconds, sync_window,
                           initial_import=lookback, instance=instance, show_progress=not args.quiet)
    failed = [r for r in results if not r.success]
    synced = materializations(results)
    if synced:
        print(synced_table(synced))
    if failed:
        print(f"sonora-pipeline sync failed: {failure_message(failed[0])}", file=sys.stderr)
        return 1
    print(f"DuckDB file: {db}" if isinstance(db, Path) else f"Warehouse: {db}")
    return 0


SYNC_COLUMNS = {"read": "sonora/rows_read_this_run", "inserted/updated": "sonora/rows_inserted_or_updated",
                "deleted": "sonora/rows_newly_marked_deleted", "rows in table": "dagster/row_count",
                "API calls": "sonora/api_calls", "sync": "sonora/sync_kind"}


def synced_table(rows: list[tuple[str, dict]]) -> str:
    """One line per synced asset: what its run read, wrote and cost (its materialization's metadata)."""
    return tabulate([(key, *(meta.get(name, "" if label == "sync" else 0) for label, name in SYNC_COLUMNS.items()))
                     for key, meta in rows], headers=["asset", *SYNC_COLUMNS], tablefmt="plain", intfmt=",")


def cmd_snapshot(args: argparse.Namespace) -> int:
    from sonora_pipeline.mirror.lake import analyst_sql, single_org_location
    from sonora_pipeline.mirror.warehouse import WarehouseBusy, publish_snapshot
    from sonora_pipeline.paths import duckdb_path

    file = duckdb_path()
    db = single_org_location(file)
    if refuse_missing_warehouse("snapshot", db):
        return 2
    target = Path(args.output) if args.output else file.with_name(file.stem + "-analyst.duckdb")
    try:
        publish_snapshot(db, target)
    except WarehouseBusy as err:
        print(f"sonora-pipeline snapshot: {err}", file=sys.stderr)
        return 1
    print(f"Snapshot for analysts: {target}\nOpen it read-only, e.g. {duckdb_cli()} -readonly {target}")
    if not isinstance(db, Path):  # a lake needs no copy: readers never block its writers
        print(f"Or query the live DuckLake warehouse (read-only), in {duckdb_cli()}:\n  " + "\n  ".join(analyst_sql(db)))
    return 0


def duckdb_cli() -> str:
    """The DuckDB CLI installed with the project (package duckdb-cli, next to this python: the same release
    that writes the file), or `duckdb` from PATH when it is not there."""
    cli = Path(sys.executable).parent / "duckdb"
    return str(cli) if cli.exists() else "duckdb"


def settings_refused(command: str) -> bool:
    """Load the definitions, which read the settings file: a mistake in it is said, with its line and fix, and
    stops the command before any run starts."""
    from sonora_pipeline.settings import SettingsError

    try:
        import sonora_pipeline.definitions  # noqa: F401
    except SettingsError as err:
        print(f"sonora-pipeline {command}: {err}", file=sys.stderr)
        return True
    return False


def cmd_refresh_formulas(args: argparse.Namespace) -> int:
    """Refresh the mirror's formula columns (salesforce_formula_refresh_job, in process)."""
    from sonora_pipeline.mirror.lake import single_org_location
    from sonora_pipeline.paths import duckdb_path

    if (refuse_missing_warehouse("refresh-formulas", single_org_location(duckdb_path()))
            or settings_refused("refresh-formulas")):
        return 2
    result = run_job("salesforce_formula_refresh_job", failure="sonora-pipeline refresh-formulas failed")
    if result is None:
        return 1
    refreshed = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            obs = event.asset_observation_data.asset_observation
            meta = {k.rsplit("/", 1)[-1]: getattr(v, "value", v) for k, v in obs.metadata.items()}
            if meta.get("formula_fields", "none") != "none":
                refreshed.append((obs.asset_key.to_user_string(), meta["rows_changed"], meta["rows_read"],
                                  meta["api_calls"], meta["formula_fields"]))
        if event.event_type_value == "STEP_OUTPUT":
            total = {k: getattr(v, "value", v) for k, v in event.event_specific_data.metadata.items()}
    if refreshed:
        print(tabulate(refreshed, headers=["asset", "changed", "read", "API calls", "formula fields"],
                       tablefmt="plain", intfmt=","))
    print(f"Formula refresh: {total['rows_changed']:,} rows changed, {total['api_calls']} API calls "
          f"({total['objects_with_formulas']})")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    """Rebuild the customer model from the mirror (no Salesforce calls)."""
    from sonora_pipeline.paths import duckdb_path

    duckdb_path()  # a file name DuckDB would confuse with a schema is refused here, not half-way through the job
    if settings_refused("model"):
        return 2
    result = run_job("customer_model_job", failure="sonora-pipeline model failed")
    if result is None:
        return 1
    tables = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    print(f"Customer model built: {', '.join(tables)}")
    return 0


def org_inventory() -> int:
    """Materialize `salesforce/org_inventory` (org_inventory_job, in process): what the org holds per synced
    object, as the run-as user sees it, in salesforce_meta.org_inventory — to compare with the mirror."""
    result = run_job("org_inventory_job", failure="sonora-pipeline: org inventory failed")
    if result is None:
        return 1
    for _, meta in materializations([result]):
        print(f"Org inventory: {meta['records_in_org']:,} records in {meta['dagster/row_count']} objects "
              "(table salesforce_meta.org_inventory)")
    return 0
