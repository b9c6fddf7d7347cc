"""Touchpoints are done, planned or overdue as of the build's time, and engagement counts only what is done.

The org's clock and the model's `now` are pinned (a March day of 2026), so the test means the same on any
day it runs. Expectations are computed in Python from the org's own records, not from the model's SQL."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.model.build import build_all
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.conftest import trusting_session
from sonora_pipeline_tests.model.helpers import mirrored_org, org_rows, query, sync_into
from sonora_pipeline_tests.suite_settings import suite_settings
from sonora_pipeline_tests.sync.helpers import client_for, log

PINNED = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
API = "v62.0"


def local_pinned(start, db: Path, *, records: int, seed: int, **options) -> LocalOrg:
    """`start` (the `local_org_factory` fixture) an org whose clock reads PINNED, mirrored into `db`."""
    org = start(records=records, seed=seed, now=PINNED, **options)
    org.advance_clock(8)
    sync_into(org, db, SyncSettings().objects)
    return org


def sync_tasks(org: LocalOrg, db: Path) -> None:
    """The sync's incremental read of Task: the last two hours of changes, up to the org's time."""
    end = org.clock.now()
    sync_object(client_for(org), db, "Task", SyncSettings(initial_import="all", lag_seconds=5),
                window=(end - timedelta(hours=2), end), partition_key=None, run_id="touch-test", log=log)


def org_now(org: LocalOrg) -> datetime:
    """The org's time as the model takes it: naive UTC."""
    return org.clock.now().astimezone(UTC).replace(tzinfo=None)


def build(db: Path, now: datetime) -> None:
    with duckdb.connect(str(db)) as conn:
        build_all(conn, suite_settings(), now.date(), now)


def midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, datetime.min.time())


def naive(ts: datetime | None) -> datetime | None:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts is not None and ts.tzinfo else ts


def expected_touchpoints(org: LocalOrg, now: datetime) -> dict[str, dict]:
    """{Id: state, occurred_at, planned_at, kind, customer} of every live Task and Event, by the documented
    rule: a closed task is done at its completion; an open one is overdue once its due day has passed,
    planned before; an event is done once it has ended (an all-day one with its last day)."""
    customers = {a["Id"] for a in org_rows(org, "Account") if not a["IsDeleted"]}
    out: dict[str, dict] = {}
    for t in org_rows(org, "Task"):
        if t["IsDeleted"]:
            continue
        due = midnight(t["ActivityDate"])
        if t["IsClosed"]:
            row = {"state": "done", "occurred_at": naive(t["CompletedDateTime"]), "planned_at": None}
        elif t["ActivityDate"] is not None and t["ActivityDate"] < now.date():
            row = {"state": "overdue", "occurred_at": None, "planned_at": due}
        else:
            row = {"state": "planned", "occurred_at": None, "planned_at": due}
        account = t["AccountId"] or (t["WhatId"] if (t["WhatId"] or "").startswith("001") else None)
        out[t["Id"]] = {**row, "kind": "task", "customer": account if account in customers else None}
    for e in org_rows(org, "Event"):
        if e["IsDeleted"]:
            continue
        start = naive(e["StartDateTime"])
        end = midnight(e["EndDate"]) + timedelta(days=1) if e["IsAllDayEvent"] else naive(e["EndDateTime"])
        row = ({"state": "done", "occurred_at": start, "planned_at": None} if end <= now
               else {"state": "planned", "occurred_at": None, "planned_at": start})
        out[e["Id"]] = {**row, "kind": "event", "customer": e["AccountId"] if e["AccountId"] in customers else None}
    return out


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    db = tmp_path_factory.mktemp("touch-model") / "m.duckdb"
    with mirrored_org(tmp_path_factory.mktemp("touch-org"), db, records=1500, seed=13, now=PINNED) as org:
        now = org_now(org)
        build(db, now)
        yield org, db, now


