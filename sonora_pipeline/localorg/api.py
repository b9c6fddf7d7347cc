"""The org's HTTP API: routing plus the cross-cutting rules every real org applies to each request
(API version, authentication, API-enabled user, daily quota and the `Sforce-Limit-Info` header).

Each resource family lives in its own module (`rest_*.py`, `bulk_api.py`, `admin_api.py`); this module
only decides who handles a request and whether it may be handled at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sonora_pipeline.localorg.auth import OAuthError
from sonora_pipeline.localorg.http import Request, Response

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg

MIN_VERSION = 31.0
MAX_VERSION = 67.0
RELEASES = {
    31: "Summer '14", 32: "Winter '15", 33: "Spring '15", 34: "Summer '15", 35: "Winter '16", 36: "Spring '16",
    37: "Summer '16", 38: "Winter '17", 39: "Spring '17", 40: "Summer '17", 41: "Winter '18", 42: "Spring '18",
    43: "Summer '18", 44: "Winter '19", 45: "Spring '19", 46: "Summer '19", 47: "Winter '20", 48: "Spring '20",
    49: "Summer '20", 50: "Winter '21", 51: "Spring '21", 52: "Summer '21", 53: "Winter '22", 54: "Spring '22",
    55: "Summer '22", 56: "Winter '23", 57: "Spring '23", 58: "Summer '23", 59: "Winter '24", 60: "Spring '24",
    61: "Summer '24", 62: "Winter '25", 63: "Spring '25", 64: "Summer '25", 65: "Winter '26", 66: "Spring '26",
    67: "Summer '26",
}
_VERSIONED = re.compile(r"^/services/data/v(\d+\.\d+)(/.*)?$")

Handler = Callable[["LocalOrg", Request, "ApiContext"], Response]


class ApiContext:
    """What a handler knows about the call: API version, acting user, the rest of the path."""

    def __init__(self, version: str, user_id: str, rest: str):
        self.version = version
        self.user_id = user_id
        self.rest = rest  # path after /services/data/vXX.X, without trailing slash
        self.match: re.Match[str] | None = None  # the route's match (named groups: obj, id, job, ...)
        self.obj: Any = None  # the sObject named by the route's `obj` group, resolved by the router


def versions_list() -> list[dict[str, str]]:
    return [
        {"label": RELEASES[v], "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
        for v in range(int(MIN_VERSION), int(MAX_VERSION) + 1)
    ]


class OrgApi:
    """Dispatches requests to resource handlers registered by path pattern."""

    def __init__(self, org: LocalOrg):
        self.org = org
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$", re.IGNORECASE), handler))

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/__localorg/"):
            return self.org.admin.handle(request)
        if path.rstrip("/") == "/services/oauth2/token":
            return self._token(request)
        if path.rstrip("/") in ("/services/data", ""):
            return Response.json(200, versions_list())
        match = _VERSIONED.match(path)
        if not match:
            if path.startswith("/services/data/latest"):
                return Response.json(200, versions_list()[-1])
            return Response.error(404, "NOT_FOUND", "The requested resource does not exist")
        version = match.group(1)
        rest = (match.group(2) or "").rstrip("/")
        vnum = float(version)
        if vnum < MIN_VERSION:
            return Response.error(410, "GONE", f"The requested API version v{version} is no longer supported.")
        if vnum > MAX_VERSION:
            return Response.error(404, "NOT_FOUND", "The requested resource does not exist")
        user_id = self.org.authority.user_for(request.header("authorization"))
        if user_id is None:
            return Response.error(401, "INVALID_SESSION_ID", "Session expired or invalid",
                                  headers={"WWW-Authenticate": "Token"})
        if user_id in self.org.authority.api_disabled_users:
            return Response.error(403, "API_DISABLED_FOR_ORG", "The REST API is not enabled for this Organization.")
        if not self.org.quota.try_spend():
            return Response.error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.",
                                  headers={"Sforce-Limit-Info": self.org.quota.header()})
        response = self._dispatch(request, ApiContext(version, user_id, rest))
        response.headers.setdefault("Sforce-Limit-Info", self.org.quota.header())
        return response

    def _dispatch(self, request: Request, ctx: ApiContext) -> Response:
        allowed = False
        for method, pattern, handler in self._routes:
            m = pattern.match(ctx.rest)
            if not m:
                continue
            if method != request.method:
                allowed = True
                continue
            ctx.match = m
            if "obj" in m.groupdict():  # every /sobjects/{Object}/... resource: unknown objects are a 404
                ctx.obj = self.org.catalog.object(m.group("obj"))
                if ctx.obj is None:
                    return Response.error(404, "NOT_FOUND", "The requested resource does not exist")
            return handler(self.org, request, ctx)
        if allowed:
            return Response.error(405, "METHOD_NOT_ALLOWED",
                                  f"HTTP Method '{request.method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE")
        return Response.error(404, "NOT_FOUND", "The requested resource does not exist")

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.json(400, {"error": "invalid_request", "error_description": "must use HTTP POST"})
        try:
            raw = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raw = ""
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        for k, v in request.query.items():  # some clients put the grant in the query string
            form.setdefault(k, v[0])
        try:
            payload = self.org.authority.token_response(form, request.header("authorization"),
                                                        self.org.instance_url)
        except OAuthError as err:
            return Response.json(err.status, err.body())
        return Response.json(200, payload)
