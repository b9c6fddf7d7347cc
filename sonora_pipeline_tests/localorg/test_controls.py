"""The org's controls — records, clock, fields, quota window, faults — in process and over HTTP."""

from __future__ import annotations

import pytest
import requests

from sonora_pipeline_tests.conftest import trusting_session

V = "62.0"


@pytest.fixture
def api(org):
    session = trusting_session(org)
    token = session.post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(org.credentials.consumer_key, org.credentials.consumer_secret)).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"
    return session


def _query(org, api, soql, all_rows=False):
    reply = api.get(f"{org.instance_url}/services/data/v{V}/{'queryAll' if all_rows else 'query'}", params={"q": soql})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_added_custom_field_appears_in_describe_and_queries(org, api):
    org.add_field("Account", "Renewal_Risk__c", "picklist", "Renewal Risk", picklist=["Low", "High"])
    fields = {f["name"] for f in api.get(f"{org.instance_url}/services/data/v{V}/sobjects/Account/describe").json()["fields"]}
    assert "Renewal_Risk__c" in fields
    account = _query(org, api, "SELECT Id, Renewal_Risk__c FROM Account LIMIT 1")["records"][0]
    assert account["Renewal_Risk__c"] is None
    org.update("Account", account["Id"], {"Renewal_Risk__c": "High"})
    again = _query(org, api, f"SELECT Renewal_Risk__c FROM Account WHERE Id = '{account['Id']}'")["records"][0]
    assert again["Renewal_Risk__c"] == "High"


def test_updates_move_system_modstamp_and_deletes_reach_query_all(org, api):
    account = _query(org, api, "SELECT Id, SystemModstamp, LastModifiedDate FROM Account ORDER BY Id LIMIT 1")["records"][0]
    org.advance_clock(3600)
    org.update("Account", account["Id"], {}, system_only=True)
    after = _query(org, api, f"SELECT SystemModstamp, LastModifiedDate FROM Account WHERE Id = '{account['Id']}'")["records"][0]
    assert after["SystemModstamp"] > account["SystemModstamp"]
    assert after["LastModifiedDate"] == account["LastModifiedDate"]
    org.delete("Account", account["Id"])
    assert _query(org, api, f"SELECT COUNT() FROM Account WHERE Id = '{account['Id']}'")["totalSize"] == 0
    deleted = _query(org, api, f"SELECT IsDeleted FROM Account WHERE Id = '{account['Id']}'", all_rows=True)
    assert deleted["records"][0]["IsDeleted"] is True
    org.hard_delete("Account", account["Id"])
    assert _query(org, api, f"SELECT COUNT() FROM Account WHERE Id = '{account['Id']}'", all_rows=True)["totalSize"] == 0


def test_quota_window_resets_when_the_clock_passes_it(org, api):
    org.set_quota(daily_max=org.quota.snapshot().used + 1, window_seconds=600)
    _query(org, api, "SELECT COUNT() FROM Account")
    refused = api.get(f"{org.instance_url}/services/data/v{V}/query", params={"q": "SELECT COUNT() FROM Account"})
    assert refused.status_code == 403 and refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    org.advance_clock(601)
    assert _query(org, api, "SELECT COUNT() FROM Account")["totalSize"] > 0


def test_injected_server_errors_and_dropped_connections(org, api):
    url = f"{org.instance_url}/services/data/v{V}/limits"
    org.set_faults(next_errors=1, next_drops=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get(url)
    busy = api.get(url)
    assert busy.status_code == 503 and busy.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert api.get(url).status_code == 200


def test_error_rate_is_roughly_respected(org, api):
    org.set_faults(error_rate=0.3, seed=5)
    statuses = [api.get(f"{org.instance_url}/services/data/v{V}/limits").status_code for _ in range(100)]
    assert 15 <= statuses.count(503) <= 45
    org.clear_faults()


def test_failing_bulk_job(org, api):
    org.set_faults(fail_next_bulk_jobs=1)
    job = api.post(f"{org.instance_url}/services/data/v{V}/jobs/query",
                   json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    info = api.get(f"{org.instance_url}/services/data/v{V}/jobs/query/{job['id']}").json()
    assert info["state"] == "Failed" and info["errorMessage"]


def test_controls_over_http_need_the_admin_token(org):
    session = trusting_session(org)
    url = f"{org.instance_url}/__localorg/records/create"
    body = {"object": "Account", "values": {"Name": "Created over HTTP"}}
    assert session.post(url, json=body).status_code == 401
    reply = session.post(url, json=body, headers={"X-LocalOrg-Admin": org.admin_token})
    assert reply.status_code == 200
    assert org.store.get("Account", reply.json()["id"])["Name"] == "Created over HTTP"
    state = session.post(f"{org.instance_url}/__localorg/state", headers={"X-LocalOrg-Admin": org.admin_token}).json()
    assert state["records"]["Account"] == org.store.count("Account")
    expired = session.post(f"{org.instance_url}/__localorg/tokens/expire", headers={"X-LocalOrg-Admin": org.admin_token})
    assert expired.status_code == 200