def test_every_touchpoint_is_done_planned_or_overdue_by_the_rule(mirrored):
    org, db, now = mirrored
    expected = expected_touchpoints(org, now)
    got = {r[0]: {"state": r[1], "occurred_at": r[2], "planned_at": r[3]}
           for r in query(db, "SELECT touchpoint_id, state, occurred_at, planned_at FROM sonora.touchpoints")}
    assert set(got) == set(expected)
    for tid, row in got.items():
        want = expected[tid]
        assert row == {k: want[k] for k in row}, tid
    states = Counter(r["state"] for r in expected.values())
    assert states["done"] and states["planned"] and states["overdue"], states
    # The org has what made the issue: open tasks due after today, meetings still ahead, tasks closed early.
    assert any(r["kind"] == "task" and r["state"] == "planned" and r["planned_at"] > now for r in expected.values())
    assert any(r["kind"] == "event" and r["state"] == "planned" and r["planned_at"] > now for r in expected.values())
    closed_early = [t for t in org_rows(org, "Task") if t["IsClosed"] and t["ActivityDate"] and t["ActivityDate"] > now.date()]
    assert closed_early and all(got[t["Id"]]["state"] == "done" for t in closed_early if t["Id"] in got)


def test_no_touchpoint_counted_in_engagement_is_in_the_future(mirrored):
    org, db, now = mirrored
    assert query(db, "SELECT count(*) FROM sonora.touchpoints WHERE occurred_at > ?", [now])[0][0] == 0
    assert query(db, "SELECT count(*) FROM sonora.touchpoints WHERE state <> 'done' AND occurred_at IS NOT NULL")[0][0] == 0
    assert query(db, "SELECT count(*) FROM sonora.touchpoints WHERE state = 'done' AND planned_at IS NOT NULL")[0][0] == 0
    undated = query(db, "SELECT count(*) FROM sonora.touchpoints WHERE state <> 'done' AND planned_at IS NULL "
                        "AND touchpoint_id NOT IN (SELECT \"Id\" FROM salesforce.task WHERE \"ActivityDate\" IS NULL)")
    assert undated[0][0] == 0  # only a to-do without a due date has no planned_at
    assert query(db, "SELECT count(*) FROM sonora.engagement_signals WHERE last_touch_at > ?", [now])[0][0] == 0
    assert query(db, "SELECT count(*) FROM sonora.engagement_signals WHERE last_touch_at IS NOT NULL")[0][0] > 0


def test_engagement_counts_completed_activity_and_next_touch_is_the_earliest_planned(mirrored):
    org, db, now = mirrored
    today = now.date()
    expected = expected_touchpoints(org, now)
    last, nxt = {}, {}
    touches_90d, meetings_90d, ever, overdue = Counter(), Counter(), Counter(), Counter()
    people_90d = defaultdict(set)
    whos = {r["Id"]: r["WhoId"] for name in ("Task", "Event") for r in org_rows(org, name)}
    contacts = {c["Id"] for c in org_rows(org, "Contact") if not c["IsDeleted"]}
    for tid, r in expected.items():
        cu = r["customer"]
        if cu is None:
            continue
        if r["state"] == "done" and r["occurred_at"] <= now:
            ever[cu] += 1
            last[cu] = max(last.get(cu, r["occurred_at"]), r["occurred_at"])
            if r["occurred_at"].date() > today - timedelta(days=90):
                touches_90d[cu] += 1
                meetings_90d[cu] += r["kind"] == "event"
                if whos[tid] in contacts:
                    people_90d[cu].add(whos[tid])
        elif r["state"] == "planned" and r["planned_at"] is not None:
            nxt[cu] = min(nxt.get(cu, r["planned_at"]), r["planned_at"])
        elif r["state"] == "overdue":
            overdue[cu] += 1
    got = {r[0]: r[1:] for r in query(db, "SELECT customer_id, last_touch_at, next_touch_at, touches_90d, meetings_90d, "
                                          "touches_ever, overdue_tasks, active_people_90d FROM sonora.engagement_signals")}
    for cu, row in got.items():
        assert row == (last.get(cu), nxt.get(cu), touches_90d[cu], meetings_90d[cu], ever[cu], overdue[cu],
                       len(people_90d[cu])), cu
    assert sum(1 for v in got.values() if v[1] is not None and v[1] > now) > 0
    assert sum(overdue.values()) > 0
    renewals = query(db, "SELECT r.next_touch_at IS NOT DISTINCT FROM s.next_touch_at "
                         "AND r.last_touch_at IS NOT DISTINCT FROM s.last_touch_at AND r.overdue_tasks = s.overdue_tasks "
                         "FROM sonora.renewals r JOIN sonora.engagement_signals s USING (customer_id)")
    assert renewals and all(r[0] for r in renewals)


