"""`LocalOrg`: one Salesforce-compatible org — metadata, records, auth, quota, faults — served over HTTPS.

Tests and the demo drive it through the control methods here (in process) or the same controls over HTTP
(`/__localorg/...`, see `admin_api.py`) when the org runs in another process.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sonora_pipeline.localorg import bulk_api, rest_composite, rest_query, rest_records
from sonora_pipeline.localorg.admin_api import AdminApi
from sonora_pipeline.localorg.api import OrgApi
from sonora_pipeline.localorg.auth import Authority, ClientApp
from sonora_pipeline.localorg.bulk_api import BulkService
from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.faults import FaultPlan
from sonora_pipeline.localorg.http import HttpsServer, Request, Response, SharedAcceptor
from sonora_pipeline.localorg.ids import make_id
from sonora_pipeline.localorg.limits import ApiQuota
from sonora_pipeline.localorg.queries import QueryService
from sonora_pipeline.localorg.schema import Catalog, build_standard_catalog, without_custom_fields
from sonora_pipeline.localorg.soql.results import CSV_NULL_FORMS
from sonora_pipeline.localorg.store import OrgStore
from sonora_pipeline.localorg.store_fork import fork_store
from sonora_pipeline.localorg.tls import LocalTls

log = logging.getLogger(__name__)

DEFAULT_DAILY_API_REQUESTS = 100_000


@dataclass(frozen=True)
class Credentials:
    """What a client needs to connect; printed by `sonora-pipeline localorg` as one JSON line."""

    instance_url: str
    consumer_key: str
    consumer_secret: str
    refresh_token: str
    ca_bundle: str
    admin_token: str

    def as_dict(self) -> dict[str, str]:
        return {
            "instance_url": self.instance_url, "consumer_key": self.consumer_key,
            "consumer_secret": self.consumer_secret, "refresh_token": self.refresh_token,
            "ca_bundle": self.ca_bundle, "admin_token": self.admin_token,
        }

    def as_environment(self) -> dict[str, str]:
        """The pipeline's environment variables for this org (what `SalesforceResource` reads)."""
        return {"SALESFORCE_INSTANCE_URL": self.instance_url, "SALESFORCE_CONSUMER_KEY": self.consumer_key,
                "SALESFORCE_CONSUMER_SECRET": self.consumer_secret, "SALESFORCE_CA_BUNDLE": self.ca_bundle}


