"""ApiBudget's arithmetic on a fake clock: pacing at a share of the org's daily allowance, pausing on
REQUEST_LIMIT_EXCEEDED, giving up with QuotaExhausted, and the no-wait mode of the change sensor."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from sonora_pipeline.salesforce.budget import ApiBudget, parse_limit_info
from sonora_pipeline.salesforce.errors import QuotaExhausted, QuotaPaused


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
    assert parse_limit_info("") is None
    assert parse_limit_info("per-app-api-usage=17/250(appName=x); api-usage=3/100") == (3, 100)  # either order


@pytest.mark.parametrize(("share", "used", "over"), [
    (0.8, 78, False),   # 78 + this call + the probe's call = 80: still at the line, not over it
    (0.8, 79, True),
    (0.5, 48, False),
    (0.5, 49, True),
    (1.0, 98, False),   # a share of 100 %: two calls short of the org's own limit
    (1.0, 99, True),
])
def test_the_line_keeps_room_for_the_call_and_one_probe(share, used, over):
    budget = budget_with(FakeTime(), max_share=share)
    assert budget.threshold is None and not budget.over_share  # nothing observed: calls go
    budget.observe(used, 100)
    assert budget.threshold == pytest.approx(share * 100)
    assert budget.over_share is over


def test_header_observation_ignores_what_it_cannot_read():
    budget = budget_with(FakeTime())
    assert budget.observe_header("per-app-api-usage=1/2") is False and budget.used is None
    assert budget.observe_header("api-usage=7/50") is True and (budget.used, budget.max) == (7, 50)


def test_a_share_outside_zero_to_one_is_refused():
    for share in (0, -0.1, 1.01):
        with pytest.raises(ValueError, match="max_share"):
            ApiBudget(max_share=share)


def test_no_wait_mode_raises_at_once_and_probes_once_per_pause():
    """The change sensor never sleeps: over the line it gets QuotaPaused saying when usage is checked again,
    and once `pause_poll_seconds` have passed since the org was last heard, one call goes out as the probe."""
    clock = FakeTime()
    clock.t = 1000.0  # a monotonic clock is never 0 (at 0, `_paused_error`'s `heard_at or now` reads "never heard")
    budget = budget_with(clock, max_share=0.8, pause_poll_seconds=300)
    budget.observe(79, 100)
    with pytest.raises(QuotaPaused) as caught:
        budget.before_call(wait=False)
    assert "usage 79/100 is at or above the pipeline's share (80%)" in caught.value.message
    assert "checked again in about 300 s" in caught.value.message
    clock.t += 120
    with pytest.raises(QuotaPaused, match="about 180 s"):
        budget.before_call(wait=False)
    clock.t += 180
    budget.before_call(wait=False)  # the probe
    budget.observe(85, 100)         # its answer: still over, heard just now
    budget.after_call()
    with pytest.raises(QuotaPaused, match="about 300 s"):
        budget.before_call(wait=False)
    assert clock.sleeps == [] and budget.pauses == 0  # never slept
    budget.observe(10, 100)
    budget.before_call(wait=False)


def test_a_refusal_in_no_wait_mode_raises_and_holds_until_a_usage_is_observed():
    clock = FakeTime()
    budget = budget_with(clock, pause_poll_seconds=300)
    with pytest.raises(QuotaPaused, match="Salesforce refused the call: API limit exceeded"):
        budget.on_limit_exceeded(5000, 5000, wait=False)
    assert budget.over_share and budget.limit_exceeded == 1 and (budget.used, budget.max) == (5000, 5000)
    budget.observe(100, 5000)  # a later answer with room: the refusal no longer holds
    assert not budget.over_share


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
