"""`sonora-pipeline sync`: materialize every object's due sync windows in process, through the same
Dagster definitions the UI uses (so runs, metadata and state are identical), with a progress bar
(`sync.progress`).

Due = the initial import for an object never imported, otherwise every window from the one holding the
object's cursor up to today; each as one single-run backfill. On an instance whose storage records a ranged
run cheaply (Postgres or MySQL: one planned event per run), the initial import's run covers every window
from `partitions_start` to today (it reads the import plus today's window): partition status then shows
those windows as materialized, which they are, instead of ~700 "missing" windows whose rows are mirrored.
Dagster still stores one materialization per window; on SQLite (`dagster dev`, the demo) every window costs
two separate writes (about 80 ms per window and object, measured on a busy 2-core machine: minutes for a
first sync), and an ephemeral instance forgets them at exit, so those materialize today's window only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, timedelta

import dagster as dg

from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.mirror.state import ObjectState
from sonora_pipeline.mirror.warehouse import Location
from sonora_pipeline.sync import progress
from sonora_pipeline.sync.engine import all_states


@dataclass
class DueRun:
    object_name: str
    first_key: str
    last_key: str
    initial: bool


def due_runs(objects: tuple[str, ...], db_path: Location, partitions: dg.TimeWindowPartitionsDefinition,
             overlap_seconds: int, *, initial_covers_range: bool = True) -> list[DueRun]:
    keys = partitions.get_partition_keys()
    today = keys[-1]
    states = all_states(db_path, objects)
    out = []
    for name in objects:
        state: ObjectState = states[name]
        if state.initial_import is None or state.cursor_modstamp is None:
            out.append(DueRun(name, keys[0] if initial_covers_range else today, today, True))
            continue
        since = state.cursor_modstamp - timedelta(seconds=overlap_seconds)
        first = partitions.get_partition_key_for_timestamp(since.replace(tzinfo=UTC).timestamp())
        first = max(first, keys[0])
        out.append(DueRun(name, first, today, False))
    return out


QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_sync(defs: dg.Definitions, db_path: Location, objects: tuple[str, ...], overlap_seconds: int,
             partitions: dg.TimeWindowPartitionsDefinition, *, initial_import: str = "",
             instance: dg.DagsterInstance, show_progress: bool = True,
             initial_covers_range: bool | None = None,
             job_name: str = "salesforce_sync_job") -> list[dg.ExecuteInProcessResult]:
    """Each due run executes `job_name` (a job of `defs` selecting the object assets) for one object, so the
    CLI's runs carry the same job name as the sensor's and the UI's.

    `initial_covers_range`: whether an initial import materializes every window up to today (default:
    on a persistent instance with Postgres- or MySQL-like storage, see the module's docstring)."""
    if initial_covers_range is None:
        initial_covers_range = not instance.is_ephemeral and bool(getattr(
            instance.event_log_storage, "supports_partition_subset_in_asset_materialization_planned_events", False))
    job = defs.resolve_job_def(job_name)
    runs = due_runs(objects, db_path, partitions, overlap_seconds, initial_covers_range=initial_covers_range)
    bar = progress.ProgressBar(len(runs)) if show_progress else None
    results = []
    with progress.listening(bar.rows_read if bar else (lambda *_: None)), contextlib.ExitStack() as stack:
        if bar:
            stack.callback(bar.stop)
        for i, due in enumerate(runs):
            if bar:
                what = "initial import" if due.initial else f"windows {due.first_key}..{due.last_key}"
                bar.next_object(i, f"{due.object_name} {what}")
            key = dg.AssetKey(["salesforce", table_name_for(due.object_name)])
            tags = {"sonora/trigger": "cli-sync"}
            if due.first_key != due.last_key:
                tags.update({"dagster/asset_partition_range_start": due.first_key,
                             "dagster/asset_partition_range_end": due.last_key})
            run_config: dict = dict(QUIET_CONSOLE) if bar else {}
            if initial_import:
                run_config["ops"] = {f"salesforce__{table_name_for(due.object_name)}": {
                    "config": {"initial_import": initial_import}}}
            result = job.execute_in_process(
                instance=instance, asset_selection=[key], tags=tags, run_config=run_config or None,
                partition_key=due.last_key if due.first_key == due.last_key else None,
                raise_on_error=False,
            )
            results.append(result)
            if not result.success:
                break
        if bar:
            bar.finish()
    return results
