"""Helpers for the Salesforce client tests: connections to a local org over HTTPS, clients with tiny backoffs
(so retry paths run in milliseconds), and the canary consumer secret that must never show up in an error, a
repr or a log line. The orgs (`big_org`, `canary_org`) come from the suite's one factory, in ../conftest.py."""

from __future__ import annotations

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.salesforce.budget import ApiBudget
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import OrgConnection

CANARY_SECRET = "CANARY0SECRET0DO0NOT0LEAK0" + "7F3A9C" * 6


def connection_for(org: LocalOrg, **overrides) -> OrgConnection:
    creds = org.credentials
    values = dict(instance_url=creds.instance_url, consumer_key=creds.consumer_key,
                  consumer_secret=creds.consumer_secret, ca_bundle=creds.ca_bundle)
    values.update(overrides)
    return OrgConnection(**values)


def fast_client(org: LocalOrg, budget: ApiBudget | None = None, **kwargs) -> SalesforceClient:
    """A client whose retries and Bulk polls wait milliseconds, not seconds."""
    kwargs.setdefault("min_backoff_seconds", 0.001)
    kwargs.setdefault("max_backoff_seconds", 0.01)
    kwargs.setdefault("bulk_poll_seconds", (0.001, 0.01))
    connection = kwargs.pop("connection", None) or connection_for(org)
    return SalesforceClient(connection, budget, **kwargs)
