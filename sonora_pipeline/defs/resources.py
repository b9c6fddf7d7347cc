"""The resources every run gets: the Salesforce org (its token, HTTP session and API budget, kept for the run
and closed after it) and the warehouse. The SALESFORCE_* variables reach the org resource here, as Dagster
EnvVars (resolved in the run's process, never shown in the UI)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from sonora_pipeline.defs.orgs import OrgUnavailable, connection_for, registered, warehouse_path
from sonora_pipeline.mirror.lake import single_org_location
from sonora_pipeline.mirror.warehouse import Location
from sonora_pipeline.paths import checked_duckdb_path, duckdb_path
from sonora_pipeline.salesforce.budget import ApiBudget
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import DEFAULT_API_VERSION, OrgConnection
from sonora_pipeline.salesforce.environment import ENVIRONMENT, org_connection
from sonora_pipeline.salesforce.errors import ConfigError
from sonora_pipeline.salesforce.transport import OrgSession
from sonora_pipeline.settings import SettingsError, load_settings

# The change sensor's sessions, one per org, kept across ticks in the code server's process: a tick over
# 1,000 orgs otherwise paid, per org, a TLS handshake, a token request and a versions request before its one
# probe. Keyed by the connection's fingerprint: new credentials, URL or CA make a new session. Runs never use
# these (a run's session is its own and closed with it).
_PROBE_SESSIONS: dict[str, tuple[str, OrgSession]] = {}
_PROBE_LOCK = threading.Lock()


def _fingerprint(connection: OrgConnection) -> str:
    parts = (connection.instance_url, connection.consumer_key, connection.consumer_secret,
             connection.ca_bundle or "", connection.api_version)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def probe_session(org: str, connection: OrgConnection) -> OrgSession:
    """The org's session for sensor probes: the one kept from earlier ticks if its connection is the same."""
    key = _fingerprint(connection)
    with _PROBE_LOCK:
        held = _PROBE_SESSIONS.get(org)
        if held is not None and held[0] == key:
            return held[1]
        if held is not None:
            held[1].close()
        session = OrgSession(connection)
        _PROBE_SESSIONS[org] = (key, session)
        return session


def forget_probe_sessions(keep: set[str]) -> None:
    """Close the kept sessions of orgs no longer registered."""
    with _PROBE_LOCK:
        for org in [o for o in _PROBE_SESSIONS if o not in keep]:
            _PROBE_SESSIONS.pop(org)[1].close()


