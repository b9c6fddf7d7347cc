"""REST `query` and `queryAll`, and their `nextRecordsUrl` pages (which say /query/ even for queryAll)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sonora_pipeline.localorg.api import ApiContext, OrgApi
from sonora_pipeline.localorg.http import Request, Response
from sonora_pipeline.localorg.queries import QueryFailure, batch_size_from

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg


def register(api: OrgApi) -> None:
    api.route("GET", r"/query", lambda org, req, ctx: _query(org, req, ctx, include_deleted=False))
    api.route("GET", r"/queryAll", lambda org, req, ctx: _query(org, req, ctx, include_deleted=True))
    api.route("GET", r"/query(All)?/(?P<locator>01g[\w]+-\d+)", _next_page)


def _query(org: LocalOrg, request: Request, ctx: ApiContext, *, include_deleted: bool) -> Response:
    soql = request.param("q")
    if soql is None or not soql.strip():
        return Response.error(400, "MALFORMED_QUERY", "A query string must be provided.")
    try:
        page = org.queries.first_page(soql, include_deleted=include_deleted, version=ctx.version,
                                      batch_size=batch_size_from(request.header("sforce-query-options")))
    except QueryFailure as failure:
        return failure.response()
    return Response.json(200, page)


def _next_page(org: LocalOrg, request: Request, ctx: ApiContext) -> Response:
    try:
        page = org.queries.next_page(ctx.match.group("locator"), version=ctx.version,
                                     batch_size=batch_size_from(request.header("sforce-query-options")))
    except QueryFailure as failure:
        return failure.response()
    return Response.json(200, page)
