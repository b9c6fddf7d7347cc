"""sObject Collections (`/composite/sobjects`, up to 200 records, `allOrNone`) and composite batch
(`/composite/batch`, up to 25 independent subrequests)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sonora_pipeline.localorg.api import ApiContext, OrgApi
from sonora_pipeline.localorg.http import Request, Response
from sonora_pipeline.localorg.queries import QueryFailure, fetch_records
from sonora_pipeline.localorg.store import RecordError

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg

MAX_COLLECTION = 200
MAX_BATCH = 25
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}


def register(api: OrgApi) -> None:
    api.route("PATCH", r"/composite/sobjects", update_collection)
    api.route("POST", r"/composite/sobjects", create_collection)
    api.route("DELETE", r"/composite/sobjects", delete_collection)
    api.route("GET", r"/composite/sobjects/(?P<obj>\w+)", retrieve_collection)
    api.route("POST", r"/composite/batch", composite_batch)


def _collection_body(request: Request) -> tuple[list[dict[str, Any]], bool] | Response:
    try:
        payload = request.json()
    except (ValueError, UnicodeDecodeError):
        return Response.error(400, "JSON_PARSER_ERROR", "Unexpected character in request body")
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        return Response.error(400, "JSON_PARSER_ERROR", "Cannot deserialize request: 'records' must be a list")
    records = payload["records"]
    if len(records) > MAX_COLLECTION:
        return Response.error(400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded. Max allowed: {MAX_COLLECTION}")
    return records, bool(payload.get("allOrNone", False))


def _type_of(org: LocalOrg, record: Any) -> str:
    """The record's sObject from `attributes.type`, or the SaveResult error a real org gives without one."""
    attributes = record.get("attributes") if isinstance(record, dict) else None
    obj = org.catalog.object(attributes["type"]) if isinstance(attributes, dict) and isinstance(
        attributes.get("type"), str) else None
    if obj is None:
        raise RecordError("INVALID_TYPE", "Must send a concrete entity type.", [])
    return obj.name


def _apply_all(org: LocalOrg, records: list[Any], all_or_none: bool, apply) -> list[dict[str, Any]]:
    """Run `apply(record) -> id` for each record, in order; on allOrNone failure undo the successes."""
    results: list[dict[str, Any]] = []
    with org.store.write_lock:
        org.store.conn.execute("BEGIN TRANSACTION") if all_or_none else None
        failed = False
        for record in records:
            try:
                rid = apply(record)
                results.append({"id": rid, "success": True, "errors": []})
            except RecordError as err:
                failed = True
                item: dict[str, Any] = {"success": False, "errors": [err.as_error()]}
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    item = {"id": record["id"], **item}
                results.append(item)
        if all_or_none:
            if failed:
                org.store.conn.execute("ROLLBACK")
                results = [r if not r["success"] else {"id": r.get("id"), "success": False,
                                                       "errors": [dict(ROLLED_BACK)]} for r in results]
            else:
                org.store.conn.execute("COMMIT")
    return results


def _update_as_one_batch(org: LocalOrg, records: list[Any], user_id: str | None) -> list[dict[str, Any]] | None:
    """allOrNone false and one sObject type with string Ids: the store's batch update (same per-record rules
    and errors, one write). Like a real org, the request lands as a whole, and fast; None when it does not fit."""
    try:
        types = {_type_of(org, r) for r in records}
    except RecordError:
        return None
    if len(types) != 1 or not all(isinstance(r.get("id") or r.get("Id"), str) for r in records):
        return None
    items = [(r.get("id") or r.get("Id"), {k: v for k, v in r.items() if k not in ("attributes", "id", "Id")})
             for r in records]
    outcomes = org.store.update_many(types.pop(), items, user_id=user_id)
    return [{"id": o, "success": True, "errors": []} if isinstance(o, str)
            else {"id": rid, "success": False, "errors": [o.as_error()]} for (rid, _), o in zip(items, outcomes)]


