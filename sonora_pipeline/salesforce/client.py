"""SalesforceClient: every call the pipeline makes to an org goes through here.

One place for the cross-cutting rules: the Bearer token (refreshed single-flight on INVALID_SESSION_ID),
the shared API budget (reads `Sforce-Limit-Info` on every response, paces, pauses on
REQUEST_LIMIT_EXCEEDED), retries with backoff on 5xx, timeouts and dropped connections (tenacity), and
errors turned into `sonora_pipeline.salesforce.errors` with a message and a fix.

INTERFACE (implemented by the helper; the sync codes against exactly this): `BulkPage`, and
`SalesforceClient(connection, budget=None, *, log=None, max_attempts=6, max_backoff_seconds=30.0)` with
`api_calls`, `get`, `describe`, `describe_global`, `limits`, `count`, `query_pages`, `bulk_query_pages`,
`composite_batch`, `close`. The extra keyword-only constructor arguments (backoff floor, timeouts, Bulk
polling) exist so tests can run the same code paths with tiny delays.

Retry rules, and why:
- 5xx, 420, 429, timeouts, connection errors (a dropped socket included) and truncated bodies are
  transient: retried with exponential backoff plus jitter, capped at `max_backoff_seconds`, at most
  `max_attempts` sends. Reads are idempotent; a Bulk result page is re-read with the same locator.
- 401 INVALID_SESSION_ID: the session expired; the token is replaced (single-flight) and the call is sent
  once more. A second 401 means the new token is refused too, which no retry fixes.
- 403 REQUEST_LIMIT_EXCEEDED: the daily allowance is spent; the shared `ApiBudget` pauses and the call is
  retried without a count limit; the budget raises `QuotaExhausted` when it gives up.
- Anything else 4xx is the caller's problem (bad SOQL, missing object...): `ApiError` with the org's
  errorCode and message, no retry.
"""

from __future__ import annotations

import csv
import decimal
import io
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from sonora_pipeline.salesforce.auth import TokenManager
from sonora_pipeline.salesforce.budget import ApiBudget, parse_limit_info
from sonora_pipeline.salesforce.connection import ENV_INSTANCE_URL, OrgConnection, safe_url
from sonora_pipeline.salesforce.errors import (
    ApiError,
    AuthError,
    BulkJobFailed,
    ConfigError,
    ResultCountMismatch,
    TransientError,
)

DEFAULT_TIMEOUT = (10.0, 120.0)  # (connect, read) seconds
MAX_BATCH_SUBREQUESTS = 25
_TRANSIENT_STATUSES = {420, 429}
_BULK_TERMINAL = {"JobComplete", "Failed", "Aborted"}
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,      # refused, reset, dropped (RemoteDisconnected), DNS
    requests.exceptions.Timeout,              # connect and read timeouts
    requests.exceptions.ChunkedEncodingError,  # body cut short
    requests.exceptions.ContentDecodingError,  # gzip stream cut short
)


@dataclass(frozen=True)
class BulkPage:
    """One Bulk API 2.0 result page: raw CSV bytes (already un-gzipped, header row included) and the
    row count the org announced in `Sforce-NumberOfRecords`."""

    csv: bytes
    number_of_records: int
    job_id: str


class _Retryable(Exception):
    """Internal: one send failed in a way tenacity should retry."""

    def __init__(self, description: str, status: int | None = None):
        super().__init__(description)
        self.description = description
        self.status = status


class _LimitExceeded(Exception):
    """Internal: 403 REQUEST_LIMIT_EXCEEDED; the budget decides when to try again."""

    def __init__(self, usage: tuple[int, int] | None):
        super().__init__("REQUEST_LIMIT_EXCEEDED")
        self.usage: tuple[int, ...] = usage or ()


class _Ambiguous(Exception):
    """Internal: a write request may have reached the org, and its outcome is unknown (no retry)."""

    def __init__(self, description: str, status: int | None = None):
        super().__init__(description)
        self.description = description
        self.status = status


class WriteOutcomeUnknown(TransientError):
    """A write (collections PATCH, Bulk ingest close) failed after the request may have reached the org: it
    may or may not have been applied. Not retried blindly: the caller re-reads the org's values and sends
    again only what is not there."""


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


