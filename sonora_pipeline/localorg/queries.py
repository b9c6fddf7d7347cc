"""Running SOQL for the REST API: query, queryAll, and the query locators behind `nextRecordsUrl`.

A query runs once, in full, when it is first asked (the result is a snapshot, as a real query locator
is) and is kept as an Arrow table; each page converts only its own rows to JSON records, so memory stays
proportional to the result and not to Python objects.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sonora_pipeline.localorg.http import Response
from sonora_pipeline.localorg.ids import make_id
from sonora_pipeline.localorg.soql import SoqlError, compile_query
from sonora_pipeline.localorg.soql.results import to_rest_records

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg

DEFAULT_BATCH = 2000
MIN_BATCH = 200
LOCATOR_IDLE_SECONDS = 15 * 60
MAX_OPEN_LOCATORS = 500


class QueryFailure(Exception):
    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def response(self) -> Response:
        return Response.error(self.status, self.error_code, self.message)


@dataclass
class _Cursor:
    compiled: Any
    table: pa.Table
    last_used: float


def run_compiled(org: LocalOrg, soql: str, *, include_deleted: bool, for_bulk: bool = False):
    """Compile and execute; returns (compiled, arrow table) or raises QueryFailure with the org's error."""
    try:
        compiled = compile_query(soql, org.catalog, include_deleted=include_deleted, now=org.clock.now(),
                                 for_bulk=for_bulk)
    except SoqlError as err:
        raise QueryFailure(err.status, err.error_code, err.message) from None
    cur = org.store.cursor()
    try:
        table = cur.sql(compiled.sql, params=compiled.params).to_arrow_table()
    finally:
        cur.close()
    return compiled, table


def _rows(table: pa.Table) -> list[tuple]:
    columns = [col.to_pylist() for col in table.columns]
    return list(zip(*columns)) if columns else []


def fetch_records(org: LocalOrg, soql: str, *, include_deleted: bool, version: str) -> list[dict[str, Any]]:
    compiled, table = run_compiled(org, soql, include_deleted=include_deleted)
    return to_rest_records(compiled, _rows(table), version)


class QueryService:
    """Open query locators of one org."""

    def __init__(self, org: LocalOrg):
        self.org = org
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._lock = threading.Lock()
        self._counter = 0

    def first_page(self, soql: str, *, include_deleted: bool, version: str, batch_size: int) -> dict[str, Any]:
        compiled, table = run_compiled(self.org, soql, include_deleted=include_deleted)
        if compiled.is_count:
            return {"totalSize": int(table.column(0)[0].as_py()), "done": True, "records": []}
        if table.num_rows <= batch_size:
            return self._page(compiled, table, 0, batch_size, version, locator=None)
        with self._lock:
            self._counter += 1
            locator = make_id("01g", self._counter, pod="5g0")
            self._cursors[locator] = _Cursor(compiled, table, time.monotonic())
            while len(self._cursors) > MAX_OPEN_LOCATORS:
                self._cursors.popitem(last=False)
        return self._page(compiled, table, 0, batch_size, version, locator=locator)

    def next_page(self, locator_and_offset: str, *, version: str, batch_size: int) -> dict[str, Any]:
        locator, _, offset_text = locator_and_offset.partition("-")
        with self._lock:
            cursor = self._cursors.get(locator)
            expired = cursor is None or time.monotonic() - cursor.last_used > LOCATOR_IDLE_SECONDS
            if not expired:
                cursor.last_used = time.monotonic()
                self._cursors.move_to_end(locator)
        if expired or not offset_text.isdigit() or int(offset_text) > cursor.table.num_rows:
            raise QueryFailure(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor.compiled, cursor.table, int(offset_text), batch_size, version, locator=locator)

    def _page(self, compiled: Any, table: pa.Table, offset: int, batch_size: int, version: str,
              locator: str | None) -> dict[str, Any]:
        chunk = table.slice(offset, batch_size)
        records = to_rest_records(compiled, _rows(chunk), version)
        end = offset + chunk.num_rows
        done = end >= table.num_rows
        page: dict[str, Any] = {"totalSize": table.num_rows, "done": done}
        if not done and locator is not None:
            page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
        page["records"] = records
        return page


def batch_size_from(header: str | None) -> int:
    """`Sforce-Query-Options: batchSize=N`: a hint between 200 and 2,000."""
    if not header:
        return DEFAULT_BATCH
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_BATCH, min(DEFAULT_BATCH, int(value.strip())))
    return DEFAULT_BATCH
