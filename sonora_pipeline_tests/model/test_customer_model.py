"""The customer model, checked against expectations computed independently from the org's own records
(Python over the local org's rows, not the model's SQL)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from sonora_pipeline.model.build import build_all
from sonora_pipeline.settings import Settings
from sonora_pipeline_tests.model.helpers import mirrored_org
from sonora_pipeline_tests.model.helpers import org_rows as rows
from sonora_pipeline_tests.suite_settings import suite_settings

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """A synced mirror of one org, shared by the tests of this module (they only rebuild the model)."""
    db = tmp_path_factory.mktemp("model") / "m.duckdb"
    with mirrored_org(tmp_path_factory.mktemp("model-org"), db, records=2500, seed=21) as org:
        yield org, db


def build(db, settings: Settings) -> None:
    with duckdb.connect(str(db)) as conn:
        build_all(conn, settings, TODAY)


def query(db, sql: str, params=None):
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def expected_customers(org, include_types=None) -> dict[str, dict]:
    accounts = [a for a in rows(org, "Account") if not a["IsDeleted"]]
    if include_types:
        accounts = [a for a in accounts if a["Type"] in include_types]
    return {a["Id"]: a for a in accounts}


def expected_paying(org, customers: dict, window_days=365) -> set[str]:
    last_won: dict[str, date] = {}
    for o in rows(org, "Opportunity"):
        if not o["IsDeleted"] and o["IsWon"]:
            last_won[o["AccountId"]] = max(last_won.get(o["AccountId"], date.min), o["CloseDate"])
    paying = set()
    for aid, a in customers.items():
        end = a.get("Contract_End_Date__c")
        if (end is not None and end >= TODAY) or (aid in last_won and last_won[aid] >= TODAY - timedelta(days=window_days)):
            paying.add(aid)
    return paying


def test_customers_people_and_opportunities_match_the_org(mirrored):
    org, db = mirrored
    build(db, suite_settings())
    customers = expected_customers(org)
    got = dict(query(db, "SELECT external_id, is_paying FROM sonora.customers"))
    assert set(got) == set(customers)
    assert {k for k, v in got.items() if v} == expected_paying(org, customers)
    arr = dict(query(db, "SELECT external_id, arr FROM sonora.customers"))
    assert all(arr[k] == customers[k]["ARR__c"] for k in customers)
    contacts = [c for c in rows(org, "Contact") if not c["IsDeleted"]]
    people = dict(query(db, "SELECT person_id, customer_id FROM sonora.people"))
    assert people == {c["Id"]: (c["AccountId"] if c["AccountId"] in customers else None) for c in contacts}
    edges = set(query(db, "SELECT person_id, manager_id FROM sonora.people_edges"))
    assert edges == {(c["Id"], c["ReportsToId"]) for c in contacts if c["ReportsToId"]}
    status = dict(query(db, "SELECT opportunity_id, status FROM sonora.opportunities"))
    assert status == {o["Id"]: ("won" if o["IsWon"] else "lost" if o["IsClosed"] else "open")
                      for o in rows(org, "Opportunity") if not o["IsDeleted"]}


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def test_engagement_signals_match_a_count_over_the_org(mirrored):
    """Touches are completed activity up to the build's time: closed tasks (at their completion) and events
    that have ended (at their start); open tasks and meetings still ahead are not touches."""
    org, db = mirrored
    now = datetime.now(UTC).replace(tzinfo=None)
    today = now.date()
    with duckdb.connect(str(db)) as conn:
        build_all(conn, suite_settings(), today, now)
    customers = expected_customers(org)
    touches = Counter()
    meetings = Counter()
    for t in rows(org, "Task"):
        if t["IsDeleted"] or not t["IsClosed"] or t["AccountId"] not in customers:
            continue
        when = _utc(t["CompletedDateTime"])
        if when <= now and today - timedelta(days=90) < when.date() <= today:
            touches[t["AccountId"]] += 1
    for e in rows(org, "Event"):
        if e["IsDeleted"] or e["AccountId"] not in customers:
            continue
        end = (datetime.combine(e["EndDate"], datetime.min.time()) + timedelta(days=1) if e["IsAllDayEvent"]
               else _utc(e["EndDateTime"]))
        if end <= now and today - timedelta(days=90) < _utc(e["StartDateTime"]).date() <= today:
            touches[e["AccountId"]] += 1
            meetings[e["AccountId"]] += 1
    open_high = Counter(c["AccountId"] for c in rows(org, "Case")
                        if not c["IsDeleted"] and not c["IsClosed"] and c["Priority"] == "High" and c["AccountId"] in customers)
    got = {r[0]: r[1:] for r in query(db, "SELECT customer_id, touches_90d, meetings_90d, open_cases_high "
                                          "FROM sonora.engagement_signals")}
    assert set(got) == set(customers)
    for aid in customers:
        assert got[aid] == (touches[aid], meetings[aid], open_high[aid]), aid
    assert sum(touches.values()) > 0


def health_by_hand(signals: dict, paying: bool, contract_end, nps_avg, weights, horizon=120):
    """The documented formula, written again independently."""
    m = {}
    m["engagement"] = (None if signals["touches_ever"] == 0 and signals["people"] == 0 else
                       round(100 * (0.6 * min(1, signals["touches_90d"] / 12) + 0.4 * min(1, signals["meetings_90d"] / 3)), 2))
    m["support"] = (None if signals["cases_ever"] == 0 else
                    max(0, 100 - 25 * signals["open_cases_high"] - 10 * signals["open_cases_medium"] - 5 * signals["open_cases_low"]))
    if paying:
        if contract_end is None:
            m["commercial"] = 70
        elif contract_end < TODAY:
            m["commercial"] = 20
        elif contract_end <= TODAY + timedelta(days=horizon):
            m["commercial"] = 80 if signals["open_opportunities"] > 0 else 60
        else:
            m["commercial"] = 100
    else:
        m["commercial"] = 40 if signals["won_amount_365d"] > 0 else None
    m["sentiment"] = None if nps_avg is None else round(10 * nps_avg, 2)
    used = {k: v for k, v in m.items() if v is not None}
    if not used:
        return None, m
    return round(sum(weights[k] * v for k, v in used.items()) / sum(weights[k] for k in used), 2), m


def test_health_scores_follow_the_documented_formula(mirrored):
    org, db = mirrored
    settings = suite_settings()
    build(db, settings)
    weights = {"engagement": 0.35, "support": 0.25, "commercial": 0.25, "sentiment": 0.15}
    names = ["customer_id", "touches_ever", "people", "touches_90d", "meetings_90d", "cases_ever", "open_cases_high",
             "open_cases_medium", "open_cases_low", "open_opportunities", "won_amount_365d"]
    signals = {r[0]: dict(zip(names, r)) for r in query(db, f"SELECT {', '.join(names)} FROM sonora.engagement_signals")}
    customers = expected_customers(org)
    paying = expected_paying(org, customers)
    nps = defaultdict(list)
    for c in rows(org, "Contact"):
        if not c["IsDeleted"] and c["NPS_Score__c"] is not None:
            nps[c["AccountId"]].append(float(c["NPS_Score__c"]))  # the org keeps a Decimal
    got = {r[0]: r[1:] for r in query(db, "SELECT customer_id, score, band, engagement, support, commercial, sentiment "
                                          "FROM sonora.health_scores")}
    assert set(got) == set(customers)
    for aid, a in customers.items():
        nps_avg = sum(nps[aid]) / len(nps[aid]) if nps[aid] else None
        score, m = health_by_hand(signals[aid], aid in paying, a["Contract_End_Date__c"], nps_avg, weights)
        assert got[aid][0] == pytest.approx(score, abs=0.011) if score is not None else got[aid][0] is None, aid
        band = "unknown" if score is None else "green" if score >= 70 else "yellow" if score >= 40 else "red"
        assert got[aid][1] == band
        for i, key in enumerate(["engagement", "support", "commercial", "sentiment"]):
            assert got[aid][2 + i] == pytest.approx(m[key], abs=0.011) if m[key] is not None else got[aid][2 + i] is None
    assert len({g[1] for g in got.values()}) >= 2


# History and trend: test_health_history.py.


def test_changing_filters_mapping_and_contract_rules_needs_no_reimport(mirrored):
    org, db = mirrored
    used_before = org.quota.snapshot().used
    settings = Settings.model_validate({
        "accounts": {"include": {"types": ["Customer - Direct"]}},
        "mapping": {"account": {"ARR__c": "annual_revenue_usd", "Tier__c": "tier"}},
        "contracts": {"match": "any", "account_conditions": [], "won_opportunity_within_days": 90},
    })
    build(db, settings)
    customers = expected_customers(org, include_types={"Customer - Direct"})
    got = dict(query(db, "SELECT external_id, is_paying FROM sonora.customers"))
    assert set(got) == set(customers)
    assert {k for k, v in got.items() if v} == expected_paying_won_only(org, customers, 90)
    columns = {r[0] for r in query(db, "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'sonora' "
                                       "AND table_name = 'customers'")}
    assert "annual_revenue_usd" in columns and "arr" not in columns
    people_customers = {r[0] for r in query(db, "SELECT DISTINCT customer_id FROM sonora.people WHERE customer_id IS NOT NULL")}
    assert people_customers <= set(customers)
    assert org.quota.snapshot().used == used_before  # nothing asked of Salesforce


def expected_paying_won_only(org, customers, days):
    last_won = {}
    for o in rows(org, "Opportunity"):
        if not o["IsDeleted"] and o["IsWon"]:
            last_won[o["AccountId"]] = max(last_won.get(o["AccountId"], date.min), o["CloseDate"])
    return {a for a in customers if a in last_won and last_won[a] >= TODAY - timedelta(days=days)}


def test_renewals_are_paying_customers_ending_within_the_horizon(mirrored):
    org, db = mirrored
    build(db, suite_settings())
    customers = expected_customers(org)
    paying = expected_paying(org, customers)
    expected = {a for a in paying if customers[a]["Contract_End_Date__c"] is not None
                and TODAY <= customers[a]["Contract_End_Date__c"] <= TODAY + timedelta(days=120)}
    got = {r[0] for r in query(db, "SELECT customer_id FROM sonora.renewals")}
    assert got == expected and expected


def test_touchpoints_resolve_people_and_customers(mirrored):
    org, db = mirrored
    build(db, suite_settings())
    total = query(db, "SELECT count(*) FROM sonora.touchpoints")[0][0]
    live = sum(1 for t in rows(org, "Task") if not t["IsDeleted"]) + sum(1 for e in rows(org, "Event") if not e["IsDeleted"])
    assert total == live
    archived = query(db, "SELECT count(*) FROM sonora.touchpoints WHERE is_archived")[0][0]
    assert archived > 0
    dangling = query(db, "SELECT count(*) FROM sonora.touchpoints t WHERE t.person_id IS NULL AND t.who_id IS NOT NULL "
                         "AND t.who_id IN (SELECT person_id FROM sonora.people)")[0][0]
    assert dangling == 0


def test_a_settings_mistake_found_against_the_mirror_writes_nothing(mirrored):
    from sonora_pipeline.settings import SettingsError

    org, db = mirrored
    build(db, suite_settings())
    before = query(db, "SELECT count(*), sum(hash(external_id)) FROM sonora.customers")
    bad = Settings.model_validate({"mapping": {"account": {"Nonexistent_Field__c": "nothing"}}})
    with pytest.raises(SettingsError) as err:
        build(db, bad)
    assert "Account.Nonexistent_Field__c" in str(err.value) and "Field-Level Security" in str(err.value)
    assert query(db, "SELECT count(*), sum(hash(external_id)) FROM sonora.customers") == before
    columns = {r[0] for r in query(db, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'customers'")}
    assert "nothing" not in columns


def test_column_comments_document_the_model(mirrored):
    org, db = mirrored
    build(db, suite_settings())
    comments = dict(query(db, "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'sonora' "
                              "AND table_name = 'health_scores'"))
    assert "0-100" in comments["score"] and comments["formula"]
    formula = query(db, "SELECT DISTINCT formula FROM sonora.health_scores")[0][0]
    assert "weight" in formula


def test_the_model_builds_with_the_defaults_and_leaves_out_measures_without_data(mirrored):
    """No settings file: no custom field mapped, no contract field, no NPS field. Every table builds; the
    measures nothing feeds are NULL and left out of the score's weights, not counted as zero."""
    org, db = mirrored
    build(db, Settings())
    customers = expected_customers(org)
    got = dict(query(db, "SELECT external_id, is_paying FROM sonora.customers"))
    assert set(got) == set(customers)
    assert {k for k, v in got.items() if v} == expected_paying_won_only(org, customers, 365)
    columns = {r[0] for r in query(db, "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'sonora' "
                                       "AND table_name = 'customers'")}
    assert not {"arr", "tier", "contract_end_date"} & columns
    assert query(db, "SELECT count(*) FROM sonora.health_scores WHERE sentiment IS NOT NULL")[0][0] == 0
    assert query(db, "SELECT count(*) FROM sonora.health_scores WHERE score IS NOT NULL AND weight_used > 0.85 + 1e-9"
                 )[0][0] == 0  # the sentiment weight (0.15) is never used
    assert query(db, "SELECT count(*) FROM sonora.health_scores WHERE score IS NOT NULL")[0][0] > 0
    assert query(db, "SELECT count(*) FROM sonora.renewals")[0][0] == 0  # no contract end date to renew on
