"""Bulk API 2.0: query jobs (CSV result pages with `Sforce-Locator` and `Sforce-NumberOfRecords`) and
ingest jobs (upload, close, per-row results), with the job states and errors of a real org."""

from __future__ import annotations

import base64
import csv
import io
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sonora_pipeline.localorg.api import ApiContext, OrgApi
from sonora_pipeline.localorg.http import Request, Response
from sonora_pipeline.localorg.ids import make_id
from sonora_pipeline.localorg.soql import SoqlError, compile_query
from sonora_pipeline.localorg.soql.formats import rest_datetime as format_rest_datetime
from sonora_pipeline.localorg.soql.results import bulk_arrow as bulk_table
from sonora_pipeline.localorg.soql.results import render_csv
from sonora_pipeline.localorg.store import RecordError

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg

CSV_TYPE = "text/csv"
DEFAULT_MAX_RECORDS = 50_000
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = {"insert", "update", "upsert", "delete", "hardDelete"}


def _job_info(job: Any, job_type: str, extra: dict[str, Any]) -> dict[str, Any]:
    """JobInfo as Bulk API 2.0 answers it: the keys both kinds of job share, then the kind's own."""
    stamp = format_rest_datetime(job.created)
    body: dict[str, Any] = {
        "id": job.id, "operation": job.operation, "object": job.object, "createdById": job.created_by,
        "createdDate": stamp, "systemModstamp": stamp, "state": job.state, "concurrencyMode": "Parallel",
        "contentType": "CSV", "apiVersion": float(job.version), "jobType": job_type,
        "lineEnding": job.line_ending, "columnDelimiter": job.column_delimiter, **extra,
    }
    if job.error_message:
        body["errorMessage"] = job.error_message
    return body


@dataclass
class QueryJob:
    id: str
    operation: str
    object: str
    query: str
    version: str
    created_by: str
    created: datetime
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    state: str = "UploadComplete"
    table: pa.Table | None = None
    error_message: str | None = None
    polls: int = 0

    def info(self) -> dict[str, Any]:
        return _job_info(self, "V2Query", {
            "numberRecordsProcessed": self.table.num_rows if self.table is not None and self.state == "JobComplete" else 0,
            "retries": 0, "totalProcessingTime": 0, "isPkChunkingSupported": True,
        })


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    version: str
    created_by: str
    created: datetime
    external_id_field: str | None = None
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    state: str = "Open"
    data: bytes = b""
    header: list[str] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    error_message: str | None = None

    def info(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "contentUrl": f"services/data/v{self.version}/jobs/ingest/{self.id}/batches",
            "numberRecordsProcessed": len(self.successes) + len(self.failures),
            "numberRecordsFailed": len(self.failures), "retries": 0, "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
        }
        if self.external_id_field:
            extra["externalIdFieldName"] = self.external_id_field
        return _job_info(self, "V2Ingest", extra)


