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


# -- the proof suites' counts, printed at the end of every run ---------------------------------------------------

PROOF_MARKERS = {
    "sigkill_trial": "SIGKILL trials (sync or write-back killed, run again: same result as an unbroken run)",
    "fault": "injected faults (result equals a clean run)",
    "bad_input": "bad inputs (named message, nothing written)",
    "secret_canary": "secret canary runs (no leak anywhere)",
    "ui": "Dagster UI runs in headless Chromium",
}


def pytest_terminal_summary(terminalreporter):
    """Print how many trials, faults and bad inputs were proven, so CI logs carry the figures."""
    outcomes: dict[str, tuple[str, object]] = {}
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if outcome == "passed" and report.when != "call":
                continue
            if outcomes.get(report.nodeid, ("passed",))[0] == "passed":
                outcomes[report.nodeid] = (outcome, report.keywords)
    terminalreporter.section("proof under pressure")
    for name, label in PROOF_MARKERS.items():
        marked = [outcome for outcome, keywords in outcomes.values() if name in keywords]
        failed = len(marked) - marked.count("passed")
        terminalreporter.write_line(f"{marked.count('passed'):>4} {label}" + (f", {failed} FAILED" if failed else ""))
