"""`sonora-pipeline sync`: materialize every object's due sync windows in process, through the same
Dagster definitions the UI uses (so runs, metadata and state are identical), with a progress line.

Due = the initial import for an object never imported (done by materializing today's window), otherwise
every window from the one holding the object's cursor up to today, as one single-run backfill.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path

import dagster as dg

from sonora_pipeline.mirror.state import ObjectState
from sonora_pipeline.sync.catalog import table_name_for
from sonora_pipeline.sync.engine import all_states


@dataclass
class DueRun:
    object_name: str
    first_key: str
    last_key: str
    initial: bool


def due_runs(objects: tuple[str, ...], db_path: Path, partitions: dg.TimeWindowPartitionsDefinition,
             overlap_seconds: int) -> list[DueRun]:
    keys = partitions.get_partition_keys()
    today = keys[-1]
    states = all_states(db_path, objects)
    out = []
    for name in objects:
        state: ObjectState = states[name]
        if state.initial_import is None or state.cursor_modstamp is None:
            out.append(DueRun(name, today, today, True))
            continue
        since = state.cursor_modstamp - timedelta(seconds=overlap_seconds)
        first = partitions.get_partition_key_for_timestamp(since.replace(tzinfo=timezone.utc).timestamp())
        first = max(first, keys[0])
        out.append(DueRun(name, first, today, False))
    return out


def _progress(done: int, total: int, label: str, started: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    elapsed = time.monotonic() - started
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<40} {elapsed:6.1f}s")
    sys.stderr.flush()


def run_sync(defs: dg.Definitions, db_path: Path, objects: tuple[str, ...], overlap_seconds: int,
             partitions: dg.TimeWindowPartitionsDefinition, *, initial_import: str = "",
             instance: dg.DagsterInstance, show_progress: bool = True) -> list[dg.ExecuteInProcessResult]:
    runs = due_runs(objects, db_path, partitions, overlap_seconds)
    results = []
    started = time.monotonic()
    for i, due in enumerate(runs):
        if show_progress:
            what = "initial import" if due.initial else f"windows {due.first_key}..{due.last_key}"
            _progress(i, len(runs), f"{due.object_name}: {what}", started)
        key = dg.AssetKey(["salesforce", table_name_for(due.object_name)])
        tags = {"sonora/trigger": "cli-sync"}
        if due.first_key != due.last_key:
            tags.update({"dagster/asset_partition_range_start": due.first_key,
                         "dagster/asset_partition_range_end": due.last_key})
        run_config = {"ops": {f"salesforce__{table_name_for(due.object_name)}": {
            "config": {"initial_import": initial_import}}}} if initial_import else None
        result = dg.materialize(
            [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and key in a.keys],
            resources=defs.resources, instance=instance, tags=tags, run_config=run_config,
            partition_key=due.last_key if due.first_key == due.last_key else None,
            raise_on_error=False,
        )
        results.append(result)
        if not result.success:
            break
    if show_progress:
        _progress(len(runs), len(runs), "done", started)
        sys.stderr.write("\n")
    return results

