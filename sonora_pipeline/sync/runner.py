"""`sonora-pipeline sync`: materialize every object's due sync windows in process, through the same
Dagster definitions the UI uses (so runs, metadata and state are identical), with a progress bar.

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
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path

import dagster as dg

from sonora_pipeline.mirror.state import ObjectState
from sonora_pipeline.sync import progress
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.sync.engine import all_states


@dataclass
class DueRun:
    object_name: str
    first_key: str
    last_key: str
    initial: bool


def due_runs(objects: tuple[str, ...], db_path: Path, partitions: dg.TimeWindowPartitionsDefinition,
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
        first = partitions.get_partition_key_for_timestamp(since.replace(tzinfo=timezone.utc).timestamp())
        first = max(first, keys[0])
        out.append(DueRun(name, first, today, False))
    return out


class ProgressBar:
    """One line on stderr, redrawn in place: objects done, the current object's rows, rate and time left.

    Fed by the runner (which object is next) and by the engine's row reports (`sync.progress`), and redrawn
    every half second in between, so elapsed time and time left move while a page or a Bulk job is awaited
    (an object read in one page would otherwise only ever show 0/N and N/N). The Dagster console log is turned
    down to warnings while it draws, so that the bar stays one line; the run log in the Dagster instance
    keeps every line."""

    WIDTH = 30
    REDRAW_SECONDS = 0.5

    def __init__(self, total_objects: int, stream=None, redraw: bool = True):
        self.total = total_objects
        self.done = 0
        self.label = ""
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._rows: tuple[int, int] | None = None  # (read, to read) of the current object's current read
        self._rows_started = self.started
        self._rows_ended: float | None = None
        self._read_rows = 0  # rows read, and seconds spent reading them, by this command's finished reads
        self._read_seconds = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress-bar", daemon=True) if redraw else None
        if self._ticker:
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.REDRAW_SECONDS):
            self.draw()

    def next_object(self, done: int, label: str) -> None:
        with self._lock:
            self.done, self.label, self._rows = done, label, None
        self.draw()

    def rows_read(self, object_name: str, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if done == 0:
                self._rows_started, self._rows_ended = now, None
            elif done >= total:
                self._rows_ended = now  # the rate shown stays the read's while its commit runs
                self._read_rows += done
                self._read_seconds += now - self._rows_started
            self._rows = (done, total) if total else None
        self.draw()

    def rows_text(self, now: float) -> str:
        if self._rows is None:
            return ""
        done, total = self._rows
        elapsed = max((self._rows_ended or now) - self._rows_started, 1e-6)
        earlier = self._read_rows / self._read_seconds if self._read_seconds > 0 else None
        left = progress.time_left(done, total, elapsed, earlier)
        return f"{done:,}/{total:,} rows, {done / elapsed:,.0f}/s" + (f", {left}" if left else "")

    def draw(self) -> None:
        with self._lock:
            now = time.monotonic()
            filled = int(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
            rows = self.rows_text(now)
            text = f"{self.label}: {rows}" if rows else self.label
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} "
                              f"{text[:80]:<80} {now - self.started:6.1f}s")
            self.stream.flush()

    def stop(self) -> None:
        """No more redraws (also when the command ends on an error)."""
        self._stop.set()
        if self._ticker:
            self._ticker.join()

    def finish(self) -> None:
        self.stop()
        self.next_object(self.total, "done")
        with self._lock:
            self.stream.write("\n")
            self.stream.flush()


QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_sync(defs: dg.Definitions, db_path: Path, objects: tuple[str, ...], overlap_seconds: int,
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
    bar = ProgressBar(len(runs)) if show_progress else None
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
