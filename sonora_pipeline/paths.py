"""Where the project keeps its files unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from sonora_pipeline.mirror.names import RAW_SCHEMA
from sonora_pipeline.model.statements import MODEL_SCHEMA

DEFAULT_DUCKDB = Path("data") / "warehouse.duckdb"
# DuckDB names a database after its file; a file named like one of our schemas makes `sonora.customers`
# ambiguous (catalog `sonora` or schema `sonora`) in every query, the analysts' included.
SCHEMA_NAMES = (RAW_SCHEMA, MODEL_SCHEMA, "main")


class WarehousePathError(ValueError):
    """The DuckDB file cannot be used under that name."""


def checked_duckdb_path(path: Path) -> Path:
    """`path`, unless its name would collide with a schema of ours (then a WarehousePathError saying so)."""
    if path.stem.lower() in SCHEMA_NAMES:
        raise WarehousePathError(
            f"The DuckDB file {path} is named {path.stem!r}, like the schema {path.stem.lower()!r}: DuckDB names "
            f"the database after its file, so every query of {path.stem.lower()}.<table> would be ambiguous. "
            f"Fix: give the file another name in SONORA_DUCKDB_PATH (e.g. {path.with_name('warehouse.duckdb')}).")
    return path


def duckdb_path() -> Path:
    """`SONORA_DUCKDB_PATH`, or `data/warehouse.duckdb` under the current directory."""
    return checked_duckdb_path(Path(os.environ.get("SONORA_DUCKDB_PATH") or Path.cwd() / DEFAULT_DUCKDB))