class LocalOrg:
    def __init__(self, *, records: int = 500, seed: int = 7, now: datetime | None = None,
                 daily_api_requests: int = DEFAULT_DAILY_API_REQUESTS, state_dir: Path | None = None,
                 consumer_key: str | None = None, consumer_secret: str | None = None,
                 catalog: Catalog | None = None, generate: bool = True, shape: str = "b2b",
                 org_id: str | None = None, custom_fields: bool = True, csv_nulls: str = "empty",
                 hidden_fields: dict[str, list[str]] | None = None, records_of: LocalOrg | None = None):
        """Org varieties, so tests meet orgs unlike the demo: `custom_fields=False` is a fresh org's schema
        (standard objects and fields only); `csv_nulls` writes Bulk CSV nulls as empty fields ("empty") or
        as `""` ("quoted"); `hidden_fields` ({"Account": ["AnnualRevenue"]}) are fields the run-as user
        cannot read (field-level security). `records_of`: start with that (never served, never written)
        org's schema and records instead of generating them, sharing its database until this org's first
        write (a fleet's many orgs of one shape; `records`, `seed`, `shape`, `custom_fields` are then its)."""
        # An org id of its own per start, as two real orgs have: a warehouse synced from one refuses another.
        self.org_id = org_id or make_id("00D", 1 + secrets.randbelow(62 ** 9 - 1), pod="5g0")
        self.clock = OrgClock(now)
        if records_of is not None:
            self.catalog = records_of.catalog.fork()
        else:
            self.catalog = catalog or build_standard_catalog()
            if not custom_fields:
                self.catalog = without_custom_fields(self.catalog)
        self.set_csv_nulls(csv_nulls)
        for object_name, field_names in (hidden_fields or {}).items():
            for field_name in field_names:
                self._hide(object_name, field_name)
        if records_of is not None:
            self.store = fork_store(records_of.store, self.catalog, self.clock)
            generate = False
        else:
            self.store = OrgStore(self.catalog, self.clock)
        self.quota = ApiQuota(self.clock, daily_max=daily_api_requests)
        self.faults = FaultPlan()
        # Its TLS files (the CA clients trust): in `state_dir` when given (the caller's to keep or remove),
        # else in a temp folder of its own, made at start() and removed at stop() or when the process exits.
        self.state_dir = state_dir
        self._own_dir: weakref.finalize | None = None
        self.admin_token = secrets.token_urlsafe(24)
        app = ClientApp(
            consumer_key=consumer_key or "3MVG9" + secrets.token_urlsafe(60).replace("-", "A").replace("_", "b")[:80],
            consumer_secret=consumer_secret or secrets.token_hex(32).upper(),
        )
        self.authority = Authority(self.org_id, app)
        self.generated = records_of.generated if records_of is not None else None
        if self.generated is not None:
            app.run_as_user_id = self.generated.run_as_user_id
        if generate:
            from sonora_pipeline.localorg.generator import generate_org

            # at exactly `now` when given (not the clock's reading a few ms later), so a pinned org is the same
            # org byte for byte on every start
            self.generated = generate_org(self.store, records, seed=seed, now=now or self.clock.now(),
                                          shape=shape)
            app.run_as_user_id = self.generated.run_as_user_id
        self.refresh_token = self.authority.new_refresh_token()
        self.queries = QueryService(self)
        self.bulk = BulkService(self)
        self.api = OrgApi(self)
        for module in (rest_records, rest_query, rest_composite, bulk_api):
            module.register(self.api)
        self.admin = AdminApi(self)
        self._server: HttpsServer | None = None
        self._tls: LocalTls | None = None
        self.instance_url = "https://127.0.0.1"

    # -- serving ----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        return self.api.handle(request)

    def decide_fault(self, path: str) -> str | None:
        if path.startswith("/__localorg/"):
            return None
        if self.faults.expire_tokens_now(path):
            self.expire_tokens()
        return self.faults.decide(path)

    def latency(self, path: str) -> float:
        if path.startswith("/__localorg/"):
            return 0.0  # controls answer at once, like decide_fault's
        return self.faults.delay(path)

    def corruption(self, path: str, content_type: str | None) -> str | None:
        return self.faults.corruption(path, content_type)

    def now_timestamp(self) -> float:
        return self.clock.now().timestamp()

    def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: LocalTls | None = None,
              acceptor: SharedAcceptor | None = None) -> LocalOrg:
        """Serve in a background thread; returns self so `org = LocalOrg(...).start()` reads well. A fleet
        passes its shared CA (`tls`) and accepting thread (`acceptor`) instead (see `fleet.py`)."""
        if tls is not None:
            self._tls = tls
        else:
            if self.state_dir is None or self._own_dir is not None:
                self.state_dir = Path(tempfile.mkdtemp(prefix="sonora-localorg-"))
                self._own_dir = weakref.finalize(self, shutil.rmtree, self.state_dir, ignore_errors=True)
            self._tls = LocalTls(self.state_dir)
        self._server = HttpsServer(self, self._tls.server_context(), host=host, port=port)
        shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        self.instance_url = f"https://{shown_host}:{self._server.port}"
        self._server.start(acceptor)
        log.log(logging.DEBUG if acceptor else logging.INFO, "local org serving at %s", self.instance_url)
        return self

    def stop(self) -> None:
        """Stop serving; a temp folder of its own goes with it (its CA is no use to anyone after)."""
        if self._server:
            self._server.stop()
            self._server = None
        if self._own_dir is not None:
            self._own_dir()  # runs once: removes the folder and detaches the exit hook

    def __enter__(self) -> LocalOrg:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def ca_bundle(self) -> str:
        if self._tls is None:
            raise RuntimeError("the local org is not serving yet: call start()")
        return str(self._tls.ca_bundle)

    @property
    def credentials(self) -> Credentials:
        return Credentials(
            instance_url=self.instance_url, consumer_key=self.authority.app.consumer_key,
            consumer_secret=self.authority.app.consumer_secret, refresh_token=self.refresh_token,
            ca_bundle=self.ca_bundle, admin_token=self.admin_token,
        )

    # -- controls: records ------------------------------------------------------------------------------
    def create(self, object_name: str, values: dict[str, Any]) -> str:
        return self.store.create(object_name, values)

    def update(self, object_name: str, record_id: str, values: dict[str, Any], *, system_only: bool = False) -> None:
        self.store.update(object_name, record_id, values, system_only=system_only)

    def delete(self, object_name: str, record_id: str) -> None:
        self.store.delete(object_name, record_id)

    def undelete(self, object_name: str, record_id: str) -> None:
        self.store.undelete(object_name, record_id)

    def hard_delete(self, object_name: str, record_id: str) -> None:
        self.store.hard_delete(object_name, record_id)

    # -- controls: time, metadata, access ---------------------------------------------------------------
    def advance_clock(self, seconds: float) -> datetime:
        return self.clock.advance(timedelta(seconds=seconds))

    def set_clock(self, when: datetime) -> datetime:
        return self.clock.set(when)

    def add_field(self, object_name: str, name: str, field_type: str, label: str, **kwargs: Any) -> None:
        self.store.add_column(object_name, self.catalog.field_factory.make(name, field_type, label, **kwargs))

    def revoke_field_access(self, object_name: str, field_name: str) -> None:
        self.catalog.revoke_read(object_name, field_name)

    def grant_field_access(self, object_name: str, field_name: str) -> None:
        self.catalog.grant_read(object_name, field_name)

    def _hide(self, object_name: str, field_name: str) -> None:
        try:
            self.catalog.revoke_read(object_name, field_name)
        except KeyError:
            raise ValueError(f"the local org has no field {object_name}.{field_name} to hide. Fix: name a field "
                             f"it has (custom fields are absent with standard fields only), for example "
                             f"Account.AnnualRevenue") from None

    def set_csv_nulls(self, form: str) -> None:
        """How Bulk CSV results write a null: "empty" (an empty field) or "quoted" (`""`)."""
        if form not in CSV_NULL_FORMS:
            raise ValueError(f"csv_nulls must be one of {', '.join(CSV_NULL_FORMS)}, not {form!r}. Fix: use "
                             "'empty' (nulls as empty fields) or 'quoted' (nulls as \"\")")
        self.csv_nulls = form

    def add_validation_rule(self, object_name: str, field_name: str, rule: Any) -> None:
        """`rule(value, row) -> message | None`; a message fails the write with FIELD_CUSTOM_VALIDATION_EXCEPTION."""
        self.store.validation_rules[(object_name, field_name)] = rule

    # -- controls: auth, quota, faults ------------------------------------------------------------------
    def configure_app(self, *, client_credentials_enabled: bool | None = None, run_as_user: bool | None = None,
                      api_enabled: bool | None = None, rotate_secret: bool = False) -> None:
        app = self.authority.app
        if client_credentials_enabled is not None:
            app.client_credentials_enabled = client_credentials_enabled
        if run_as_user is not None:
            app.run_as_user_id = self.generated.run_as_user_id if run_as_user and self.generated else None
        if api_enabled is not None and self.generated:
            users = self.authority.api_disabled_users
            (users.discard if api_enabled else users.add)(self.generated.run_as_user_id)
        if rotate_secret:
            app.consumer_secret = secrets.token_hex(32).upper()

    def expire_tokens(self) -> int:
        return self.authority.expire_all()

    def set_quota(self, daily_max: int | None = None, window_seconds: float | None = None,
                  used: int | None = None) -> None:
        self.quota.configure(daily_max=daily_max, window_seconds=window_seconds, used=used)

    def reset_quota(self) -> None:
        self.quota.reset()

    def set_faults(self, **settings: Any) -> FaultPlan:
        seed = settings.pop("seed", self.faults.seed)
        plan = FaultPlan(seed=seed, **settings)
        self.faults = plan
        return plan

    def clear_faults(self) -> None:
        self.faults = FaultPlan()

    def state(self) -> dict[str, Any]:
        snap = self.quota.snapshot()
        return {
            "org_id": self.org_id,
            "instance_url": self.instance_url,
            "clock": self.clock.now().astimezone(UTC).isoformat(),
            "api_usage": {"used": snap.used, "max": snap.max, "resets_at": snap.window_resets_at.isoformat()},
            "records": {o.name: self.store.count(o.name) for o in self.catalog.objects()},
            "csv_nulls": self.csv_nulls,
        }
