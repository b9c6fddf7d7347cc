"""What the DuckLake tests share: a lake on the module's PostgreSQL, and a warehouse's contents to compare."""

from __future__ import annotations

from pathlib import Path

from sonora_pipeline.mirror.lake import LakeLocation
from sonora_pipeline.mirror.warehouse import Location, read_connection
from sonora_pipeline.settings.lake import LakeSettings

SCHEMAS = ("salesforce", "sonora")
# Columns stamped with the wall clock of the commit that wrote them: two warehouses fed the same data differ there.
# The org's clock runs, so each warehouse's reads end (read_to, the cursor) at their own instants too.
VOLATILE = {"_sonora_synced_at", "committed_at", "last_success_at", "initial_import_at", "first_seen_at",
            "attempted_at", "computed_at", "run_id", "read_from", "read_to", "window_start", "window_end", "cursor_modstamp"}


def lake_settings(pg, database: str, data_path: Path) -> LakeSettings:
    return LakeSettings(pg.libpq(database), str(data_path.absolute()) + "/")


def lake_for(pg, database: str, tmp_path: Path, org: str | None = None) -> LakeLocation:
    """`org`'s catalog (None: the single org's) in `database`, data under tmp_path/lake, work folder tmp_path/work."""
    return LakeLocation.for_org(lake_settings(pg, database, tmp_path / "lake"), org, tmp_path / "work" / (org or "one"))


def contents(location: Location, *, schemas: tuple[str, ...] = SCHEMAS) -> dict[str, list[tuple]]:
    """{schema.table: its rows, sorted, without VOLATILE columns} for every table of `schemas`."""
    out = {}
    with read_connection(location) as conn:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
                              "current_database() AND list_contains(?, schema_name) ORDER BY ALL",
                              [list(schemas)]).fetchall()
        for schema, table in tables:
            columns = [c for (c,) in conn.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
                "AND table_name = ? ORDER BY column_index", [schema, table]).fetchall() if c not in VOLATILE]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {select} FROM {schema}."{table}"').fetchall()
            out[f"{schema}.{table}"] = sorted(rows, key=repr)
    return out


def snapshot_times(location: LakeLocation) -> list:
    """When each of the catalog's commits happened (DuckLake's own record: one snapshot per commit)."""
    with read_connection(location) as conn:
        return [r[0] for r in conn.execute(
            "SELECT snapshot_time FROM ducklake_snapshots(current_database()) WHERE snapshot_id > 0 "
            "ORDER BY snapshot_id").fetchall()]
