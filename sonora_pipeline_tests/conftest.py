"""Shared fixtures: a local org served over real HTTPS on loopback, and HTTP sessions that trust its CA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from sonora_pipeline.localorg.org import LocalOrg

# The settings file is read when the Dagster definitions load: point it at the suite's own before that.
os.environ["SONORA_CONFIG"] = str(Path(__file__).parent / "fixtures" / "test-settings.yaml")
for _name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CONSUMER_KEY", "SALESFORCE_CONSUMER_SECRET",
              "SALESFORCE_CA_BUNDLE", "SONORA_AUTOMATION", "DAGSTER_HOME"):
    os.environ.pop(_name, None)


def trusting_session(org: LocalOrg) -> requests.Session:
    """A plain requests session that trusts the org's CA.

    `trust_env = False` because an environment REQUESTS_CA_BUNDLE would otherwise replace `verify`
    (psf/requests#3829) and simple-salesforce never passes `verify` per request.
    """
    session = requests.Session()
    session.verify = org.ca_bundle
    session.trust_env = False
    return session


@pytest.fixture(scope="session")
def shared_org(tmp_path_factory):
    """One read-mostly org for the whole run. Tests that change quota, faults, auth or clock use `org`."""
    org = LocalOrg(records=3000, seed=11, state_dir=tmp_path_factory.mktemp("shared-org")).start()
    yield org
    org.stop()


@pytest.fixture
def org(tmp_path):
    """A small org of the test's own, free to be broken."""
    org = LocalOrg(records=400, seed=3, state_dir=tmp_path / "org").start()
    yield org
    org.stop()


@pytest.fixture
def session_for():
    return trusting_session
