"""Fetched rows wait on disk, not in memory, until the commit: Bulk CSV pages as the org sent them, REST
pages as Parquet (Arrow batches of text). Memory stays flat whatever the window's size, the DuckDB lock
is held only for the load, and a crash before the commit leaves nothing half-written."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonora_pipeline.salesforce.datetimes import utc_text
from sonora_pipeline.salesforce.describe import ObjectSchema


def _stringify(value: Any, sf_type: str) -> str | None:
    """A REST JSON value as the text the load casts. An empty string is a null (Salesforce stores none), and
    numbers keep every digit they arrived with (the client decodes them as `Decimal`)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return utc_text(text) if sf_type == "datetime" else text


@dataclass
class Spool:
    directory: Path
    columns: list[str]
    csv_files: list[Path] = field(default_factory=list)
    parquet_files: list[Path] = field(default_factory=list)
    rows_expected: int = 0

    @classmethod
    def create(cls, root: Path, object_name: str, columns: list[str]) -> Spool:
        directory = root / f"{object_name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        directory.mkdir(parents=True, exist_ok=False)
        return cls(directory=directory, columns=columns)

    def add_csv_page(self, data: bytes, rows: int) -> None:
        path = self.directory / f"page-{len(self.csv_files):05d}.csv"
        path.write_bytes(data)
        self.csv_files.append(path)
        self.rows_expected += rows

    def add_records(self, records: list[dict[str, Any]], schema: ObjectSchema) -> None:
        if not records:
            return
        # pyarrow here, not at import: every Dagster run worker (a model rebuild too) imports this module
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {f.name: f.sf_type for f in schema.fields}
        arrays = [pa.array([_stringify(r.get(c), types.get(c, "string")) for r in records], type=pa.string())
                  for c in self.columns]
        path = self.directory / f"page-{len(self.parquet_files):05d}.parquet"
        pq.write_table(pa.table(arrays, names=self.columns), path, compression="zstd")
        self.parquet_files.append(path)
        self.rows_expected += len(records)

    @property
    def empty(self) -> bool:
        return not self.csv_files and not self.parquet_files

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def clean_stale_spools(root: Path) -> int:
    """Remove spools left by processes that died before committing (their data was never committed, so
    the next run reads the same window again)."""
    removed = 0
    if not root.exists():
        return 0
    for path in root.iterdir():
        parts = path.name.rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        except PermissionError:
            continue
    return removed
