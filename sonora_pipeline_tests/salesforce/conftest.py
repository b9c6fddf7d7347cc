"""Fixtures for the Salesforce client tests: connections to a local org over HTTPS, clients with tiny
backoffs (so retry paths run in milliseconds), and an org whose consumer secret is a canary string that
must never show up in an error, a repr or a log line."""

from __future__ import annotations

import pytest

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


@pytest.fixture
def big_org(tmp_path):
    """An org of the test's own with enough rows for several REST pages of 200 (Contact ~500, Task ~500)."""
    org = LocalOrg(records=2000, seed=5, state_dir=tmp_path / "big-org").start()
    yield org
    org.stop()


@pytest.fixture
def canary_org(tmp_path):
    """A small org whose consumer secret is CANARY_SECRET."""
    org = LocalOrg(records=50, seed=2, state_dir=tmp_path / "canary-org", consumer_secret=CANARY_SECRET).start()
    yield org
    org.stop()
