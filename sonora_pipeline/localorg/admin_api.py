"""The org's controls over HTTP (`POST /__localorg/<control>` with a JSON body), for an org running in
another process: the demo, the CLI-started org, and tests that kill the syncing process.

Every call needs the `X-LocalOrg-Admin` header with the admin token the org printed at start. These paths
are not part of Salesforce's API and never count against the API quota.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sonora_pipeline.localorg.http import Request, Response
from sonora_pipeline.localorg.store import RecordError

if TYPE_CHECKING:
    from sonora_pipeline.localorg.org import LocalOrg


class AdminApi:
    def __init__(self, org: LocalOrg):
        self.org = org
        self._controls: dict[str, Callable[[dict[str, Any]], Any]] = {
            "state": lambda b: org.state(),
            "records/create": lambda b: {"id": org.create(b["object"], b["values"])},
            "records/update": lambda b: org.update(b["object"], b["id"], b.get("values", {}),
                                                   system_only=bool(b.get("system_only"))),
            "records/delete": lambda b: org.delete(b["object"], b["id"]),
            "records/undelete": lambda b: org.undelete(b["object"], b["id"]),
            "records/hard_delete": lambda b: org.hard_delete(b["object"], b["id"]),
            "clock/advance": lambda b: {"now": org.advance_clock(float(b["seconds"])).isoformat()},
            "clock/set": lambda b: {"now": org.set_clock(datetime.fromisoformat(b["now"])).isoformat()},
            "fields/add": lambda b: org.add_field(b["object"], b["name"], b["type"], b["label"],
                                                  **b.get("options", {})),
            "fields/revoke": lambda b: org.revoke_field_access(b["object"], b["field"]),
            "fields/grant": lambda b: org.grant_field_access(b["object"], b["field"]),
            "csv/nulls": lambda b: org.set_csv_nulls(b["form"]),
            "quota": lambda b: org.set_quota(b.get("daily_max"), b.get("window_seconds"), b.get("used")),
            "quota/reset": lambda b: org.reset_quota(),
            "faults": lambda b: org.set_faults(**b) and None,
            "faults/clear": lambda b: org.clear_faults(),
            "tokens/expire": lambda b: {"expired": org.expire_tokens()},
            "app": lambda b: org.configure_app(**b),
        }

    def handle(self, request: Request) -> Response:
        token = request.header("x-localorg-admin") or ""
        if not hmac.compare_digest(token, self.org.admin_token):
            return Response.json(401, {"error": "admin token missing or wrong (header X-LocalOrg-Admin)"})
        name = request.path[len("/__localorg/"):].strip("/")
        control = self._controls.get(name)
        if control is None:
            return Response.json(404, {"error": f"no control named {name!r}", "controls": sorted(self._controls)})
        try:
            body = request.json() if request.body else {}
            if not isinstance(body, dict):
                raise TypeError("body must be a JSON object")
            result = control(body)
        except RecordError as err:
            return Response.json(400, {"error": err.message, "statusCode": err.status_code})
        except (KeyError, TypeError, ValueError) as err:
            return Response.json(400, {"error": f"bad control request: {err!r}"})
        return Response.json(200, result if result is not None else {"ok": True})
