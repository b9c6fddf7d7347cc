"""The REST calls the pipeline makes: describe, limits, query/queryAll paging, composite batch, and the
sObject Collections update the write-back sends. Each is a thin shape over `Transport`'s one way of calling,
so the retry, token and budget rules are not repeated here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sonora_pipeline.salesforce.errors import ApiError
from sonora_pipeline.salesforce.transport import Transport

MAX_BATCH_SUBREQUESTS = 25  # composite/batch
MAX_COLLECTION_RECORDS = 200  # sObject Collections


@dataclass(frozen=True)
class SaveResult:
    """One record's outcome of an sObject Collections write (input order)."""

    id: str | None
    success: bool
    errors: tuple[dict[str, Any], ...] = ()

    @property
    def status_code(self) -> str | None:
        return str(self.errors[0].get("statusCode")) if self.errors else None

    @property
    def message(self) -> str | None:
        if not self.errors:
            return None
        return "; ".join(f"{e.get('statusCode')}: {e.get('message')}" + (
            f" ({', '.join(e.get('fields') or [])})" if e.get("fields") else "") for e in self.errors)


class RestApi(Transport):
    """REST resources under /services/data/vXX.X."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET /services/data/vXX.X/<path> and return parsed JSON."""
        return self._get_json(self._url(path), params=params)

    def describe(self, object_name: str) -> dict[str, Any]:
        return self.get(f"sobjects/{object_name}/describe")

    def describe_global(self) -> dict[str, Any]:
        return self.get("sobjects")

    def limits(self) -> dict[str, Any]:
        return self.get("limits")

    def count(self, soql_count: str, *, include_deleted: bool = True) -> int:
        """Run a `SELECT COUNT() FROM ...` query (queryAll when include_deleted) and return totalSize."""
        body = self.get("queryAll" if include_deleted else "query", {"q": soql_count})
        return int(body["totalSize"])

    def query_pages(self, soql: str, *, include_deleted: bool = True,
                    batch_size: int = 2000) -> Iterator[list[dict[str, Any]]]:
        """REST query/queryAll, yielding each page's `records` (raw JSON dicts) following nextRecordsUrl."""
        headers = {"Sforce-Query-Options": f"batchSize={max(200, min(2000, int(batch_size)))}"}
        endpoint = "queryAll" if include_deleted else "query"
        body = self._get_json(self._url(endpoint), params={"q": soql}, headers=headers, exact_numbers=True)
        pages = rows = 0
        while True:
            records = body.get("records") or []
            pages += 1
            rows += len(records)
            self.log.debug("REST %s: page %d, %d rows (%d of %s so far)", endpoint, pages, len(records), rows,
                           body.get("totalSize"))
            yield records
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self._get_json(self._url(next_url), headers=headers, exact_numbers=True)

    def composite_batch(self, subrequests: list[dict[str, Any]], *, halt_on_error: bool = False) -> dict[str, Any]:
        """POST composite/batch (one API call for up to 25 subrequests). Retried like any call on 5xx and
        drops, so write subrequests in it must be idempotent."""
        if len(subrequests) > MAX_BATCH_SUBREQUESTS:
            raise ValueError(f"composite/batch takes at most {MAX_BATCH_SUBREQUESTS} subrequests, "
                             f"got {len(subrequests)}")
        payload = {"haltOnError": halt_on_error, "batchRequests": subrequests}
        return self._json(self._call("POST", self._url("composite/batch"), json_body=payload))

    def update_records(self, records: list[dict[str, Any]], all_or_none: bool = False, *,
                       object_name: str | None = None) -> list[SaveResult]:
        """sObject Collections update (PATCH composite/sobjects), 200 records per call; SaveResults in input
        order. Each record needs `id` and `attributes.type` (or pass `object_name`); None values are sent as
        JSON null (clears the field).

        Never retried blindly: only failures that surely happened before the request was sent (connect
        errors), a refused token (401, refreshed and sent once more) and REQUEST_LIMIT_EXCEEDED (refused
        before processing) are retried. A 5xx, a timeout or a dropped connection after sending raise
        `WriteOutcomeUnknown`: the caller re-reads the org and sends again only what is missing."""
        results: list[SaveResult] = []
        for start in range(0, len(records), MAX_COLLECTION_RECORDS):
            chunk = [_collection_record(r, object_name) for r in records[start:start + MAX_COLLECTION_RECORDS]]
            body = self._json(self._call("PATCH", self._url("composite/sobjects"),
                                         json_body={"allOrNone": bool(all_or_none), "records": chunk},
                                         idempotent=False))
            if not isinstance(body, list) or len(body) != len(chunk):
                raise ApiError(200, "UNEXPECTED_RESPONSE",
                               f"composite/sobjects answered {type(body).__name__} for {len(chunk)} records",
                               "composite/sobjects")
            for sent, item in zip(chunk, body):
                results.append(SaveResult(id=item.get("id") or sent["id"], success=bool(item.get("success")),
                                          errors=tuple(item.get("errors") or ())))
        return results


def _collection_record(record: dict[str, Any], object_name: str | None) -> dict[str, Any]:
    record = dict(record)
    if object_name and "attributes" not in record:
        record["attributes"] = {"type": object_name}
    if not record.get("id") and record.get("Id"):
        record["id"] = record.pop("Id")
    if not isinstance(record.get("attributes"), dict) or not record.get("id"):
        raise ValueError("each record needs 'id' and 'attributes': {'type': ...} (or pass object_name)")
    return record
