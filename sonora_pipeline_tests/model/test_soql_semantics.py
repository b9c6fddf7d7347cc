"""The same rule selects the same Accounts in Salesforce (SOQL on the local org, over HTTPS) and in the model.

SOQL compares text case-insensitively (=, !=, IN, NOT IN, LIKE, picklists, record types); the model must too.
Every rule below is written in a case the org's data does not use, so an exact comparison would select
nothing (or everything, for the negations)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from sonora_pipeline.model.build import build_table
from sonora_pipeline.settings import Settings
from sonora_pipeline_tests.model.helpers import mirrored_org, org_rows, query
from sonora_pipeline_tests.sync.helpers import client_for

TODAY = datetime.now(UTC).date()
# contract rules on standard fields only (the defaults may name custom fields)
WON_ONLY = {"match": "all", "account_conditions": [], "won_opportunity_within_days": 365}


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    db = tmp_path_factory.mktemp("soql-model") / "m.duckdb"
    with mirrored_org(tmp_path_factory.mktemp("soql-org"), db, records=2000, seed=21,
                      objects=("Account", "Opportunity")) as org:
        yield org, db


def soql_account_ids(org, where: str) -> set[str]:
    """The Accounts Salesforce (the local org's SOQL engine, over HTTPS) selects with this WHERE."""
    client = client_for(org)
    ids: set[str] = set()
    for page in client.query_pages(f"SELECT Id FROM Account WHERE {where}", include_deleted=False):
        ids.update(r["Id"] for r in page)
    return ids


def model_customers(db, settings: Settings) -> dict[str, bool]:
    with duckdb.connect(str(db)) as conn:
        build_table(conn, "customers", settings, TODAY)
    return dict(query(db, "SELECT external_id, is_paying FROM sonora.customers"))


def live_accounts(org) -> list[dict]:
    return [a for a in org_rows(org, "Account") if not a["IsDeleted"]]


RULES = [
    # (accounts.include, the same rule in SOQL, the field and value whose case differs from the data's)
    ({"types": ["customer - direct"]}, "Type IN ('customer - direct')"),
    ({"types": ["CUSTOMER - DIRECT", "customer - Channel"]}, "Type IN ('CUSTOMER - DIRECT', 'customer - Channel')"),
    ({"conditions": [{"field": "Industry", "op": "=", "value": "GOVERNMENT"}]}, "Industry = 'GOVERNMENT'"),
    ({"conditions": [{"field": "Industry", "op": "!=", "value": "government"}]}, "Industry != 'government'"),
    ({"conditions": [{"field": "Name", "op": "like", "value": "silver%"}]}, "Name LIKE 'silver%'"),
    ({"conditions": [{"field": "Name", "op": "like", "value": "%GMBH"}]}, "Name LIKE '%GMBH'"),
    ({"conditions": [{"field": "Type", "op": "not_in", "value": ["PROSPECT", "other"]}]},
     "Type NOT IN ('PROSPECT', 'other')"),
    ({"conditions": [{"field": "Industry", "op": "in", "value": ["finance", "RECREATION"]}]},
     "Industry IN ('finance', 'RECREATION')"),
    ({"record_types": ["customer"]}, "RecordType.DeveloperName IN ('customer')"),
]


@pytest.mark.parametrize("include, where", RULES, ids=[r[1] for r in RULES])
def test_accounts_include_selects_what_soql_selects(mirrored, include, where):
    org, db = mirrored
    by_model = set(model_customers(db, Settings.model_validate({"accounts": {"include": include},
                                                                "contracts": WON_ONLY})))
    by_soql = soql_account_ids(org, where)
    assert by_model == by_soql
    # the rule means something: it selects some accounts and leaves others out
    assert 0 < len(by_soql) < len(live_accounts(org))


def test_contract_rules_select_what_soql_selects(mirrored):
    org, db = mirrored
    contracts = {"match": "all", "won_opportunity_within_days": None, "account_conditions": [
        {"field": "Type", "op": "in", "value": ["CUSTOMER - DIRECT", "customer - channel"]},
        {"field": "Industry", "op": "!=", "value": "GOVERNMENT"},
        {"field": "Name", "op": "like", "value": "%a%"}]}
    paying = {k for k, v in model_customers(db, Settings.model_validate({"contracts": contracts})).items() if v}
    by_soql = soql_account_ids(org, "Type IN ('CUSTOMER - DIRECT', 'customer - channel') "
                                    "AND Industry != 'GOVERNMENT' AND Name LIKE '%a%'")
    assert paying == by_soql
    # written in the data's own case the rule selects the same accounts: only the case differed
    exact = {a["Id"] for a in live_accounts(org)
             if a["Type"] in ("Customer - Direct", "Customer - Channel") and a["Industry"] != "Government"
             and "a" in a["Name"].lower()}
    assert paying == exact and paying


def test_a_value_in_the_datas_own_case_still_matches_exactly(mirrored):
    """Case-insensitive is not looser than that: a value still matches only itself, whatever its case."""
    org, db = mirrored
    settings = Settings.model_validate({"accounts": {"include": {"conditions": [
        {"field": "Industry", "op": "=", "value": "Technology"}]}}, "contracts": WON_ONLY})
    expected = {a["Id"] for a in live_accounts(org) if a["Industry"] == "Technology"}
    assert set(model_customers(db, settings)) == expected == soql_account_ids(org, "Industry = 'tEcHnOlOgY'")
    assert expected