class BulkService:
    """All Bulk 2.0 jobs of one org."""

    def __init__(self, org: LocalOrg):
        self.org = org
        self.query_jobs: dict[str, QueryJob] = {}
        self.ingest_jobs: dict[str, IngestJob] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._batches = 0

    def new_job_id(self) -> str:
        with self._lock:
            self._counter += 1
            return make_id("750", self._counter, pod="5g0")

    def ingest_batches_used(self) -> int:
        return self._batches

    def count_batches(self, rows: int) -> None:
        with self._lock:
            self._batches += max(1, (rows + 9999) // 10000)


def register(api: OrgApi) -> None:
    api.route("POST", r"/jobs/query", create_query_job)
    api.route("GET", r"/jobs/query", list_query_jobs)
    api.route("GET", r"/jobs/query/(?P<job>750\w+)", get_query_job)
    api.route("PATCH", r"/jobs/query/(?P<job>750\w+)", abort_query_job)
    api.route("DELETE", r"/jobs/query/(?P<job>750\w+)", delete_query_job)
    api.route("GET", r"/jobs/query/(?P<job>750\w+)/results", query_results)
    api.route("POST", r"/jobs/ingest", create_ingest_job)
    api.route("GET", r"/jobs/ingest", list_ingest_jobs)
    api.route("GET", r"/jobs/ingest/(?P<job>750\w+)", get_ingest_job)
    api.route("PATCH", r"/jobs/ingest/(?P<job>750\w+)", patch_ingest_job)
    api.route("DELETE", r"/jobs/ingest/(?P<job>750\w+)", delete_ingest_job)
    api.route("PUT", r"/jobs/ingest/(?P<job>750\w+)/batches", upload_ingest_data)
    api.route("GET", r"/jobs/ingest/(?P<job>750\w+)/(?P<kind>successfulResults|failedResults|unprocessedrecords)",
              ingest_results)


def _body(request: Request) -> dict[str, Any] | Response:
    try:
        payload = request.json()
    except (ValueError, UnicodeDecodeError):
        return Response.error(400, "JSON_PARSER_ERROR", "Unexpected character in request body")
    if not isinstance(payload, dict):
        return Response.error(400, "JSON_PARSER_ERROR", "Request body must be a JSON object")
    return payload


def _options(payload: dict[str, Any]) -> tuple[str, str] | Response:
    delimiter = str(payload.get("columnDelimiter") or "COMMA").upper()
    line_ending = str(payload.get("lineEnding") or "LF").upper()
    content_type = str(payload.get("contentType") or "CSV").upper()
    if delimiter not in DELIMITERS:
        return Response.error(400, "INVALIDJOB", f"Invalid value for columnDelimiter: {delimiter}")
    if line_ending not in LINE_ENDINGS:
        return Response.error(400, "INVALIDJOB", f"Invalid value for lineEnding: {line_ending}")
    if content_type != "CSV":
        return Response.error(400, "INVALIDJOB", f"Invalid value for contentType: {content_type}")
    return delimiter, line_ending


# -- query jobs -----------------------------------------------------------------------------------------

def create_query_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    payload = _body(request)
    if isinstance(payload, Response):
        return payload
    operation = payload.get("operation")
    if operation not in ("query", "queryAll"):
        return Response.error(400, "INVALIDJOB", f"Invalid value for operation: {operation}")
    query = payload.get("query")
    if not isinstance(query, str) or not query.strip():
        return Response.error(400, "INVALIDJOB", "query is required")
    options = _options(payload)
    if isinstance(options, Response):
        return options
    if org.quota.bulk_jobs_used >= 10000:
        return Response.error(400, "LIMIT_EXCEEDED", "Max bulk v2 query jobs (10000) per 24 hrs has been reached")
    try:
        compiled = compile_query(query, org.catalog, include_deleted=operation == "queryAll",
                                 now=org.clock.now(), for_bulk=True)
    except SoqlError as err:
        return Response.error(err.status, err.error_code, err.message)
    org.quota.bulk_jobs_used += 1
    job = QueryJob(id=org.bulk.new_job_id(), operation=operation, object=compiled.object.name, query=query,
                   version=ctx.version, created_by=ctx.user_id, created=org.clock.now(),
                   column_delimiter=options[0], line_ending=options[1])
    if org.faults.take_bulk_failure():
        job.state = "Failed"
        job.error_message = "InternalServerError : Retried more than 15 times"
    else:
        cur = org.store.cursor()
        try:
            job.table = bulk_table(cur, compiled)
        finally:
            cur.close()
    org.bulk.query_jobs[job.id] = job
    created = job.info()
    created["state"] = "UploadComplete"
    for key in ("jobType", "numberRecordsProcessed", "retries", "totalProcessingTime", "isPkChunkingSupported",
                "errorMessage"):
        created.pop(key, None)
    return Response.json(200, created)


def _job(jobs: dict[str, Any], ctx: ApiContext) -> Any:
    """The job named by the route, or the org's 404 for an unknown or deleted job."""
    job = jobs.get(ctx.match.group("job"))
    if job is None:
        return Response.error(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def _query_job(org: LocalOrg, ctx: ApiContext) -> QueryJob | Response:
    return _job(org.bulk.query_jobs, ctx)


def get_query_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _query_job(org, ctx)
    if isinstance(job, Response):
        return job
    # A real job is queued, then runs. Ours ran at creation; the first poll reports it InProgress when the
    # org is slowed down, so clients that poll are exercised, and JobComplete otherwise.
    job.polls += 1
    if job.state == "UploadComplete":
        job.state = "InProgress" if org.faults.latency_seconds and job.polls == 1 else "JobComplete"
    elif job.state == "InProgress":
        job.state = "JobComplete"
    return Response.json(200, job.info())


def list_query_jobs(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    jobs = [j.info() for j in org.bulk.query_jobs.values()]
    return Response.json(200, {"done": True, "records": jobs[-1000:], "nextRecordsUrl": None})


def abort_query_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _query_job(org, ctx)
    if isinstance(job, Response):
        return job
    payload = _body(request)
    if isinstance(payload, Response):
        return payload
    if payload.get("state") != "Aborted":
        return Response.error(400, "INVALIDJOBSTATE", "Invalid state: only Aborted is allowed")
    if job.state in ("JobComplete", "Failed", "Aborted"):
        return Response.error(400, "INVALIDJOBSTATE", "Aborting already Completed Job not allowed")
    job.state = "Aborted"
    job.table = None
    return Response.json(200, job.info())


def delete_query_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _query_job(org, ctx)
    if isinstance(job, Response):
        return job
    if job.state not in ("JobComplete", "Failed", "Aborted"):
        job.state = "JobComplete" if job.table is not None else job.state
    if job.state not in ("JobComplete", "Failed", "Aborted"):
        return Response.error(400, "API_ERROR", "Error encountered when deleting the job because the job is not terminated")
    del org.bulk.query_jobs[job.id]
    return Response.empty(204)


def _decode_locator(locator: str | None) -> int | None:
    if locator in (None, ""):
        return 0
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.b64decode(padded).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def _encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode("ascii")).decode("ascii").rstrip("=")


def query_results(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _query_job(org, ctx)
    if isinstance(job, Response):
        return job
    if job.version != ctx.version:
        return Response.error(409, "API_VERSION_MISMATCH",
                              f"Job was created with API version {job.version}; use the same version for results")
    if job.state != "JobComplete" or job.table is None:
        return Response.error(400, "INVALIDJOBSTATE", f"Job {job.id} is not complete: state {job.state}")
    offset = _decode_locator(request.param("locator"))
    if offset is None or offset > job.table.num_rows:
        return Response.error(400, "INVALIDLOCATOR", "Invalid locator")
    max_records_text = request.param("maxRecords")
    try:
        max_records = int(max_records_text) if max_records_text else DEFAULT_MAX_RECORDS
        if max_records <= 0:
            raise ValueError
    except ValueError:
        return Response.error(400, "INVALIDPARAMETER", "maxRecords must be a positive integer")
    page = job.table.slice(offset, max_records)
    end = offset + page.num_rows
    body = render_csv(page, column_delimiter=job.column_delimiter, line_ending=job.line_ending,
                      nulls=org.csv_nulls)
    headers = {
        "Sforce-NumberOfRecords": str(page.num_rows),
        "Sforce-Locator": _encode_locator(end) if end < job.table.num_rows else "null",
    }
    return Response(200, body, "text/csv", headers)


# -- ingest jobs ----------------------------------------------------------------------------------------

def create_ingest_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    payload = _body(request)
    if isinstance(payload, Response):
        return payload
    operation = payload.get("operation")
    if operation not in INGEST_OPERATIONS:
        return Response.error(400, "INVALIDJOB", f"Invalid value for operation: {operation}")
    obj = org.catalog.object(str(payload.get("object") or ""))
    if obj is None:
        return Response.error(400, "INVALIDJOB", f"Entity '{payload.get('object')}' is not supported by the Bulk API.")
    external_id = payload.get("externalIdFieldName")
    if operation == "upsert":
        if not external_id:
            return Response.error(400, "INVALIDJOB", "External ID field name is required for upsert")
        if obj.field_named(str(external_id)) is None:
            return Response.error(400, "INVALIDJOB", f"Field name provided, {external_id} does not match an External ID, Salesforce Id, or indexed field for {obj.name}")
    options = _options(payload)
    if isinstance(options, Response):
        return options
    job = IngestJob(id=org.bulk.new_job_id(), object=obj.name, operation=operation, version=ctx.version,
                    created_by=ctx.user_id, created=org.clock.now(), external_id_field=external_id,
                    column_delimiter=options[0], line_ending=options[1])
    org.bulk.ingest_jobs[job.id] = job
    return Response.json(200, job.info())


def _ingest_job(org: LocalOrg, ctx: ApiContext) -> IngestJob | Response:
    return _job(org.bulk.ingest_jobs, ctx)


def list_ingest_jobs(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    return Response.json(200, {"done": True, "records": [j.info() for j in org.bulk.ingest_jobs.values()],
                               "nextRecordsUrl": None})


def get_ingest_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _ingest_job(org, ctx)
    if isinstance(job, Response):
        return job
    return Response.json(200, job.info())


def upload_ingest_data(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _ingest_job(org, ctx)
    if isinstance(job, Response):
        return job
    if job.state != "Open":
        return Response.error(400, "INVALIDJOBSTATE", f"Job state {job.state} does not allow uploads")
    if job.data:
        return Response.error(400, "INVALIDJOBSTATE", "Only one upload is allowed per job")
    if len(request.body) > 150 * 1024 * 1024:
        return Response.error(400, "INVALIDBATCH", "Request body exceeds the 150 MB limit")
    job.data = request.body
    return Response.empty(201)


def patch_ingest_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _ingest_job(org, ctx)
    if isinstance(job, Response):
        return job
    payload = _body(request)
    if isinstance(payload, Response):
        return payload
    state = payload.get("state")
    if state == "Aborted":
        if job.state not in ("Open", "UploadComplete", "InProgress"):
            return Response.error(400, "INVALIDJOBSTATE", "Aborting already Completed Job not allowed")
        job.state = "Aborted"
        return Response.json(200, job.info())
    if state != "UploadComplete":
        return Response.error(400, "INVALIDJOBSTATE", f"Invalid state transition to {state}")
    if job.state != "Open":
        return Response.error(400, "INVALIDJOBSTATE", f"Job state {job.state} cannot be closed")
    job.state = "UploadComplete"
    info = job.info()
    _process_ingest(org, job, ctx.user_id)
    return Response.json(200, info)


def _process_ingest(org: LocalOrg, job: IngestJob, user_id: str) -> None:
    """Apply each CSV row; per-row failures are recorded and the job still completes."""
    obj = org.catalog.object(job.object)
    assert obj is not None
    try:
        text = job.data.decode("utf-8-sig")
    except UnicodeDecodeError:
        job.state, job.error_message = "Failed", "InvalidBatch : Failed to parse CSV: invalid UTF-8"
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter])
    rows = list(reader)
    if not rows:
        job.state, job.error_message = "Failed", "InvalidBatch : Failed to parse CSV header: empty upload"
        return
    job.header = rows[0]
    for name in job.header:
        if obj.field_named(name) is None:
            job.state, job.error_message = "Failed", f"InvalidBatch : Field name not found : {name}"
            return
    if job.operation in ("delete", "hardDelete") and [h.lower() for h in job.header] != ["id"]:
        job.state, job.error_message = "Failed", "InvalidBatch : The 'delete' batch must contain only ids"
        return
    org.bulk.count_batches(len(rows) - 1)
    id_index = next((i for i, h in enumerate(job.header) if h.lower() == "id"), None)
    if job.operation == "update" and id_index is not None:
        _process_updates(org, job, rows[1:], id_index, user_id)
        job.state = "JobComplete"
        return
    for row in rows[1:]:
        if len(row) != len(job.header):
            job.failures.append(("", "INVALID_FIELD:Row has the wrong number of columns:--", row))
            continue
        values = _row_values(job, row)
        rid = row[id_index] if id_index is not None else ""
        try:
            rid, created = _apply_ingest_row(org, job, values, rid, user_id)
            job.successes.append((rid, created, row))
        except RecordError as err:
            fields = ":".join(err.fields) if err.fields else "--"
            job.failures.append((rid if job.operation != "insert" else "",
                                 f"{err.status_code}:{err.message}:{fields}", row))
    job.state = "JobComplete"


def _row_values(job: IngestJob, row: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in zip(job.header, row):
        if value == "" or name.lower() == "id":
            continue  # empty means "leave unchanged"
        values[name] = None if value == "#N/A" else value
    return values


def _process_updates(org: LocalOrg, job: IngestJob, rows: list[list[str]], id_index: int, user_id: str) -> None:
    """An `update` job applied as one batch (same per-row results as row by row, much faster)."""
    good = [row for row in rows if len(row) == len(job.header)]
    for row in rows:
        if len(row) != len(job.header):
            job.failures.append(("", "INVALID_FIELD:Row has the wrong number of columns:--", row))
    outcomes = org.store.update_many(job.object, [(row[id_index], _row_values(job, row)) for row in good],
                                     user_id=user_id)
    for row, outcome in zip(good, outcomes):
        if isinstance(outcome, RecordError):
            fields = ":".join(outcome.fields) if outcome.fields else "--"
            job.failures.append((row[id_index], f"{outcome.status_code}:{outcome.message}:{fields}", row))
        else:
            job.successes.append((outcome, False, row))


def _apply_ingest_row(org: LocalOrg, job: IngestJob, values: dict[str, Any], rid: str,
                      user_id: str) -> tuple[str, bool]:
    store = org.store
    if job.operation == "insert":
        return store.create(job.object, values, user_id=user_id), True
    if job.operation == "update":
        if not rid:
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
        store.update(job.object, rid, values, user_id=user_id)
        return store.get(job.object, rid)["Id"], False
    if job.operation == "delete":
        store.delete(job.object, rid, user_id=user_id)
        return store.get(job.object, rid, include_deleted=True)["Id"], False
    if job.operation == "hardDelete":
        full = store.get(job.object, rid, include_deleted=True)
        store.hard_delete(job.object, rid)
        return full["Id"] if full else rid, False
    # upsert
    key = job.external_id_field or "Id"
    if key.lower() == "id":
        if rid:
            store.update(job.object, rid, values, user_id=user_id)
            return store.get(job.object, rid)["Id"], False
        return store.create(job.object, values, user_id=user_id), True
    raise RecordError("INVALID_FIELD", f"Upsert by {key} is not supported by the local org", [key])


def ingest_results(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _ingest_job(org, ctx)
    if isinstance(job, Response):
        return job
    kind = ctx.match.group("kind").lower()
    if job.state not in ("JobComplete", "Failed", "Aborted"):
        return Response.error(400, "INVALIDJOBSTATE", f"Job {job.id} is not complete: state {job.state}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    quoted = lambda names: ",".join(f'"{n}"' for n in names)  # noqa: E731 - the sf__ headers are quoted
    if kind == "successfulresults":
        out.write(quoted(["sf__Id", "sf__Created"]) + ("," + ",".join(job.header) if job.header else "") + "\n")
        for rid, created, row in job.successes:
            writer.writerow([rid, "true" if created else "false", *row])
    elif kind == "failedresults":
        out.write(quoted(["sf__Id", "sf__Error"]) + ("," + ",".join(job.header) if job.header else "") + "\n")
        for rid, error, row in job.failures:
            writer.writerow([rid, error, *row])
    else:
        out.write(",".join(job.header) + "\n")
        for row in job.unprocessed:
            writer.writerow(row)
    return Response(200, out.getvalue().encode("utf-8"), CSV_TYPE)


def delete_ingest_job(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    job = _ingest_job(org, ctx)
    if isinstance(job, Response):
        return job
    if job.state in ("Open", "InProgress"):
        return Response.error(400, "API_ERROR", "Error encountered when deleting the job because the job is not terminated")
    del org.bulk.ingest_jobs[job.id]
    return Response.empty(204)