def update_collection(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    parsed = _collection_body(request)
    if isinstance(parsed, Response):
        return parsed
    records, all_or_none = parsed
    if not all_or_none and records:
        batch = _update_as_one_batch(org, records, ctx.user_id)
        if batch is not None:
            return Response.json(200, batch)

    def apply(record: Any) -> str:
        obj_name = _type_of(org, record)
        rid = record.get("id") or record.get("Id")
        if not isinstance(rid, str):
            raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
        values = {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}
        org.store.update(obj_name, rid, values, user_id=ctx.user_id)
        return org.store.get(obj_name, rid)["Id"]

    return Response.json(200, _apply_all(org, records, all_or_none, apply))


def create_collection(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    parsed = _collection_body(request)
    if isinstance(parsed, Response):
        return parsed
    records, all_or_none = parsed

    def apply(record: Any) -> str:
        obj_name = _type_of(org, record)
        if record.get("id") or record.get("Id"):
            raise RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        values = {k: v for k, v in record.items() if k != "attributes"}
        return org.store.create(obj_name, values, user_id=ctx.user_id)

    return Response.json(200, _apply_all(org, records, all_or_none, apply))


def delete_collection(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    ids = [i for i in (request.param("ids") or "").split(",") if i]
    if not ids:
        return Response.error(400, "REQUIRED_FIELD_MISSING", "At least 1 Id is required.")
    if len(ids) > MAX_COLLECTION:
        return Response.error(400, "EXCEEDED_ID_LIMIT", f"Record limit exceeded. Max allowed: {MAX_COLLECTION}")
    all_or_none = (request.param("allOrNone") or "false").lower() == "true"

    def apply(rid: str) -> str:
        obj = org.catalog.object_for_prefix(rid[:3])
        if obj is None:
            raise RecordError("MALFORMED_ID", f"malformed id {rid}", [])
        org.store.delete(obj.name, rid, user_id=ctx.user_id)
        return org.store.get(obj.name, rid, include_deleted=True)["Id"]

    results = _apply_all(org, ids, all_or_none, apply)
    for rid, result in zip(ids, results):
        result.setdefault("id", rid)
    return Response.json(200, results)


def retrieve_collection(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    obj = ctx.obj
    ids = [i for i in (request.param("ids") or "").split(",") if i]
    fields = [f for f in (request.param("fields") or "").split(",") if f]
    if not ids or not fields:
        return Response.error(400, "MISSING_ARGUMENT", "ids and fields are required")
    quoted = ", ".join("'" + i.replace("'", "") + "'" for i in ids)
    try:
        records = fetch_records(org, f"SELECT {', '.join(fields)} FROM {obj.name} WHERE Id IN ({quoted})",
                                include_deleted=False, version=ctx.version)
    except QueryFailure as failure:
        return failure.response()
    by_id = {r["Id"][:15]: r for r in records if "Id" in r}
    return Response.json(200, [by_id.get(i[:15]) for i in ids])


def composite_batch(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    try:
        payload = request.json()
        subrequests = payload["batchRequests"]
        assert isinstance(subrequests, list)
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        return Response.error(400, "JSON_PARSER_ERROR", "Cannot deserialize request: batchRequests is required")
    if len(subrequests) > MAX_BATCH:
        return Response.error(400, "INVALID_BATCH_REQUEST", f"A batch can contain up to {MAX_BATCH} requests")
    halt = bool(payload.get("haltOnError", False))
    results: list[dict[str, Any]] = []
    has_errors = False
    for sub in subrequests:
        if halt and has_errors:
            results.append({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED",
                                                            "message": "Batch processing halted per request"}]})
            continue
        response = _run_subrequest(org, request, ctx, sub)
        body: Any = json.loads(response.body) if response.body else None
        if response.status >= 400:
            has_errors = True
        results.append({"statusCode": response.status, "result": body})
    return Response.json(200, {"hasErrors": has_errors, "results": results})


def _run_subrequest(org: LocalOrg, request: Request, ctx: ApiContext, sub: Any) -> Response:
    from urllib.parse import parse_qs, urlsplit

    from sonora_pipeline.localorg.api import ApiContext as Ctx
    from sonora_pipeline.localorg.http import Request as Req

    if not isinstance(sub, dict) or not isinstance(sub.get("url"), str) or not isinstance(sub.get("method"), str):
        return Response.error(400, "INVALID_BATCH_REQUEST", "Each batch request needs a method and a url")
    split = urlsplit(sub["url"].lstrip("/"))
    path = split.path
    if path.startswith("services/data/"):
        path = path[len("services/data/"):]
    version, _, rest = path.partition("/")
    if not version.startswith("v"):
        return Response.error(400, "INVALID_BATCH_REQUEST", f"Invalid url: {sub['url']}")
    body = sub.get("richInput")
    inner = Req(method=sub["method"].upper(), path=f"/services/data/{version}/{rest}",
                query=parse_qs(split.query, keep_blank_values=True), headers=dict(request.headers),
                body=json.dumps(body).encode() if body is not None else b"")
    return org.api._dispatch(inner, Ctx(version[1:], ctx.user_id, "/" + rest.rstrip("/")))
