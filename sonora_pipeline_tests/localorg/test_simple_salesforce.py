"""simple-salesforce, unchanged, against the local org over HTTPS: the proof that the org is faithful
enough for a client we did not write."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sonora_pipeline_tests.conftest import trusting_session

VERSION = "59.0"  # simple-salesforce 1.12.10's default


def login_with_client_credentials(org, **overrides) -> Salesforce:
    """simple-salesforce's own client-credentials login.

    It posts to f"https://{domain}.salesforce.com/services/oauth2/token"; a `domain` ending in a query
    string sends that request to the org's host unchanged (the trailing text becomes an ignored
    parameter), so no hostname interception is needed.
    """
    host = urlsplit(org.instance_url).netloc
    return Salesforce(
        consumer_key=overrides.get("consumer_key", org.credentials.consumer_key),
        consumer_secret=overrides.get("consumer_secret", org.credentials.consumer_secret),
        domain=f"{host}/services/oauth2/token?client=simple-salesforce&x=",
        session=trusting_session(org),
        version=VERSION,
    )


def test_client_credentials_login_gives_a_working_session(shared_org):
    sf = login_with_client_credentials(shared_org)
    assert sf.sf_instance == urlsplit(shared_org.instance_url).netloc
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == shared_org.store.count("Account", include_deleted=False)


def test_session_id_login_from_a_token_obtained_with_form_fields(shared_org):
    session = trusting_session(shared_org)
    token = session.post(f"{shared_org.instance_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": shared_org.credentials.consumer_key,
        "client_secret": shared_org.credentials.consumer_secret}).json()
    assert set(token) >= {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}
    assert token["token_type"] == "Bearer" and token["issued_at"].isdigit()
    assert "refresh_token" not in token
    sf = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=session,
                    version=VERSION)
    assert sf.Account.describe()["name"] == "Account"


@pytest.mark.parametrize("change, code", [
    ({"consumer_key": "3MVG9-not-a-real-key"}, "invalid_client_id"),
    ({"consumer_secret": "wrong-secret"}, "invalid_client"),
])
def test_bad_credentials_raise_authentication_failed(shared_org, change, code):
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        login_with_client_credentials(shared_org, **change)
    assert err.value.code == code


def test_describe_global_and_sobject_describe(shared_org):
    sf = login_with_client_credentials(shared_org)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User"} <= names
    account = sf.Account.describe()
    fields = {f["name"]: f for f in account["fields"]}
    assert fields["ARR__c"]["type"] == "currency" and fields["ARR__c"]["custom"] is True
    assert fields["BillingAddress"]["type"] == "address"
    assert fields["ARR_Band__c"]["calculated"] is True
    assert fields["Sonora_Health_Score__c"]["updateable"] is True
    assert [r["developerName"] for r in account["recordTypeInfos"]][-1] == "Master"


def test_query_all_follows_next_records_url_over_several_pages(shared_org):
    sf = login_with_client_credentials(shared_org)
    expected = shared_org.store.count("Contact", include_deleted=False)
    assert expected > 600
    first = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["done"] is False and first["nextRecordsUrl"].startswith(f"/services/data/v{VERSION}/query/")
    everything = sf.query_all("SELECT Id, Name, Account.Name, Owner.Email FROM Contact ORDER BY Id",
                              headers={"Sforce-Query-Options": "batchSize=200"})
    ids = [r["Id"] for r in everything["records"]]
    assert len(ids) == expected == len(set(ids))
    assert ids == sorted(ids)
    with_account = next(r for r in everything["records"] if r["Account"] is not None)
    assert with_account["Account"]["attributes"]["type"] == "Account"


def test_query_all_with_include_deleted_sees_the_recycle_bin(shared_org):
    sf = login_with_client_credentials(shared_org)
    live = sf.query_all("SELECT Id FROM Account")["totalSize"]
    everything = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)
    deleted = [r for r in everything["records"] if r["IsDeleted"]]
    assert everything["totalSize"] == live + len(deleted)
    assert deleted, "the generated org has soft-deleted accounts"


def test_bulk2_query_downloads_every_row_as_csv(shared_org):
    sf = login_with_client_credentials(shared_org)
    pages = list(sf.bulk2.Contact.query("SELECT Id, Name, Email, Account.Name FROM Contact", max_records=250,
                                        wait=0))
    assert len(pages) > 1
    rows = []
    for page in pages:
        reader = csv.reader(io.StringIO(page))
        header = next(reader)
        assert header == ["Id", "Name", "Email", "Account.Name"]
        rows.extend(reader)
    assert len(rows) == shared_org.store.count("Contact", include_deleted=False)


def test_sobject_collections_update_and_single_record_reads(org):
    sf = login_with_client_credentials(org)
    accounts = sf.query("SELECT Id FROM Account ORDER BY Id LIMIT 3")["records"]
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "id": accounts[0]["Id"], "Sonora_Health_Score__c": 71.5},
        {"attributes": {"type": "Account"}, "id": accounts[1]["Id"], "Sonora_Health_Score__c": 250},
        {"attributes": {"type": "Account"}, "id": accounts[2]["Id"], "Sonora_Health_Score__c": 12},
    ]}
    org.add_validation_rule("Account", "Sonora_Health_Score__c",
                            lambda v, row: "Health score must be between 0 and 100" if v is not None and not 0 <= v <= 100 else None)
    results = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert sf.Account.get(accounts[0]["Id"])["Sonora_Health_Score__c"] == 71.5
    assert sf.Account.get(accounts[2]["Id"])["Sonora_Health_Score__c"] == 12.0


def test_api_usage_is_counted_in_sforce_limit_info(org):
    sf = login_with_client_credentials(org)
    sf.query("SELECT Id FROM Account LIMIT 1")
    first = sf.api_usage["api-usage"]
    sf.query("SELECT Id FROM Account LIMIT 1")
    sf.query("SELECT Id FROM Account LIMIT 1")
    second = sf.api_usage["api-usage"]
    assert second.used == first.used + 2
    assert second.total == org.quota.daily_max


def test_expired_session_raises_without_a_login_to_retry(org):
    session = trusting_session(org)
    token = session.post(f"{org.instance_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": org.credentials.consumer_key,
        "client_secret": org.credentials.consumer_secret}).json()
    sf = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=session,
                    version=VERSION)
    sf.query("SELECT Id FROM Account LIMIT 1")
    org.expire_tokens()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account LIMIT 1")


def test_client_credentials_client_logs_in_again_after_expiry(org):
    sf = login_with_client_credentials(org)
    sf.query("SELECT Id FROM Account LIMIT 1")
    org.expire_tokens()
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0


def test_spent_quota_is_refused_with_request_limit_exceeded(org):
    sf = login_with_client_credentials(org)
    org.set_quota(daily_max=org.quota.snapshot().used + 1)
    sf.query("SELECT Id FROM Account LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as err:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert err.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    org.reset_quota()
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0


@pytest.mark.parametrize("soql, code", [
    ("SELECT Id FORM Account", "MALFORMED_QUERY"),
    ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
    ("SELECT Id FROM Xyzzy", "INVALID_TYPE"),
])
def test_bad_soql_raises_malformed_request(shared_org, soql, code):
    sf = login_with_client_credentials(shared_org)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query(soql)
    assert err.value.content[0]["errorCode"] == code
    assert "ERROR at Row:1:Column:" in err.value.content[0]["message"]


def test_unknown_record_is_not_found(shared_org):
    sf = login_with_client_credentials(shared_org)
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get("001000000000000AAA")


def test_revoked_field_disappears_from_describe_and_fails_queries(org):
    sf = login_with_client_credentials(org)
    org.revoke_field_access("Account", "ARR__c")
    assert "ARR__c" not in {f["name"] for f in sf.Account.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.query("SELECT Id, ARR__c FROM Account")
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_bulk2_update_reports_per_row_results(org):
    sf = login_with_client_credentials(org)
    ids = [r["Id"] for r in sf.query("SELECT Id FROM Account ORDER BY Id LIMIT 4")["records"]]
    org.delete("Account", ids[3])
    result = sf.bulk2.Account.update(records=[
        {"Id": ids[0], "Sonora_Notes__c": "renewal at risk"},
        {"Id": ids[1], "Sonora_Notes__c": "expansion"},
        {"Id": ids[2], "Sonora_eCSAT__c": "not-a-number"},
        {"Id": ids[3], "Sonora_Notes__c": "deleted meanwhile"},
    ], wait=0)
    assert result[0]["numberRecordsProcessed"] == 4
    assert result[0]["numberRecordsFailed"] == 2
    failed = sf.bulk2.Account.get_failed_records(result[0]["job_id"])
    codes = sorted(row["sf__Error"].split(":")[0] for row in csv.DictReader(io.StringIO(failed)))
    assert codes == ["ENTITY_IS_DELETED", "INVALID_TYPE_ON_FIELD_IN_RECORD"]
    assert org.store.get("Account", ids[0])["Sonora_Notes__c"] == "renewal at risk"


def test_server_errors_come_back_as_salesforce_error_bodies(org):
    session = trusting_session(org)
    reply = session.get(f"{org.instance_url}/services/data/v{VERSION}/query", params={"q": "SELECT Id FROM Account"})
    assert reply.status_code == 401
    assert reply.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert reply.headers["WWW-Authenticate"] == "Token"
    assert isinstance(requests.get, object)
