"""Where the project keeps its files unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def duckdb_path() -> Path:
    """`SONORA_DUCKDB_PATH`, or `data/sonora.duckdb` under the current directory."""
    return Path(os.environ.get("SONORA_DUCKDB_PATH") or Path.cwd() / "data" / "sonora.duckdb")
