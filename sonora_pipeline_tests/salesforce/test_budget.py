"""ApiBudget: pacing at a share of the org's daily allowance, pausing on REQUEST_LIMIT_EXCEEDED, giving up
with QuotaExhausted, and — against the local org — a read that runs into the quota mid-way completes."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from sonora_pipeline.salesforce.budget import ApiBudget, parse_limit_info
from sonora_pipeline.salesforce.errors import QuotaExhausted
from sonora_pipeline_tests.salesforce.conftest import fast_client


class FakeTime:
    def __init__(self):
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def now(self) -> float:
        return self.t


def budget_with(clock: FakeTime, **kwargs) -> ApiBudget:
    kwargs.setdefault("log", logging.getLogger("test.budget"))
    return ApiBudget(sleep=clock.sleep, now=clock.now, **kwargs)


def test_parse_limit_info():
    assert parse_limit_info("api-usage=12/15000") == (12, 15000)
    assert parse_limit_info("api-usage=18/5000; per-app-api-usage=17/250(appName=sample-app)") == (18, 5000)
    assert parse_limit_info("per-app-api-usage=17/250(appName=x)") is None
    assert parse_limit_info(None) is None and parse_limit_info("garbage") is None


def test_calls_pass_freely_under_the_share():
    clock = FakeTime()
    budget = budget_with(clock, max_share=0.8, pause_poll_seconds=300)
    budget.before_call()  # nothing observed yet
    for used in range(1, 79):
        budget.observe(used, 100)
        budget.before_call()
    assert clock.sleeps == [] and budget.pauses == 0 and budget.calls_observed == 78
    budget.observe(79, 100)  # one call from the line: that call is kept for the probe that ends a pause
    budget.before_call()
    assert clock.sleeps == [300] and budget.pauses == 1


def test_over_the_share_one_probe_per_pause_until_usage_falls(caplog):
    clock = FakeTime()
    budget = budget_with(clock, max_share=0.8, pause_poll_seconds=300)
    budget.observe(80, 100)
    with caplog.at_level(logging.INFO, logger="test.budget"):
        budget.before_call()
    assert clock.sleeps == [300]  # paused, then this call is the probe
    assert "80/100" in caplog.text
    budget.observe(85, 100)       # the probe's answer: still over the line
    budget.before_call()
    assert clock.sleeps == [300, 300]
    budget.observe(10, 100)       # the window rolled over
    budget.before_call()
    assert clock.sleeps == [300, 300]
    assert budget.pauses == 2 and budget.seconds_paused == 600
    assert budget.snapshot()["used"] == 10


def test_limit_exceeded_warns_with_usage_and_resume_time_then_gives_up(caplog):
    clock = FakeTime()
    budget = budget_with(clock, pause_poll_seconds=300, max_pause_seconds=900)
    budget.observe(5000, 5000)
    with caplog.at_level(logging.WARNING, logger="test.budget"):
        for _ in range(3):
            budget.on_limit_exceeded()
        with pytest.raises(QuotaExhausted) as caught:
            budget.on_limit_exceeded()
    assert clock.sleeps == [300, 300, 300]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "5000/5000" in warnings[0] and "next try at about" in warnings[0] and "UTC" in warnings[0]
    assert "did not free up" in str(caught.value) and "5000/5000" in str(caught.value)
    assert "900" in str(caught.value)
    assert budget.limit_exceeded == 4 and budget.pauses == 3 and budget.seconds_paused == 900


def test_the_last_pause_is_cut_to_the_allowed_total():
    clock = FakeTime()
    budget = budget_with(clock, pause_poll_seconds=300, max_pause_seconds=400)
    budget.observe(100, 100)
    budget.on_limit_exceeded()
    budget.on_limit_exceeded()
    assert clock.sleeps == [300, 100]
    with pytest.raises(QuotaExhausted):
        budget.on_limit_exceeded()
    with pytest.raises(QuotaExhausted):  # and every other caller too: the allowance is spent
        budget.before_call()


def test_freeing_up_resets_the_pause_allowance():
    clock = FakeTime()
    budget = budget_with(clock, pause_poll_seconds=300, max_pause_seconds=300)
    budget.observe(100, 100)
    budget.on_limit_exceeded()
    budget.observe(3, 100)  # freed
    budget.observe(100, 100)
    budget.on_limit_exceeded()  # would raise had the allowance not been reset
    assert budget.pauses == 2


def test_limit_exceeded_without_a_header_still_pauses():
    clock = FakeTime()
    budget = budget_with(clock, pause_poll_seconds=5)
    budget.on_limit_exceeded()  # nothing observed: the refusal alone puts us over the line
    assert clock.sleeps == [5]
    budget.after_call()
    budget.before_call()  # still refused and nothing newer observed: pace again
    assert clock.sleeps == [5, 5]


def test_only_one_thread_probes_while_the_others_wait():
    budget = ApiBudget(max_share=0.8, pause_poll_seconds=0.2, log=logging.getLogger("test.budget"))
    budget.observe(90, 100)
    passed: list[float] = []
    lock = threading.Lock()

    def worker():
        budget.before_call()
        with lock:
            passed.append(time.monotonic())
        # the probe call's answer: the first one to get through reports the quota freed
        budget.observe(1, 100)
        budget.after_call()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(passed) == 8
    assert budget.pauses == 1  # one sleeper, not eight
    assert min(passed) - start >= 0.19
    assert budget.seconds_paused == pytest.approx(0.2)


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
