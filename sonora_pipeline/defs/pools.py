"""The Dagster concurrency pool of every step that commits to the DuckDB warehouse.

DuckDB lets one process write a file at a time. With the pool's limit of 1 (dagster.yaml, granularity
`run`), the run queue starts one run with such steps at a time and shows the others as blocked by
`duckdb_writer`, instead of runs that start and then wait, unseen, on the warehouse's file lock. A run holds
the pool from start to end, its Salesforce reads included: on one DuckDB file, syncs, model rebuilds and
write-backs go one run at a time. The file lock stays underneath for what the queue does not launch: the
CLI's in-process runs, and anything else that opens the file."""

DUCKDB_WRITER = "duckdb_writer"
