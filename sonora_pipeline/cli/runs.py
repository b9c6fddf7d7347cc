"""Running the definitions' jobs in this process, as the commands do, and reading their results.

The commands execute jobs in process (no daemon needed) on the user's Dagster instance, so their runs show
in the UI like the sensor's; what they print comes from the runs' own events and metadata.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sonora_pipeline.mirror.lake import LakeLocation


def dagster_instance():
    """$DAGSTER_HOME's instance (refused with the fix when it is not a directory), else an ephemeral one."""
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if home:
        if not Path(home).is_dir():  # Dagster's own answer is a traceback
            raise SystemExit(f"sonora-pipeline: DAGSTER_HOME is {home}, which is not a directory. Fix: create it "
                             f"(mkdir -p {home}) to keep run history there, or unset DAGSTER_HOME.")
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def failure_message(result) -> str:
    """The first failed step's own message (a refusal and its fix), not Dagster's wrapper."""
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            return data.error.message.strip() if data.error else "step failed"
    return "the run failed"


def materializations(results) -> list[tuple[str, dict]]:
    """(asset key, metadata values) of every materialization of the runs, in order."""
    rows = []
    for result in results:
        for event in result.get_asset_materialization_events():
            mat = event.step_materialization_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            rows.append((mat.asset_key.to_user_string(), meta))
    return rows


def run_job(name: str, *, failure: str):
    """Run one of the definitions' jobs in process on the instance, quietly; its result, or None once its
    failure is printed after `failure`."""
    from sonora_pipeline.definitions import defs as lazy_defs
    from sonora_pipeline.sync.runner import QUIET_CONSOLE

    with dagster_instance() as instance:
        result = lazy_defs().resolve_job_def(name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE)
    if not result.success:
        print(f"{failure}: {failure_message(result)}", file=sys.stderr)
        return None
    return result


def refuse_missing_warehouse(command: str, db: Path | LakeLocation) -> bool:
    """True (and said, with the fix) when there is no warehouse yet for a command that only reads one."""
    from sonora_pipeline.mirror.warehouse import warehouse_exists

    if warehouse_exists(db):
        return False
    print(f"sonora-pipeline {command}: {db} does not exist yet; run `sonora-pipeline sync` first.", file=sys.stderr)
    return True