def _api(org: LocalOrg):
    session = trusting_session(org)
    token = session.post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(org.credentials.consumer_key, org.credentials.consumer_secret)).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    return session, f"{org.instance_url}/services/data/{API}/sobjects"


def test_a_planned_task_completed_later_becomes_a_touch_on_the_next_build(tmp_path, local_org_factory):
    db = tmp_path / "m.duckdb"
    org = local_pinned(local_org_factory, db, records=400, seed=3)
    now = org_now(org)
    build(db, now)
    customer = query(db, "SELECT customer_id FROM sonora.engagement_signals WHERE next_touch_at IS NULL "
                         "ORDER BY customer_id LIMIT 1")[0][0]
    before = query(db, "SELECT touches_ever, last_touch_at FROM sonora.engagement_signals WHERE customer_id = ?",
                   [customer])[0]
    due = now.date() + timedelta(days=3)
    session, sobjects = _api(org)
    reply = session.post(f"{sobjects}/Task", json={"Subject": "Renewal prep call", "Status": "Not Started",
                                                    "ActivityDate": due.isoformat(), "WhatId": customer})
    assert reply.status_code == 201, reply.text
    task_id = reply.json()["id"]
    org.advance_clock(60)
    sync_tasks(org, db)
    now = org_now(org)
    build(db, now)
    assert query(db, "SELECT state, occurred_at, planned_at, customer_id FROM sonora.touchpoints "
                     "WHERE touchpoint_id = ?", [task_id]) == [("planned", None, midnight(due), customer)]
    assert query(db, "SELECT next_touch_at, touches_ever, last_touch_at FROM sonora.engagement_signals "
                     "WHERE customer_id = ?", [customer]) == [(midnight(due), *before)]

    org.advance_clock(3600)
    reply = session.patch(f"{sobjects}/Task/{task_id}", json={"Status": "Completed"})
    assert reply.status_code == 204, reply.text
    completed = naive(next(t for t in org_rows(org, "Task") if t["Id"] == task_id)["CompletedDateTime"])
    org.advance_clock(60)
    sync_tasks(org, db)
    now = org_now(org)
    build(db, now)
    assert completed <= now
    assert query(db, "SELECT state, occurred_at, planned_at FROM sonora.touchpoints WHERE touchpoint_id = ?",
                 [task_id]) == [("done", completed, None)]
    assert query(db, "SELECT next_touch_at, touches_ever, last_touch_at FROM sonora.engagement_signals "
                     "WHERE customer_id = ?", [customer]) == [(None, before[0] + 1, completed)]


def test_an_org_without_readable_task_completion_fields_still_tells_done_from_planned(tmp_path,
                                                                                   local_org_factory):
    """IsClosed and CompletedDateTime hidden by field-level security: Status 'Completed' tells a closed task,
    its due date (or, when still ahead, its last change) when it happened."""
    db = tmp_path / "m.duckdb"
    org = local_pinned(local_org_factory, db, records=400, seed=4, hidden_fields={"Task": ["IsClosed", "CompletedDateTime"]})
    now = org_now(org)
    build(db, now)
    tasks = {t["Id"]: t for t in org_rows(org, "Task") if not t["IsDeleted"]}
    got = {r[0]: r[1:] for r in query(db, "SELECT touchpoint_id, state, occurred_at FROM sonora.touchpoints "
                                          "WHERE kind = 'task'")}
    assert set(got) == set(tasks)
    for tid, t in tasks.items():
        if t["Status"] == "Completed":
            due = t["ActivityDate"]
            when = midnight(due) if due is not None and due <= now.date() else naive(t["LastModifiedDate"])
            assert got[tid] == ("done", when), tid
        else:
            assert got[tid][0] in ("planned", "overdue") and got[tid][1] is None, tid
    assert query(db, "SELECT count(*) FROM sonora.engagement_signals WHERE last_touch_at > ?", [now])[0][0] == 0
