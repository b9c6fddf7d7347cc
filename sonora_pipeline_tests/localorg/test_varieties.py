"""Local org varieties and real-org value rules: standard fields only, Bulk CSV nulls either way, hidden
standard fields, empty strings stored as null, and exact 18-digit numbers through the API."""

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal

import pytest

from sonora_pipeline_tests.conftest import trusting_session

V = "62.0"


def _api(org):
    session = trusting_session(org)
    token = session.post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(org.credentials.consumer_key, org.credentials.consumer_secret)).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    return session


def _bulk_csv(org, api, soql: str) -> str:
    base = f"{org.instance_url}/services/data/v{V}/jobs/query"
    job = api.post(base, json={"operation": "queryAll", "query": soql}).json()
    for _ in range(200):
        if api.get(f"{base}/{job['id']}").json()["state"] == "JobComplete":
            break
        time.sleep(0.05)
    reply = api.get(f"{base}/{job['id']}/results")
    assert reply.status_code == 200, reply.text
    return reply.text


@pytest.fixture
def api(org):
    return _api(org)


def test_an_empty_string_is_stored_as_null_like_a_real_org(org, api):
    url = f"{org.instance_url}/services/data/v{V}/sobjects/Account/"
    created = api.post(url, json={"Name": "Blank Co", "Description": "", "Website": "", "AnnualRevenue": ""})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    row = org.store.get("Account", rid)
    assert (row["Description"], row["Website"], row["AnnualRevenue"]) == (None, None, None)
    org.update("Account", rid, {"Description": "something"})
    org.update("Account", rid, {"Description": ""})
    assert org.store.get("Account", rid)["Description"] is None
    refused = api.post(url, json={"Name": ""})  # a required text field left blank is missing, not empty
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_eighteen_digits_go_in_and_come_out_exactly(org, api):
    url = f"{org.instance_url}/services/data/v{V}/sobjects/Account/"
    body = '{"Name": "Edge", "AnnualRevenue": 999999999999999999}'
    created = api.post(url, data=body, headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    text = api.get(f"{org.instance_url}/services/data/v{V}/query",
                   params={"q": f"SELECT AnnualRevenue FROM Account WHERE Id = '{rid}'"}).text
    assert json.loads(text, parse_float=Decimal)["records"][0]["AnnualRevenue"] == Decimal("999999999999999999")
    assert "9.99999999999999999E17" in text
    too_big = api.post(url, json={"Name": "Too big", "AnnualRevenue": 10 ** 18})
    assert too_big.status_code == 400 and too_big.json()[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"


def test_bulk_csv_nulls_switch_in_process_and_over_http(org, api):
    soql = "SELECT Id, Description, AnnualRevenue, Website FROM Account"
    bare = _bulk_csv(org, api, soql)
    empty = list(csv.reader(io.StringIO(bare)))
    assert any(cell == "" for row in empty[1:] for cell in row)
    assert '""' not in bare  # nulls are bare empty fields by default
    admin = {"X-LocalOrg-Admin": org.admin_token}
    reply = api.post(f"{org.instance_url}/__localorg/csv/nulls", json={"form": "quoted"}, headers=admin)
    assert reply.status_code == 200, reply.text
    assert org.state()["csv_nulls"] == "quoted"
    quoted = _bulk_csv(org, api, soql)
    assert '""' in quoted and ",," not in quoted and ",\n" not in quoted
    assert list(csv.reader(io.StringIO(quoted))) == empty  # the same cells, only written differently
    bad = api.post(f"{org.instance_url}/__localorg/csv/nulls", json={"form": "NULL"}, headers=admin)
    assert bad.status_code == 400 and "csv_nulls" in bad.text
    org.set_csv_nulls("empty")
    assert _bulk_csv(org, api, soql) == bare


def test_standard_fields_only_and_hidden_fields_show_in_describe(local_org_factory):
    org = local_org_factory(records=200, seed=2, custom_fields=False,
                            hidden_fields={"Account": ["AnnualRevenue", "Rating"], "Contact": ["Birthdate"]})
    api = _api(org)
    names = {o["name"] for o in api.get(f"{org.instance_url}/services/data/v{V}/sobjects").json()["sobjects"]}
    assert "Subscription__c" not in names and {"Account", "Contact", "Opportunity"} <= names
    for object_name in ("Account", "Contact", "Opportunity", "Case"):
        describe = api.get(f"{org.instance_url}/services/data/v{V}/sobjects/{object_name}/describe").json()
        fields = {f["name"] for f in describe["fields"]}
        assert not [f for f in fields if f.endswith("__c")], object_name
        assert not [r for r in describe.get("childRelationships") or []
                    if str(r.get("childSObject", "")).endswith("__c")], object_name
        if object_name == "Account":
            assert not {"AnnualRevenue", "Rating"} & fields and "Industry" in fields
        if object_name == "Contact":
            assert "Birthdate" not in fields
    refused = api.get(f"{org.instance_url}/services/data/v{V}/query",
                      params={"q": "SELECT Id, AnnualRevenue FROM Account"})
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD"
    assert org.store.count("Account") > 0  # the generator filled only the fields the org has