MAX_COLLECTION_RECORDS = 200
BULK_NULL = "#N/A"


def _pre_send(exc: BaseException) -> bool:
    """True when a transport error surely happened before the request left (nothing reached the org)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    text = repr(exc)
    return isinstance(exc, requests.exceptions.ConnectionError) and (
        "NewConnectionError" in text or "Connection refused" in text or "Name or service not known" in text)


def _bulk_csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    """Ingest CSV: header row, every value quoted, None as #N/A (sets null; empty would mean unchanged)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([BULK_NULL if row.get(c) is None else _bulk_text(row.get(c)) for c in columns])
    return out.getvalue().encode("utf-8")


def _bulk_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def count_csv_records(data: bytes) -> int:
    """Data rows in one Bulk CSV page (header excluded), parsed properly: quoted values may hold newlines,
    so counting lines would be wrong. A blank line is a row (a single null column)."""
    if not data:
        return 0
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    rows = sum(1 for _ in csv.reader(text))
    return max(rows - 1, 0)


def _error_of(reply: requests.Response) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce error body (a JSON array), or a stand-in for other bodies."""
    try:
        body = reply.json()
    except ValueError:
        kind = (reply.headers.get("Content-Type") or "no content type").split(";")[0]
        return f"HTTP_{reply.status_code}", f"non-JSON answer ({kind})"
    item = body[0] if isinstance(body, list) and body else body
    if isinstance(item, dict):
        code = str(item.get("errorCode") or item.get("error") or f"HTTP_{reply.status_code}")
        message = str(item.get("message") or item.get("error_description") or "")
        return code, message
    return f"HTTP_{reply.status_code}", "unexpected answer"


def _is_certificate_problem(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, requests.exceptions.SSLError) and (
        "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower())


class SalesforceClient:
    """Calls one org's REST and Bulk 2.0 APIs under the retry, token and budget rules above. Thread-safe:
    one client may be shared by the threads of a run."""

    def __init__(self, connection: OrgConnection, budget: ApiBudget | None = None, *, log: Any = None,
                 max_attempts: int = 6, max_backoff_seconds: float = 30.0,
                 min_backoff_seconds: float = 0.5, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 bulk_poll_seconds: tuple[float, float] = (0.05, 2.0), bulk_job_retries: int = 2,
                 sleep: Callable[[float], None] = time.sleep, wait_for_quota: bool = True):
        self.connection = connection.validate()
        # A budget per client only when none is given; pass one shared ApiBudget to every client of a process.
        self.budget = budget if budget is not None else ApiBudget()
        self.log = log or logging.getLogger(__name__)
        self.max_attempts = max(1, max_attempts)
        self.max_backoff_seconds = max_backoff_seconds
        self.min_backoff_seconds = min(min_backoff_seconds, max_backoff_seconds)
        self.timeout = timeout
        self.bulk_poll_seconds = bulk_poll_seconds
        self.bulk_job_retries = bulk_job_retries
        self.wait_for_quota = wait_for_quota  # False: a quota pause raises QuotaPaused at once (the sensor)
        self._sleep = sleep
        self.session = connection.http_session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.tokens = TokenManager(connection, self.session, log=self.log,
                                   timeout=(timeout[0], min(timeout[1], 60.0)))
        self.base_url = connection.api_base
        self._lock = threading.Lock()
        self.api_calls = 0  # REST/Bulk calls made by this client (token requests excluded)
        self.retries = 0
        self._server_offset: timedelta | None = None

    api_calls: int  # REST/Bulk calls made by this client (token requests excluded)

    def __repr__(self) -> str:
        return f"SalesforceClient({safe_url(self.connection.instance_url)}, api_calls={self.api_calls})"

    def __enter__(self) -> "SalesforceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the simple resources ----------------------------------------------------------------------------
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

    # -- writes ------------------------------------------------------------------------------------------
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
            chunk = []
            for record in records[start:start + MAX_COLLECTION_RECORDS]:
                record = dict(record)
                if object_name and "attributes" not in record:
                    record["attributes"] = {"type": object_name}
                if not record.get("id") and record.get("Id"):
                    record["id"] = record.pop("Id")
                if not isinstance(record.get("attributes"), dict) or not record.get("id"):
                    raise ValueError("each record needs 'id' and 'attributes': {'type': ...} (or pass object_name)")
                chunk.append(record)
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

    def bulk_update(self, object_name: str, rows: list[dict[str, Any]]
                    ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """Bulk API 2.0 ingest `update` job: one CSV upload (None -> #N/A, which sets null), close, wait, then
        the per-row results: (successes, failures), each a list of dicts with `sf__Id` (and `sf__Error` for
        failures) plus the columns sent. Creating and polling are retried like reads; the upload and the
        close are not retried after an ambiguous failure (a job never closed writes nothing and is aborted;
        for a close whose answer was lost the job's state is read before anything else)."""
        if not rows:
            return [], []
        columns = ["Id"] + sorted({k for row in rows for k in row if k != "Id"})
        created = self._json(self._call("POST", self._url("jobs/ingest"), json_body={
            "object": object_name, "operation": "update", "contentType": "CSV", "lineEnding": "LF",
            "columnDelimiter": "COMMA"}))
        job_id = str(created["id"])
        job_path = f"jobs/ingest/{job_id}"
        try:
            self._call("PUT", self._url(f"{job_path}/batches"), data=_bulk_csv(rows, columns),
                       headers={"Content-Type": "text/csv"}, idempotent=False)
        except Exception:
            self._abort_ingest(job_id)
            raise
        try:
            self._call("PATCH", self._url(job_path), json_body={"state": "UploadComplete"}, idempotent=False)
        except WriteOutcomeUnknown:
            state = self._get_json(self._url(job_path)).get("state")
            if state == "Open":
                self._call("PATCH", self._url(job_path), json_body={"state": "UploadComplete"}, idempotent=False)
        delay, ceiling = self.bulk_poll_seconds
        while True:
            info = self._get_json(self._url(job_path))
            if info.get("state") in _BULK_TERMINAL:
                break
            self._sleep(delay)
            delay = min(delay * 2, ceiling)
        if info.get("state") != "JobComplete":
            raise BulkJobFailed(200, str(info.get("state")),
                                f"Bulk ingest job {job_id} ended {info.get('state')}: "
                                f"{info.get('errorMessage') or 'no error message'}", job_path,
                                fix="check the job in Setup > Bulk Data Load Jobs; nothing of it was written "
                                    "unless its results say so.")
        successes = self._ingest_results(job_path, "successfulResults")
        failures = self._ingest_results(job_path, "failedResults")
        self.log.info("Bulk ingest job %s (%s update): %d succeeded, %d failed", job_id, object_name,
                      len(successes), len(failures))
        return successes, failures

    def _ingest_results(self, job_path: str, kind: str) -> list[dict[str, str]]:
        reply = self._call("GET", self._url(f"{job_path}/{kind}/"), headers={"Accept": "text/csv"})
        text = io.TextIOWrapper(io.BytesIO(reply.content), encoding="utf-8", newline="")
        return list(csv.DictReader(text))

    def _abort_ingest(self, job_id: str) -> None:
        try:
            self._call("PATCH", self._url(f"jobs/ingest/{job_id}"), json_body={"state": "Aborted"})
        except Exception as exc:  # the job stays Open and expires; it holds no processed data
            self.log.warning("could not abort Bulk ingest job %s: %s", job_id, exc)

    def close(self) -> None:
        self.session.close()

    # -- Bulk API 2.0 ------------------------------------------------------------------------------------
    def bulk_query_pages(self, soql: str, *, include_deleted: bool = True,
                         max_records: int = 50_000) -> Iterator[BulkPage]:
        """Bulk API 2.0 query job (queryAll when include_deleted): create, poll, then yield result pages.
        A job that ends Failed is retried with a new job (before any page is yielded)."""
        job_id, info = self._completed_bulk_job(soql, "queryAll" if include_deleted else "query")
        locator: str | None = None
        pages = rows = 0
        while True:
            page, locator = self._bulk_page(job_id, max_records, locator)
            pages += 1
            rows += page.number_of_records
            self.log.info("Bulk job %s: page %d with %d rows (%d rows so far)", job_id, pages,
                          page.number_of_records, rows)
            yield page
            if not locator or locator == "null":
                break
        processed = info.get("numberRecordsProcessed")
        if isinstance(processed, int) and processed != rows:
            raise ResultCountMismatch(
                200, "RESULT_COUNT_MISMATCH",
                f"Bulk job {job_id} reported {processed} records processed but its result pages held {rows}",
                f"jobs/query/{job_id}/results", fix="run the sync again; the job's results were incomplete.")

    def _completed_bulk_job(self, soql: str, operation: str) -> tuple[str, dict[str, Any]]:
        """Create a query job and wait for it; a Failed/Aborted job is replaced up to `bulk_job_retries` times."""
        last: dict[str, Any] = {}
        attempts = 1 + max(0, self.bulk_job_retries)
        for attempt in range(1, attempts + 1):
            created = self._json(self._call("POST", self._url("jobs/query"),
                                            json_body={"operation": operation, "query": soql}))
            job_id = str(created["id"])
            last = self._wait_for_job(job_id)
            if last.get("state") == "JobComplete":
                self.log.info("Bulk job %s (%s) complete: %s records", job_id, operation,
                              last.get("numberRecordsProcessed"))
                return job_id, last
            self.log.warning("Bulk job %s ended %s (attempt %d of %d): %s", job_id, last.get("state"), attempt,
                             attempts, last.get("errorMessage") or "no error message")
        state = str(last.get("state"))
        message = str(last.get("errorMessage") or "no error message")
        error = BulkJobFailed(
            200, state, f"Bulk query job {last.get('id')} ended {state} ({attempts} jobs tried): {message}",
            f"jobs/query/{last.get('id')}",
            fix="check the query and the org's Bulk API job list (Setup > Bulk Data Load Jobs); run again later "
                "if the org reported an internal error.")
        error.job_id = last.get("id")  # type: ignore[attr-defined]
        error.error_message = message  # type: ignore[attr-defined]
        raise error

    def _wait_for_job(self, job_id: str) -> dict[str, Any]:
        delay, ceiling = self.bulk_poll_seconds
        while True:
            info = self._get_json(self._url(f"jobs/query/{job_id}"))
            state = info.get("state")
            if state in _BULK_TERMINAL:
                return info
            self.log.debug("Bulk job %s is %s; polling again in %.2f s", job_id, state, delay)
            self._sleep(delay)
            delay = min(delay * 2, ceiling)

    def _bulk_page(self, job_id: str, max_records: int, locator: str | None) -> tuple[BulkPage, str | None]:
        params: dict[str, Any] = {"maxRecords": int(max_records)}
        if locator:
            params["locator"] = locator
        path = f"jobs/query/{job_id}/results"
        for attempt in range(1, 4):
            reply = self._call("GET", self._url(path), params=params, headers={"Accept": "text/csv"})
            announced_text = reply.headers.get("Sforce-NumberOfRecords")
            if announced_text is None or not announced_text.strip().isdigit():
                raise ApiError(reply.status_code, "MISSING_RECORD_COUNT",
                               "a Bulk result page came without a valid Sforce-NumberOfRecords header", path)
            announced = int(announced_text)
            parsed = count_csv_records(reply.content)
            if parsed == announced:
                next_locator = (reply.headers.get("Sforce-Locator") or "").strip()
                page = BulkPage(csv=reply.content, number_of_records=announced, job_id=job_id)
                return page, (None if next_locator in ("", "null") else next_locator)
            self.log.warning("Bulk job %s: page announced %d rows but parsed %d (attempt %d); reading it again",
                             job_id, announced, parsed, attempt)
        raise ResultCountMismatch(
            200, "RESULT_COUNT_MISMATCH",
            f"a result page of Bulk job {job_id} announced {announced} rows in Sforce-NumberOfRecords but its CSV "
            f"held {parsed}", path, fix="run the sync again; if it persists, report the job id to Salesforce.")

    # -- the one way a request is made -------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith("/services/"):
            return self.connection.instance_url + path  # nextRecordsUrl and other absolute paths
        return f"{self.base_url}/{path.lstrip('/')}"

    def _get_json(self, url: str, *, params: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None, attempts: int = 3, exact_numbers: bool = False) -> Any:
        """GET and parse; a malformed body (cut short by a proxy or a dropped stream) is read again, which
        is safe for a read, before it is reported. `exact_numbers` decodes JSON numbers with a fraction or
        exponent as `Decimal`: record values (an 18-digit currency) must not pass through a float."""
        for attempt in range(1, attempts + 1):
            try:
                return self._json(self._call("GET", url, params=params, headers=headers),
                                  parse_float=decimal.Decimal if exact_numbers else None)
            except ApiError as err:
                if err.error_code != "NOT_JSON" or attempt == attempts:
                    raise
                self.log.warning("Malformed JSON from %s (attempt %d); reading it again", _path_of(url), attempt)
        raise AssertionError("unreachable")

    def _json(self, reply: requests.Response, *, parse_float: Callable[[str], Any] | None = None) -> Any:
        try:
            return reply.json(parse_float=parse_float) if parse_float else reply.json()
        except ValueError:
            kind = (reply.headers.get("Content-Type") or "no content type").split(";")[0]
            raise ApiError(reply.status_code, "NOT_JSON",
                           f"the answer was not valid JSON ({kind}, {len(reply.content)} bytes: malformed or cut short)",
                           _path_of(reply.request.url or "")) from None

    def _call(self, method: str, url: str, *, params: dict[str, Any] | None = None,
              json_body: Any = None, headers: dict[str, str] | None = None, data: bytes | None = None,
              idempotent: bool = True) -> requests.Response:
        """One logical call: budget gate, token, transient retries and quota pauses. Returns a 2xx/3xx
        response or raises a SalesforceError."""
        path = _path_of(url)
        try:
            while True:
                retrying = Retrying(
                    stop=stop_after_attempt(self.max_attempts),
                    wait=wait_exponential_jitter(multiplier=self.min_backoff_seconds, max=self.max_backoff_seconds,
                                                 jitter=self.min_backoff_seconds),
                    retry=retry_if_exception_type(_Retryable),
                    sleep=self._sleep,
                    before_sleep=lambda state: self._log_retry(method, path, state),
                    reraise=True,
                )
                try:
                    return retrying(self._attempt, method, url, params, json_body, headers or {}, data,
                                    idempotent)
                except _Ambiguous as exc:
                    raise WriteOutcomeUnknown(
                        f"{method} {path} may or may not have been applied ({exc.description}); it was not "
                        "sent again.", "re-read the records and send only the values that are missing.",
                        status=exc.status) from None
                except _LimitExceeded as refused:
                    # pauses, or raises QuotaExhausted (QuotaPaused at once for a client that must not wait)
                    self.budget.on_limit_exceeded(*refused.usage, wait=self.wait_for_quota)
                except _Retryable as exc:
                    raise TransientError(
                        f"Salesforce at {safe_url(self.connection.instance_url)} did not answer {method} {path} "
                        f"after {self.max_attempts} attempts (last: {exc.description}).",
                        f"check {ENV_INSTANCE_URL}; if it is right, the org or the network is unavailable: run "
                        "again later (the next run starts where this one stopped).", status=exc.status) from None
        finally:
            self.budget.after_call()

    def _attempt(self, method: str, url: str, params: dict[str, Any] | None, json_body: Any,
                 headers: dict[str, str], data: bytes | None = None, idempotent: bool = True) -> requests.Response:
        self.budget.before_call(wait=self.wait_for_quota)
        token = self._token(None)
        reply = self._send(method, url, token, params, json_body, headers, data, idempotent)
        if reply.status_code == 401 and _error_of(reply)[0] == "INVALID_SESSION_ID":
            self.log.info("Salesforce session expired; getting a new access token")
            token = self._token(token)
            reply = self._send(method, url, token, params, json_body, headers, data, idempotent)
        try:
            return self._check(reply, method, url)
        except _Retryable as exc:
            if idempotent or exc.status in _TRANSIENT_STATUSES:  # 420/429: refused before processing
                raise
            raise _Ambiguous(exc.description, exc.status) from None

    def _token(self, stale: str | None) -> str:
        try:
            return self.tokens.token() if stale is None else self.tokens.refresh(stale)
        except TransientError as exc:
            raise _Retryable(f"token endpoint HTTP {exc.status}", exc.status) from None
        except _TRANSPORT_ERRORS as exc:
            self._raise_if_certificate(exc)
            raise _Retryable(f"token endpoint: {type(exc).__name__}") from None

    def _send(self, method: str, url: str, token: str, params: dict[str, Any] | None, json_body: Any,
              headers: dict[str, str], data: bytes | None = None, idempotent: bool = True) -> requests.Response:
        with self._lock:
            self.api_calls += 1
        try:
            reply = self.session.request(method, url, params=params, json=json_body, data=data,
                                         headers={**headers, "Authorization": f"Bearer {token}"},
                                         timeout=self.timeout, allow_redirects=False)
        except _TRANSPORT_ERRORS as exc:
            self._raise_if_certificate(exc)
            if not idempotent and not _pre_send(exc):
                raise _Ambiguous(type(exc).__name__) from None
            raise _Retryable(type(exc).__name__) from None
        self._note_server_date(reply.headers.get("Date"))
        usage = parse_limit_info(reply.headers.get("Sforce-Limit-Info"))
        if reply.status_code == 403 and _error_of(reply)[0] == "REQUEST_LIMIT_EXCEEDED":
            # Not an ordinary observation: the budget must not count a refusal as the quota freeing up.
            raise _LimitExceeded(usage)
        if usage is not None:
            self.budget.observe(*usage)
        return reply

    def _note_server_date(self, header: str | None) -> None:
        if not header:
            return
        try:
            server = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        self._server_offset = server - datetime.now(timezone.utc)

    def server_now(self) -> datetime:
        """The org's current time (UTC, aware): our clock corrected by the offset seen in the last
        response's `Date` header. Sync windows and their lag use it, so a skewed local clock cannot make
        the sync skip or double-read rows. Asks the (unauthenticated, free) versions list if no call was
        made yet."""
        if self._server_offset is None:
            try:
                reply = self.session.get(self.connection.instance_url + "/services/data/", timeout=self.timeout)
                self._note_server_date(reply.headers.get("Date"))
            except _TRANSPORT_ERRORS:
                pass
        # The Date header has whole seconds: stay one second behind so nothing counts as read too early.
        offset = self._server_offset or timedelta(0)
        return datetime.now(timezone.utc) + offset - timedelta(seconds=1)

    def _check(self, reply: requests.Response, method: str, url: str) -> requests.Response:
        status = reply.status_code
        if status < 400:
            return reply
        code, message = _error_of(reply)
        path = _path_of(url)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise _Retryable(f"HTTP {status} {code}", status)
        if status == 403 and code == "API_DISABLED_FOR_ORG":
            raise AuthError(
                "api_disabled",
                f"The org accepted the credentials but refused the API call ({code}: {message}): the run-as "
                "user may not use the API.",
                "grant 'API Enabled' to the run-as user's profile or to a permission set assigned to that user "
                "(the org's edition must include API access).")
        if status == 401:
            raise AuthError(
                "token_expired",
                f"The org refused a freshly issued access token for {method} {path} ({code}: {message}).",
                "check the External Client App's session policies and that the run-as user is active.")
        raise ApiError(status, code, message, path)

    def _raise_if_certificate(self, exc: BaseException) -> None:
        if _is_certificate_problem(exc):
            raise ConfigError(
                f"The TLS certificate of {safe_url(self.connection.instance_url)} is not trusted.",
                f"check {ENV_INSTANCE_URL}; for the local org set SALESFORCE_CA_BUNDLE to its ca.pem; behind a "
                "TLS-inspecting proxy, point SALESFORCE_CA_BUNDLE at the proxy's CA bundle.") from None

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        why = exc.description if isinstance(exc, _Retryable) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning("Salesforce %s %s failed (%s); retry %d of %d in %.2f s", method, path, why,
                         state.attempt_number, self.max_attempts - 1, wait)


def _path_of(url: str) -> str:
    """The URL's path only: for messages and logs (query strings carry SOQL, never needed there)."""
    return urlsplit(url).path
