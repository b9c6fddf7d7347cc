"""The change sensor's tick over many orgs is time-boxed: it stops asking new orgs when its time is up (inside
Dagster's sensor timeout) and the next tick starts with the orgs it left, so every org is asked in turn."""

from __future__ import annotations

import json
import threading
import time

from sonora_pipeline.defs.salesforce import org_changes
from sonora_pipeline.defs.salesforce.org_changes import OrgOutcome, check_orgs, next_start


def test_a_tick_stops_asking_when_its_time_is_up_and_the_next_starts_with_the_rest(monkeypatch):
    monkeypatch.setattr(org_changes, "TICK_BUDGET_SECONDS", 0.5)
    monkeypatch.setattr(org_changes, "PROBE_THREADS", 2)
    orgs = [f"org{i:02d}" for i in range(30)]
    asked: list[str] = []
    lock = threading.Lock()

    def check(org: str) -> OrgOutcome:
        time.sleep(0.1)
        with lock:
            asked.append(org)
        return OrgOutcome(org)

    started = time.monotonic()
    outcomes, unasked = check_orgs(orgs, check)
    assert time.monotonic() - started < 5  # not 30 × 0.1 s / 2 threads = 1.5 s at least, then some
    assert unasked, "every org was asked: the time box did not stop the tick"
    done = [o.org for o in outcomes]
    assert sorted(done) == sorted(asked) and done + unasked == orgs  # nothing asked twice or lost, order kept
    cursor = json.dumps({"paused": {}, "next": unasked[0]})
    start = next_start(cursor, orgs)
    assert (orgs[start:] + orgs[:start])[:len(unasked)] == unasked  # the next tick asks the rest first
    assert next_start(json.dumps({"paused": {}, "next": "gone"}), orgs) == 0  # an org since removed
    assert next_start(None, orgs) == 0


def test_a_tick_within_its_time_asks_every_org(monkeypatch):
    monkeypatch.setattr(org_changes, "PROBE_THREADS", 4)
    orgs = [f"org{i:02d}" for i in range(12)]
    outcomes, unasked = check_orgs(orgs, lambda org: OrgOutcome(org))
    assert [o.org for o in outcomes] == orgs and unasked == []
