"""Bulk API 2.0: query jobs (the sync's large reads) and ingest `update` jobs (the write-back's large writes).

Why apart from REST: a Bulk job is asynchronous (create, poll, read pages or results), its pages are CSV
that must be counted against the `Sforce-NumberOfRecords` the org announces, and a job can sit queued in
a busy org for a long time. So each wait has one overall deadline (`bulk_job_deadline_seconds`): past it
the run stops with the job id and what to do, instead of polling for ever.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sonora_pipeline.salesforce.errors import ApiError, BulkJobFailed, BulkJobTimeout, ResultCountMismatch
from sonora_pipeline.salesforce.transport import Transport, WriteOutcomeUnknown

BULK_NULL = "#N/A"  # an ingest CSV's null (an empty value means "leave unchanged")
BULK_JOB_DEADLINE_SECONDS = 2 * 3600.0  # one Bulk query, or one ingest job after its upload
_BULK_TERMINAL = {"JobComplete", "Failed", "Aborted"}


@dataclass(frozen=True)
class BulkPage:
    """One Bulk API 2.0 result page: raw CSV bytes (already un-gzipped, header row included) and the
    row count the org announced in `Sforce-NumberOfRecords`."""

    csv: bytes
    number_of_records: int
    job_id: str


class BulkApi(Transport):
    """Bulk API 2.0 jobs under /services/data/vXX.X/jobs. Needs `bulk_poll_seconds` (first and longest
    pause between polls), `bulk_job_retries` and `bulk_job_deadline_seconds` set by the client."""

    bulk_poll_seconds: tuple[float, float] = (0.05, 2.0)
    bulk_job_retries: int = 2
    bulk_job_deadline_seconds: float = BULK_JOB_DEADLINE_SECONDS

    # -- queries -----------------------------------------------------------------------------------------
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
        """Create a query job and wait for it; a Failed/Aborted job is replaced up to `bulk_job_retries` times,
        all within one deadline."""
        deadline = time.monotonic() + self.bulk_job_deadline_seconds
        last: dict[str, Any] = {}
        attempts = 1 + max(0, self.bulk_job_retries)
        for attempt in range(1, attempts + 1):
            created = self._json(self._call("POST", self._url("jobs/query"),
                                            json_body={"operation": operation, "query": soql}))
            job_id = str(created["id"])
            last = self._wait_for_job(f"jobs/query/{job_id}", deadline, query=True)
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

    # -- ingest ------------------------------------------------------------------------------------------
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
            self._call("PUT", self._url(f"{job_path}/batches"), data=bulk_csv(rows, columns),
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
        info = self._wait_for_job(job_path, time.monotonic() + self.bulk_job_deadline_seconds, query=False)
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

    # -- the wait both kinds of job share ----------------------------------------------------------------
    def _wait_for_job(self, job_path: str, deadline: float, *, query: bool) -> dict[str, Any]:
        """Poll `job_path` (backing off from `bulk_poll_seconds[0]` to `[1]`) until the job ends, or raise
        `BulkJobTimeout` once `deadline` (monotonic) has passed."""
        delay, ceiling = self.bulk_poll_seconds
        started = time.monotonic()
        while True:
            info = self._get_json(self._url(job_path))
            state = info.get("state")
            if state in _BULK_TERMINAL:
                return info
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._timed_out(job_path, str(state), time.monotonic() - started, query=query)
            self.log.debug("Bulk job %s is %s; polling again in %.2f s", job_path, state, delay)
            self._sleep(min(delay, left))
            delay = min(delay * 2, ceiling)

    def _timed_out(self, job_path: str, state: str, waited: float, *, query: bool) -> BulkJobTimeout:
        job_id = job_path.rsplit("/", 1)[-1]
        limit = f"the limit is {self.bulk_job_deadline_seconds:g} s"
        if query:
            try:  # a query job holds nothing of ours: abort it so it stops using the org's Bulk capacity
                self._call("PATCH", self._url(job_path), json_body={"state": "Aborted"})
                fate = "it was aborted"
            except Exception as exc:  # noqa: BLE001 - the timeout is the error to report
                self.log.warning("could not abort Bulk query job %s: %s", job_id, exc)
                fate = "aborting it failed; it expires on its own"
            return BulkJobTimeout(
                f"Bulk query job {job_id} was still {state} after {waited:.0f} s of waiting ({limit}); {fate}.",
                "run again later: nothing was committed, and the next run reads the same window. If Bulk jobs "
                "of this org often wait this long, look for jobs queued ahead of ours in Setup > Bulk Data Load "
                "Jobs.", job_id)
        return BulkJobTimeout(
            f"Bulk ingest job {job_id} was still {state} after {waited:.0f} s of waiting ({limit}); it was left "
            "to finish, so some of its rows may already be written.",
            f"let job {job_id} finish (Setup > Bulk Data Load Jobs shows it), then run the write-back again: "
            "it reads the org's current values and sends only what is still missing.", job_id)


def bulk_csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
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
