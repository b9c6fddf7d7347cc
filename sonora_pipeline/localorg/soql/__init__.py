"""SOQL for the local org: parse, type-check and compile to DuckDB SQL, then shape rows as REST or Bulk does.

Public API:
    compile_query(text, catalog, *, include_deleted, now, for_bulk=False) -> CompiledQuery
    to_rest_records(compiled, rows, api_version) -> list[dict];  dumps(obj) -> JSON with Java doubles
    bulk_arrow(conn, compiled) -> pa.Table;  render_csv(table, offset, limit, ...) -> bytes
    to_bulk_csv(compiled, table_or_rows, ...) -> str
    SoqlError(error_code, message, status=400)
"""

from sonora_pipeline.localorg.soql.compiler import (
    CompiledQuery,
    CompoundColumn,
    RecordShape,
    ValueColumn,
    compile_query,
)
from sonora_pipeline.localorg.soql.errors import SoqlError
from sonora_pipeline.localorg.soql.formats import java_double
from sonora_pipeline.localorg.soql.parser import parse
from sonora_pipeline.localorg.soql.results import (
    bulk_arrow,
    dumps,
    dumps_records,
    render_csv,
    to_bulk_csv,
    to_rest_records,
)

__all__ = [
    "CompiledQuery", "CompoundColumn", "RecordShape", "SoqlError", "ValueColumn", "bulk_arrow",
    "compile_query", "dumps", "dumps_records", "java_double", "parse", "render_csv", "to_bulk_csv",
    "to_rest_records",
]
