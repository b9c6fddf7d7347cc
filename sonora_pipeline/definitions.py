"""The code location: everything under `defs/` is loaded automatically.

Runs execute their steps in one process (`in_process_executor`): every write queues on DuckDB's single
writer anyway, and a process per step cost seconds of imports each (a model rebuild of a dozen tables took
34 s that way, 1 s in one process). Runs go through the run queue (`dagster.yaml`), those that write the
warehouse one at a time (the `duckdb_writer` pool)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
                                dg.Definitions(executor=dg.in_process_executor))
