"""ApiBudget against the local org: a read that runs into the quota mid-way pauses and completes, pacing holds
the share with a short org window, and a quota that never frees fails with QuotaExhausted. Its arithmetic on a
fake clock is in unit/test_budget.py."""

from __future__ import annotations

import logging

import pytest

from sonora_pipeline.salesforce.budget import ApiBudget
from sonora_pipeline.salesforce.errors import QuotaExhausted
from sonora_pipeline_tests.salesforce.conftest import fast_client

# -- against the local org ----------------------------------------------------------------------------

def _ids(pages):
    return [r["Id"] for page in pages for r in page]


def test_quota_exhausted_mid_read_pauses_then_completes(big_org, caplog):
    org = big_org
    clean = _ids(fast_client(org).query_pages("SELECT Id FROM Contact ORDER BY Id", batch_size=200))
    assert len(clean) > 400
    budget = ApiBudget(pause_poll_seconds=0.5, max_pause_seconds=30, log=logging.getLogger("test.budget"))
    client = fast_client(org, budget)
    org.reset_quota()  # the 2 s window starts now
    pages = client.query_pages("SELECT Id FROM Contact ORDER BY Id", batch_size=200)
    got = [r["Id"] for r in next(pages)]
    used = org.quota.snapshot().used
    org.set_quota(daily_max=used + 5, window_seconds=2, used=used + 5)  # spent: the next call is refused
    with caplog.at_level(logging.WARNING, logger="test.budget"):
        for page in pages:
            got.extend(r["Id"] for r in page)
    assert got == clean
    assert budget.limit_exceeded >= 1 and budget.pauses >= 1 and budget.seconds_paused >= 0.5
    assert "API limit exceeded" in caplog.text and f"{used + 5}/{used + 5}" in caplog.text


def test_pacing_at_the_share_with_a_short_org_window(big_org):
    org = big_org
    clean = _ids(fast_client(org).query_pages("SELECT Id FROM Task ORDER BY Id", batch_size=200))
    budget = ApiBudget(max_share=0.5, pause_poll_seconds=0.5, max_pause_seconds=30)
    client = fast_client(org, budget)
    client.tokens.token()
    org.reset_quota()
    org.set_quota(daily_max=4, window_seconds=2)  # the share is 2 calls per 2 s window
    got = _ids(client.query_pages("SELECT Id FROM Task ORDER BY Id", batch_size=200))
    assert got == clean
    assert budget.pauses >= 1
    assert budget.calls_observed == client.api_calls  # every answer carried the usage header


def test_quota_that_never_frees_fails_with_quota_exhausted(org):
    budget = ApiBudget(pause_poll_seconds=0.05, max_pause_seconds=0.2)
    client = fast_client(org, budget)
    client.tokens.token()
    used = org.quota.snapshot().used
    org.set_quota(daily_max=used, used=used)
    with pytest.raises(QuotaExhausted) as caught:
        client.count("SELECT COUNT() FROM Account")
    assert "did not free up" in str(caught.value)
    assert budget.limit_exceeded >= 2 and budget.seconds_paused == pytest.approx(0.2)