class SalesforceResource(dg.ConfigurableResource):
    """An org reached through an External Client App (OAuth 2.0 client credentials).

    For one run (or sensor tick) it holds one HTTP session, one access token and one API budget: every
    `client()` of the run shares them, and they are closed when the run ends. `local` reaches the running local
    demo org (`sonora-pipeline localorg`); an empty URL is an error that names the variable and both fixes,
    never a quiet fallback to the demo org."""

    instance_url: str = Field(default="", description="The org's My Domain URL, e.g. https://acme.my.salesforce.com; "
                                                      "'local': the running local demo org")
    consumer_key: str = Field(default="", description="The External Client App's consumer key")
    consumer_secret: str = Field(default="", description="The External Client App's consumer secret (never logged)")
    api_version: str = Field(default=DEFAULT_API_VERSION, description="REST API version, e.g. 62.0")
    ca_bundle: str = Field(default="", description="CA bundle to trust (the local org's); empty: the system store")
    max_quota_share: float | None = Field(default=None, gt=0, le=1, description=(
        "Share of the org's daily API allowance the pipeline may use; empty: sync.max_quota_share of the "
        "settings file, read when the run starts"))
    quota_pause_seconds: float | None = Field(default=None, gt=0, description=(
        "Pause while usage is over that share; empty: sync.quota_pause_seconds of the settings file"))

    _session: OrgSession | None = PrivateAttr(default=None)
    _budget: ApiBudget | None = PrivateAttr(default=None)
    # With a registry (SONORA_ORGS): one session and one budget per org, from that org's own entry, secrets,
    # settings and Sforce-Limit-Info; one org's refusal never touches another's.
    _org_sessions: dict[str, OrgSession] = PrivateAttr(default_factory=dict)
    _org_budgets: dict[str, ApiBudget] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # The budget now; the session (and its token) at the first client(), so that a missing or wrong URL
        # fails the step that needs the org, with its reason, and a sensor tick skips saying why. A mistake in
        # the settings file is left to the run's or the tick's own read of it, which reports it with its line
        # and fix before any client is asked for (a resource that failed here would show a traceback).
        with contextlib.suppress(SettingsError):
            self._budget = self._new_budget(context.log)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the run's HTTP session (its token goes with it)."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
            for org, session in self._org_sessions.items():
                if _PROBE_SESSIONS.get(org, (None, None))[1] is not session:  # those outlive the tick
                    session.close()
            self._org_sessions.clear()
            self._org_budgets.clear()

    def connection(self) -> OrgConnection:
        return org_connection(self.instance_url, self.consumer_key, self.consumer_secret,
                              api_version=self.api_version, ca_bundle=self.ca_bundle).validate()

    def client(self, log=None, *, fail_fast: bool = False, org: str | None = None) -> SalesforceClient:
        """A client over the run's shared session, token and budget (its own call count, for metadata).

        `fail_fast`: for a sensor tick, which must end within Dagster's sensor timeout (60 s): short timeouts,
        one retry, and a quota pause raises `QuotaPaused` instead of waiting. `org`: a registered org (its
        own session and budget); None: the org of the SALESFORCE_* variables."""
        quick = dict(max_attempts=2, max_backoff_seconds=2.0, timeout=(3.0, 10.0), wait_for_quota=False)
        if org is not None:
            session, budget = self._org_session(org, log, probe=fail_fast)
            return SalesforceClient(session, budget, log=log, **(quick if fail_fast else {}))
        with self._lock:
            if self._session is None:
                self._session = OrgSession(self.connection(), log=log)
            if self._budget is None:
                self._budget = self._new_budget(log)
            elif log is not None:
                self._budget.log = log
            session, budget = self._session, self._budget
        return SalesforceClient(session, budget, log=log, **(quick if fail_fast else {}))

    def _org_session(self, org: str, log, *, probe: bool = False) -> tuple[OrgSession, ApiBudget]:
        """The org's session and budget, made at its first client of the run (or tick). Its entry, secrets
        and settings are read then; a problem raises `ConfigError` with the reason (no secret in it). A sensor
        probe (`probe`) uses the org's session kept across ticks (`probe_session`); its budget is the tick's."""
        with self._lock:
            if org not in self._org_budgets:
                try:
                    entry = registered(org)
                except OrgUnavailable as err:
                    raise ConfigError(str(err)) from None
                connection = connection_for(entry)
                self._org_budgets[org] = self._new_budget(log, entry.settings_path)
                self._org_sessions[org] = (probe_session(org, connection) if probe
                                           else OrgSession(connection, log=log))
            elif log is not None:
                self._org_budgets[org].log = log
            return self._org_sessions[org], self._org_budgets[org]

    def _new_budget(self, log, settings_path: Path | None = None) -> ApiBudget:
        share, pause = self.max_quota_share, self.quota_pause_seconds
        if share is None or pause is None:
            sync = load_settings(settings_path).sync  # the file as it is now: an edit counts from the next run on
            share = sync.max_quota_share if share is None else share
            pause = sync.quota_pause_seconds if pause is None else pause
        return ApiBudget(max_share=share, pause_poll_seconds=pause, log=log)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file the mirror and the customer model live in.

    Writers go through `sonora_pipeline.mirror.warehouse.write_connection` rather than dagster-duckdb's
    DuckDBResource: DuckDB allows one writing process, and besides retrying the connect (which
    DuckDBResource does for about 100 s) our writers queue on a file lock across processes and hold
    the database only for their commit."""

    path: str = Field(default="", description="DuckDB file; empty: SONORA_DUCKDB_PATH or data/warehouse.duckdb")

    def db_path(self, org: str | None = None) -> Location:
        """The org's own file with a registry (`<warehouse_root>/<org>/warehouse.duckdb`), or its catalog in the
        registry's `ducklake:`; else the one file, or the lake of SONORA_DUCKLAKE_CATALOG."""
        if org is not None:
            return warehouse_path(org)
        return single_org_location(checked_duckdb_path(Path(self.path)) if self.path else duckdb_path())


def salesforce_resource() -> SalesforceResource:
    """From the SALESFORCE_* variables that are set. Unset URL: a resource whose every use fails with the
    reason and the fix (the definitions still load, the sensor skips saying why). `local`: the running local
    org, through its credentials file."""
    return SalesforceResource(**{field: dg.EnvVar(name) for field, name in ENVIRONMENT.items()
                                 if os.environ.get(name, "").strip()})


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={
        "salesforce": salesforce_resource(),
        "warehouse": WarehouseResource(),
    })


