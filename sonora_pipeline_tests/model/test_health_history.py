"""Health score history that means something: a row when a customer's score or band changes, or once per
UTC day; `trend` against the score that held 24 hours earlier. Each build's time is injected (`now`)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time, timedelta

import duckdb
import pytest

from sonora_pipeline.model.build import BUILD_ORDER, build_all, build_table
from sonora_pipeline.settings import Settings
from sonora_pipeline_tests.model.helpers import mirrored_org, query

TODAY = datetime.now(UTC).date()
TOMORROW = TODAY + timedelta(days=1)
# contract rules on standard fields only (the defaults may name custom fields)
SETTINGS = Settings.model_validate({"contracts": {"match": "all", "account_conditions": [],
                                                  "won_opportunity_within_days": 365}})


def at(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    db = tmp_path_factory.mktemp("history-model") / "m.duckdb"
    with mirrored_org(tmp_path_factory.mktemp("history-org"), db, records=1500, seed=5):
        pass  # the model makes no Salesforce calls: the mirror is all these tests need
    # Touches count up to each build's time, so a meeting ending (or a task completed) between two builds
    # of TODAY would move scores by itself. These tests are about the history rule, with inputs changed only
    # on purpose: the mirror keeps the activity that was over before TODAY.
    with duckdb.connect(str(db)) as conn:
        conn.execute('DELETE FROM salesforce.event WHERE coalesce("EndDateTime", "StartDateTime") >= ?', [at(TODAY, 0)])
        conn.execute('DELETE FROM salesforce.task WHERE "CompletedDateTime" >= ?', [at(TODAY, 0)])
    return db


@pytest.fixture
def db(synced, tmp_path):
    """A copy of the mirror of the test's own, so its history starts empty."""
    copy = tmp_path / "m.duckdb"
    shutil.copy(synced, copy)
    return copy


def build(db, now: datetime, settings: Settings = SETTINGS) -> None:
    with duckdb.connect(str(db)) as conn:
        build_all(conn, settings, now.date(), now)


def history(db) -> list[tuple]:
    return query(db, "SELECT customer_id, computed_at, score, band FROM sonora.health_score_history "
                     "ORDER BY customer_id, computed_at")


def customers(db) -> set[str]:
    return {r[0] for r in query(db, "SELECT external_id FROM sonora.customers")}


def worsen_support(db) -> str:
    """Open a high-priority case for one customer whose support measure counts (a real change of inputs:
    one closed case of the customer reopened in the mirror). Returns that customer."""
    with duckdb.connect(str(db)) as conn:
        customer_id, case_id = conn.execute("""
            SELECT h.customer_id, min(c.case_id) FROM sonora.health_scores h
            JOIN sonora.cases c ON c.customer_id = h.customer_id AND c.is_closed
            WHERE h.support >= 25 AND h.score IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 1""").fetchone()
        conn.execute("""UPDATE salesforce."case" SET "IsClosed" = false, "Status" = 'Working', "Priority" = 'High',
                        "ClosedDate" = NULL WHERE "Id" = ?""", [case_id])
    return customer_id


def test_unchanged_rebuilds_add_no_rows(db):
    build(db, at(TODAY, 0, 5))
    first = history(db)
    assert {r[0] for r in first} == customers(db) and len(first) == len(customers(db))
    for hour in (0, 1, 9, 17, 23):
        build(db, at(TODAY, hour, 30))
    assert history(db) == first


def test_a_changed_customer_gets_a_row_and_no_one_else(db):
    build(db, at(TODAY, 0, 5))
    before = history(db)
    changed = worsen_support(db)
    build(db, at(TODAY, 0, 10))
    new = sorted(set(history(db)) - set(before))
    assert [r[0] for r in new] == [changed]
    old_score = next(r[2] for r in before if r[0] == changed)
    assert new[0][1] == at(TODAY, 0, 10) and new[0][2] < old_score
    build(db, at(TODAY, 0, 15))  # and nothing more while it stays so
    assert len(history(db)) == len(before) + 1


def test_changed_weights_add_rows_only_where_a_score_moved(db):
    build(db, at(TODAY, 0, 5))
    before = dict(query(db, "SELECT customer_id, score FROM sonora.health_scores"))
    build(db, at(TODAY, 0, 10), Settings.model_validate({
        "contracts": {"match": "all", "account_conditions": [], "won_opportunity_within_days": 365},
        "health": {"weights": {"engagement": 1, "support": 0, "commercial": 0, "sentiment": 0}}}))
    after = dict(query(db, "SELECT customer_id, score FROM sonora.health_scores"))
    moved = {c for c in after if after[c] != before[c]}
    appended = {r[0] for r in history(db) if r[1] == at(TODAY, 0, 10)}
    assert appended == moved and 0 < len(moved) < len(after)


def test_a_build_on_the_next_utc_day_adds_one_row_per_customer(db):
    build(db, at(TODAY, 0, 5))
    build(db, at(TODAY, 23, 59))
    n = len(customers(db))
    assert len(history(db)) == n
    build(db, at(TOMORROW, 0, 1))
    rows = history(db)
    assert len(rows) == 2 * n
    assert {r[0] for r in rows if r[1] == at(TOMORROW, 0, 1)} == customers(db)
    build(db, at(TOMORROW, 6))
    assert len(history(db)) == 2 * n


def test_trend_compares_with_the_score_that_held_24_hours_before(db):
    build(db, at(TODAY, 0, 5))
    first = {r[0]: r[2] for r in history(db)}
    assert query(db, "SELECT count(*) FROM sonora.health_scores WHERE previous_score IS NOT NULL "
                     "OR trend IS NOT NULL")[0][0] == 0  # no history 24 hours old yet
    changed = worsen_support(db)
    build(db, at(TODAY, 15))
    worse = dict(query(db, "SELECT customer_id, score FROM sonora.health_scores"))[changed]
    assert query(db, "SELECT count(*) FROM sonora.health_scores WHERE previous_score IS NOT NULL")[0][0] == 0

    # 34 hours on: 24 hours back is 10:00 yesterday, when the first build's score held
    build(db, at(TOMORROW, 10))
    got = {r[0]: r[1:] for r in query(db, "SELECT customer_id, score, previous_score, previous_computed_at, trend "
                                          "FROM sonora.health_scores")}
    assert got[changed][1] == first[changed] != worse
    assert got[changed][2] == at(TODAY, 0, 5)
    for customer, (score, previous, previous_at, trend) in got.items():
        assert previous == first[customer] and previous_at == at(TODAY, 0, 5)
        assert trend == (None if score is None or previous is None else pytest.approx(score - previous, abs=0.006))
    assert any(t[3] for t in got.values())  # a day of date windows moved some scores

    # 40 hours on: 24 hours back is 16:00 yesterday, after the change
    build(db, at(TOMORROW, 16))
    got = dict(query(db, "SELECT customer_id, previous_score FROM sonora.health_scores"))
    assert got[changed] == worse


def test_a_model_table_alone_uses_the_clock(db):
    """Without an injected time the build is stamped with the clock (the Dagster assets build this way)."""
    with duckdb.connect(str(db)) as conn:
        for table in BUILD_ORDER:
            build_table(conn, table, SETTINGS, datetime.now(UTC).date())
    stamped = query(db, "SELECT max(computed_at) FROM sonora.health_score_history")[0][0]
    assert abs(stamped - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=10)
