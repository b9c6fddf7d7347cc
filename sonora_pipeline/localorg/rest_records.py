"""REST resources about objects and single records: the resource map, /limits, describe global, sObject
describe and basic info, record get/create/update/delete, and the getUpdated/getDeleted feeds."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from sonora_pipeline.localorg import describe
from sonora_pipeline.localorg.api import ApiContext, OrgApi
from sonora_pipeline.localorg.http import Request, Response
from sonora_pipeline.localorg.ids import is_valid_id, to_18
from sonora_pipeline.localorg.queries import QueryFailure, fetch_records
from sonora_pipeline.localorg.soql.formats import rest_datetime as format_rest_datetime
from sonora_pipeline.localorg.store import RecordError

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg

NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")
_LIMITS_TEMPLATE = json.loads(
    resources.files("sonora_pipeline.localorg").joinpath("seed", "swiftly_limits.json").read_text("utf-8"))


def register(api: OrgApi) -> None:
    api.route("GET", r"", resource_map)
    api.route("GET", r"/limits", limits)
    api.route("GET", r"/sobjects", describe_global)
    api.route("GET", r"/sobjects/(?P<obj>\w+)", sobject_basic_info)
    api.route("POST", r"/sobjects/(?P<obj>\w+)", create_record)
    api.route("GET", r"/sobjects/(?P<obj>\w+)/describe", describe_sobject)
    api.route("GET", r"/sobjects/(?P<obj>\w+)/updated", updated_feed)
    api.route("GET", r"/sobjects/(?P<obj>\w+)/deleted", deleted_feed)
    api.route("GET", r"/sobjects/(?P<obj>\w+)/(?P<id>\w+)", get_record)
    api.route("PATCH", r"/sobjects/(?P<obj>\w+)/(?P<id>\w+)", update_record)
    api.route("DELETE", r"/sobjects/(?P<obj>\w+)/(?P<id>\w+)", delete_record)


def resource_map(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    base = f"/services/data/v{ctx.version}"
    names = ["tooling", "metadata", "eclair", "folders", "prechatForms", "contact-tracing", "jobs", "query",
             "tabs", "appMenu", "quickActions", "queryAll", "commerce", "wave", "iot", "analytics", "search",
             "identity", "composite", "parameterizedSearch", "fingerprint", "theme", "nouns", "domino", "event",
             "serviceTemplates", "recent", "connect", "licensing", "limits", "process", "async-queries",
             "dedupe", "asyncQueries", "sobjects", "actions", "support"]
    out = {n: f"{base}/{n}" for n in names}
    out["identity"] = f"{org.instance_url}/id/{org.org_id}/{ctx.user_id}"
    return Response.json(200, out)


def limits(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    """The recorded Developer Edition `/limits` answer, with the counters this org really keeps."""
    snap = org.quota.snapshot()
    body = copy.deepcopy(_LIMITS_TEMPLATE)
    body["DailyApiRequests"].update({"Max": snap.max, "Remaining": snap.remaining})
    jobs = body["DailyBulkV2QueryJobs"]
    jobs["Remaining"] = max(jobs["Max"] - org.quota.bulk_jobs_used, 0)
    batches = body["DailyBulkApiBatches"]
    batches["Remaining"] = max(batches["Max"] - org.bulk.ingest_batches_used(), 0)
    return Response.json(200, body)


def describe_global(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    return Response.json(200, describe.describe_global(org.catalog, ctx.version))


def sobject_basic_info(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    return Response.json(200, describe.basic_info(org.catalog, obj, ctx.version, []))


def describe_sobject(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    return Response.json(200, describe.describe_sobject(org.catalog, obj, ctx.version, org.instance_url))


def get_record(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    record_id = ctx.match.group("id")
    if not is_valid_id(record_id):
        return Response.error(404, *NOT_FOUND)
    wanted = request.param("fields")
    if wanted:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
    else:
        names = [f.name for f in org.catalog.readable_fields(obj)]
    soql = f"SELECT {', '.join(names)} FROM {obj.name} WHERE Id = '{to_18(record_id)}'"
    try:
        records = fetch_records(org, soql, include_deleted=False, version=ctx.version)
    except QueryFailure as failure:
        return failure.response()
    if not records:
        return Response.error(404, *NOT_FOUND)
    return Response.json(200, records[0])


def create_record(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    payload, bad = _json_object(request)
    if bad:
        return bad
    try:
        rid = org.store.create(obj.name, payload, user_id=ctx.user_id)
    except RecordError as err:
        return Response.error(400, err.status_code, err.message, err.fields)
    return Response.json(201, {"id": rid, "success": True, "errors": []},
                         headers={"Location": f"/services/data/v{ctx.version}/sobjects/{obj.name}/{rid}"})


def update_record(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    payload, bad = _json_object(request)
    if bad:
        return bad
    record_id = ctx.match.group("id")
    if org.store.get(obj.name, record_id, include_deleted=True) is None:
        return Response.error(404, *NOT_FOUND)
    try:
        org.store.update(obj.name, record_id, payload, user_id=ctx.user_id)
    except RecordError as err:
        return Response.error(400, err.status_code, err.message, err.fields)
    return Response.empty(204)


def delete_record(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    record_id = ctx.match.group("id")
    if org.store.get(obj.name, record_id, include_deleted=True) is None:
        return Response.error(404, *NOT_FOUND)
    try:
        org.store.delete(obj.name, record_id, user_id=ctx.user_id)
    except RecordError as err:
        return Response.error(404 if err.status_code == "ENTITY_IS_DELETED" else 400, err.status_code,
                              err.message, err.fields)
    return Response.empty(204)


def _json_object(request: Request) -> tuple[dict[str, Any], Response | None]:
    try:
        payload = request.json()
    except (ValueError, UnicodeDecodeError) as err:
        return {}, Response.error(400, "JSON_PARSER_ERROR", f"Unexpected character: {err}")
    if not isinstance(payload, dict):
        return {}, Response.error(400, "JSON_PARSER_ERROR",
                                  "Cannot deserialize instance of sObject from non-object value")
    return payload, None


# -- getUpdated / getDeleted --------------------------------------------------------------------------

def _parse_feed_time(text: str | None) -> datetime | None:
    if not text:
        return None
    t = text.strip().replace(" ", "+").replace("Z", "+00:00")
    if len(t) >= 5 and t[-5] in "+-" and t[-3] != ":":
        t = t[:-2] + ":" + t[-2:]
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(second=0, microsecond=0)  # seconds are ignored


def _feed_window(org: LocalOrg, request: Request, lookback: timedelta) -> tuple[datetime, datetime] | Response:
    start = _parse_feed_time(request.param("start"))
    end = _parse_feed_time(request.param("end"))
    if start is None or end is None:
        return Response.error(400, "INVALID_REPLICATION_DATE",
                              "startDate and endDate must be valid dateTime values (yyyy-MM-ddTHH:mm:ss+00:00)")
    if start >= end:
        return Response.error(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    now = org.clock.now().replace(second=0, microsecond=0)
    if start < now - lookback:
        return Response.error(400, "INVALID_REPLICATION_DATE",
                              f"startDate cannot be more than {lookback.days} days ago")
    return start, min(end, now)


def updated_feed(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    window = _feed_window(org, request, timedelta(days=30))
    if isinstance(window, Response):
        return window
    start, end = window
    ids = org.store.updated_ids(obj.name, start, end)
    if len(ids) > 600_000:
        return Response.error(400, "EXCEEDED_ID_LIMIT", "record limit reached. narrow the date range")
    return Response.json(200, {"ids": ids, "latestDateCovered": format_rest_datetime(end)})


def deleted_feed(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    window = _feed_window(org, request, timedelta(days=15))
    if isinstance(window, Response):
        return window
    start, end = window
    deleted = org.store.deleted_records(obj.name, start, end)
    earliest = org.clock.now().replace(second=0, microsecond=0) - timedelta(days=15)
    return Response.json(200, {
        "deletedRecords": [{"id": rid, "deletedDate": format_rest_datetime(when)} for rid, when in deleted],
        "earliestDateAvailable": format_rest_datetime(earliest),
        "latestDateCovered": format_rest_datetime(end),
    })
