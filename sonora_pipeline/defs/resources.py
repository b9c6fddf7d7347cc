"""The only place that reads credentials: the Salesforce connection, its API budget, and the warehouse."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dagster as dg
from pydantic import Field

from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.paths import checked_duckdb_path, duckdb_path
from sonora_pipeline.salesforce.budget import ApiBudget
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import (
    DEFAULT_API_VERSION,
    ENV_CONSUMER_KEY,
    ENV_CONSUMER_SECRET,
    ENV_INSTANCE_URL,
    LOCAL_ORG_URL,
    OrgConnection,
    unset_url_error,
)

_BUDGETS: dict[str, ApiBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(instance_url: str, log=None) -> ApiBudget:
    """One budget per org and process: every client in this process paces against the same numbers."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(instance_url)
        if budget is None:
            budget = _BUDGETS[instance_url] = ApiBudget(
                max_share=SETTINGS.sync.max_quota_share, pause_poll_seconds=SETTINGS.sync.quota_pause_seconds,
                log=log)
        elif log is not None:
            budget.log = log
        return budget


class SalesforceResource(dg.ConfigurableResource):
    """An org reached through an External Client App (OAuth 2.0 client credentials).

    `local` reaches the running local demo org (`sonora-pipeline localorg`); an empty URL is an error that
    names the variable and both fixes, never a quiet fallback to the demo org."""

    instance_url: str = Field(default="", description="The org's My Domain URL, e.g. https://acme.my.salesforce.com; "
                                                      "'local': the running local demo org")
    consumer_key: str = Field(default="", description="The External Client App's consumer key")
    consumer_secret: str = Field(default="", description="The External Client App's consumer secret (never logged)")
    api_version: str = Field(default=DEFAULT_API_VERSION, description="REST API version, e.g. 62.0")
    ca_bundle: str = Field(default="", description="CA bundle to trust (the local org's); empty: the system store")

    def connection(self) -> OrgConnection:
        url = (self.instance_url or "").strip()
        if not url:
            raise unset_url_error()
        if url.lower() == LOCAL_ORG_URL:
            from sonora_pipeline.localorg.runtime import local_org_connection

            return local_org_connection(self.api_version)
        connection = OrgConnection(instance_url=self.instance_url, consumer_key=self.consumer_key,
                                   consumer_secret=self.consumer_secret, api_version=self.api_version,
                                   ca_bundle=self.ca_bundle or None)
        connection.validate()
        return connection

    def client(self, log=None, *, fail_fast: bool = False) -> SalesforceClient:
        """`fail_fast`: for a sensor tick, which must end within Dagster's sensor timeout (60 s): short
        timeouts, one retry, and a quota pause raises `QuotaPaused` instead of waiting."""
        connection = self.connection()
        quick = dict(max_attempts=2, max_backoff_seconds=2.0, timeout=(3.0, 10.0), wait_for_quota=False)
        return SalesforceClient(connection, shared_budget(connection.instance_url, log), log=log,
                                **(quick if fail_fast else {}))


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file the mirror and the customer model live in.

    Writers go through `sonora_pipeline.mirror.warehouse.write_connection` rather than dagster-duckdb's
    DuckDBResource: DuckDB allows one writing process, and besides retrying the connect (which
    DuckDBResource does for about 100 s) our writers queue on a file lock across processes and hold
    the database only for their commit."""

    path: str = Field(default="", description="DuckDB file; empty: SONORA_DUCKDB_PATH or data/warehouse.duckdb")

    def db_path(self) -> Path:
        return checked_duckdb_path(Path(self.path)) if self.path else duckdb_path()


def salesforce_resource() -> SalesforceResource:
    """From the SALESFORCE_* variables. Unset URL: a resource whose every use fails with the reason and the fix
    (the definitions still load, the sensor skips saying why). `local`: the running local org."""
    url = os.environ.get(ENV_INSTANCE_URL, "").strip()
    if url and url.lower() != LOCAL_ORG_URL:
        return SalesforceResource(
            instance_url=dg.EnvVar(ENV_INSTANCE_URL),
            consumer_key=dg.EnvVar(ENV_CONSUMER_KEY),
            consumer_secret=dg.EnvVar(ENV_CONSUMER_SECRET),
            ca_bundle=os.environ.get("SALESFORCE_CA_BUNDLE", ""),
        )
    return SalesforceResource(instance_url=url)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={
        "salesforce": salesforce_resource(),
        "warehouse": WarehouseResource(),
    })


