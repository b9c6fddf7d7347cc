"""The local org's JSON compared field by field with real recorded Salesforce responses."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from sonora_pipeline_tests.conftest import trusting_session

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "recordings"
VERSION = "62.0"
REST_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def _seed(name: str) -> dict:
    return json.loads(resources.files("sonora_pipeline.localorg").joinpath("seed", name).read_text("utf-8"))


@pytest.fixture(scope="module")
def api(shared_org):
    session = trusting_session(shared_org)
    token = session.post(f"{shared_org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(shared_org.credentials.consumer_key, shared_org.credentials.consumer_secret)).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def get(path: str, **params):
        reply = session.get(f"{shared_org.instance_url}/services/data/v{VERSION}/{path}", params=params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    return get


RECORDED_FIELD_KEYS = set(_seed("cumulusci_account_describe.json")["fields"][0])
# Contact, Opportunity and Event carry three more top-level keys than Account and Case in a real org;
# Task is built from Event, CaseComment and User from Account.
RECORDED_TOP_KEYS = {
    obj: set(_seed(f"cumulusci_{source}_describe.json"))
    for obj, source in [("Account", "account"), ("Contact", "contact"), ("Opportunity", "opportunity"),
                        ("Case", "case"), ("Event", "event"), ("Task", "event"), ("CaseComment", "case"),
                        ("User", "account")]
}


@pytest.mark.parametrize("obj", ["Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User"])
def test_describe_has_exactly_the_recorded_keys(api, obj):
    described = api(f"sobjects/{obj}/describe")
    assert set(described) == RECORDED_TOP_KEYS[obj]
    for field in described["fields"]:
        assert set(field) == RECORDED_FIELD_KEYS, field["name"]
        assert isinstance(field["referenceTo"], list) and isinstance(field["picklistValues"], list)
    assert all(url.startswith(f"/services/data/v{VERSION}/") for url in described["urls"].values()
               if url.startswith("/"))


@pytest.mark.parametrize("obj, recording", [("Account", "cumulusci_account_describe.json"),
                                            ("Contact", "cumulusci_contact_describe.json"),
                                            ("Case", "cumulusci_case_describe.json")])
def test_standard_fields_match_the_recorded_describe(api, obj, recording):
    ours = {f["name"]: f for f in api(f"sobjects/{obj}/describe")["fields"]}
    for recorded in _seed(recording)["fields"]:
        assert ours[recorded["name"]] == recorded


def test_added_custom_fields_look_like_recorded_fields_of_their_type(api):
    recorded = {f["type"]: f for f in _seed("cumulusci_opportunity_describe.json")["fields"]}
    ours = {f["name"]: f for f in api("sobjects/Account/describe")["fields"]}
    arr = ours["ARR__c"]
    assert arr["custom"] is True and arr["type"] == "currency" and arr["soapType"] == recorded["currency"]["soapType"]
    assert (arr["precision"], arr["scale"]) == (16, 2)
    tier = ours["Tier__c"]
    assert [p["value"] for p in tier["picklistValues"]] == ["Platinum", "Gold", "Silver", "Bronze"]
    assert set(tier["picklistValues"][0]) == {"active", "defaultValue", "label", "validFor", "value"}
    band = ours["ARR_Band__c"]
    assert band["calculated"] is True and band["calculatedFormula"] and band["updateable"] is False


def test_describe_global_entries_have_the_recorded_keys(api):
    recorded_keys = set(_seed("cumulusci_describe_global_subset.json")["sobjects"][0])
    described = api("sobjects")
    assert described["encoding"] == "UTF-8" and described["maxBatchSize"] == 200
    for entry in described["sobjects"]:
        assert set(entry) == recorded_keys


def test_account_record_matches_the_recorded_record_shape(api, shared_org):
    recorded = json.loads((RECORDINGS / "swiftly_account_record.json").read_text())
    account_id = api("query", q="SELECT Id FROM Account WHERE BillingCity != null LIMIT 1")["records"][0]["Id"]
    ours = api(f"sobjects/Account/{account_id}")
    assert list(ours)[:2] == ["attributes", "Id"]
    assert ours["attributes"] == {"type": "Account", "url": f"/services/data/v{VERSION}/sobjects/Account/{account_id}"}
    common = set(recorded) & set(ours)
    assert len(common) > 40
    for key in common - {"attributes"}:
        ours_value, recorded_value = ours[key], recorded[key]
        if ours_value is None or recorded_value is None:
            continue
        assert type(ours_value) is type(recorded_value) or {type(ours_value), type(recorded_value)} <= {int, float}, key
        if isinstance(recorded_value, str) and REST_DATETIME.match(recorded_value):
            assert REST_DATETIME.match(ours_value), key
        if isinstance(recorded_value, dict):
            assert set(ours_value) == set(recorded_value), key


def test_limits_have_the_recorded_shape_and_count_this_org(api, shared_org):
    recorded = json.loads((RECORDINGS / "swiftly_limits.json").read_text())
    ours = api("limits/")
    assert set(ours) == set(recorded)
    assert ours["DailyApiRequests"]["Max"] == shared_org.quota.daily_max
    assert ours["DailyApiRequests"]["Remaining"] == shared_org.quota.snapshot().remaining


def test_query_page_shape(api):
    page = api("query", q="SELECT Id, Name, CreatedDate, Owner.Name, BillingAddress FROM Account LIMIT 5")
    assert list(page) == ["totalSize", "done", "records"]
    record = page["records"][0]
    assert list(record) == ["attributes", "Id", "Name", "CreatedDate", "Owner", "BillingAddress"]
    assert REST_DATETIME.match(record["CreatedDate"])
    assert set(record["Owner"]) == {"attributes", "Name"}


def test_versions_list_needs_no_token_and_spans_supported_versions(shared_org):
    reply = trusting_session(shared_org).get(f"{shared_org.instance_url}/services/data/")
    versions = reply.json()
    assert reply.status_code == 200 and "Sforce-Limit-Info" not in reply.headers
    assert versions[0]["version"] == "31.0" and versions[-1]["version"] == "67.0"
    assert versions[-1] == {"label": "Summer '26", "url": "/services/data/v67.0", "version": "67.0"}
