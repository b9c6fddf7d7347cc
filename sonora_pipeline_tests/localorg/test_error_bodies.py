"""Bad requests get the status and error body a real org sends, never a Python traceback."""

from __future__ import annotations

import base64
import random

import pytest

from sonora_pipeline_tests.conftest import trusting_session

V = "62.0"


def _token(org, session, **form):
    data = {"grant_type": "client_credentials", **form}
    return session.post(f"{org.instance_url}/services/oauth2/token", data=data)


@pytest.fixture
def authed(org):
    session = trusting_session(org)
    token = _token(org, session, client_id=org.credentials.consumer_key,
                   client_secret=org.credentials.consumer_secret).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@pytest.mark.parametrize("setup, form, error, description", [
    (None, {"client_id": "3MVG9unknown"}, "invalid_client_id", "client identifier invalid"),
    (None, {"client_secret": "nope"}, "invalid_client", "invalid client credentials"),
    ({"client_credentials_enabled": False}, {}, "invalid_grant", "request not supported on this domain"),
    ({"run_as_user": False}, {}, "invalid_grant", "no client credentials user enabled"),
])
def test_token_endpoint_failures(org, setup, form, error, description):
    if setup:
        org.configure_app(**setup)
    session = trusting_session(org)
    data = {"client_id": org.credentials.consumer_key, "client_secret": org.credentials.consumer_secret, **form}
    reply = _token(org, session, **data)
    assert reply.status_code == 400
    assert reply.json() == {"error": error, "error_description": description}


def test_credentials_in_the_basic_header_work_and_are_checked(org):
    session = trusting_session(org)
    good = base64.b64encode(f"{org.credentials.consumer_key}:{org.credentials.consumer_secret}".encode()).decode()
    bad = base64.b64encode(f"{org.credentials.consumer_key}:wrong".encode()).decode()
    ok = session.post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": f"Basic {good}"})
    refused = session.post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {bad}"})
    assert ok.status_code == 200 and refused.json()["error"] == "invalid_client"


def test_refresh_token_grant(org):
    session = trusting_session(org)
    form = {"grant_type": "refresh_token", "refresh_token": org.refresh_token,
            "client_id": org.credentials.consumer_key, "client_secret": org.credentials.consumer_secret}
    reply = session.post(f"{org.instance_url}/services/oauth2/token", data=form)
    assert reply.status_code == 200 and "refresh_token" not in reply.json()
    form["refresh_token"] = "5Aep861-revoked"
    reply = session.post(f"{org.instance_url}/services/oauth2/token", data=form)
    assert reply.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_unsupported_grant(org):
    reply = trusting_session(org).post(f"{org.instance_url}/services/oauth2/token", data={"grant_type": "magic"})
    assert reply.json() == {"error": "unsupported_grant_type", "error_description": "grant type not supported"}


def test_user_without_api_enabled_gets_a_token_but_no_api(org):
    org.configure_app(api_enabled=False)
    session = trusting_session(org)
    token = _token(org, session, client_id=org.credentials.consumer_key,
                   client_secret=org.credentials.consumer_secret).json()["access_token"]
    reply = session.get(f"{org.instance_url}/services/data/v{V}/sobjects",
                        headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 403
    assert reply.json() == [{"message": "The REST API is not enabled for this Organization.",
                             "errorCode": "API_DISABLED_FOR_ORG"}]


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", f"/services/data/v{V}/sobjects/Nope__c/describe", 404, "NOT_FOUND"),
    ("GET", f"/services/data/v{V}/no/such/resource", 404, "NOT_FOUND"),
    ("GET", "/services/data/v25.0/sobjects", 410, "GONE"),
    ("PUT", f"/services/data/v{V}/sobjects", 405, "METHOD_NOT_ALLOWED"),
    ("GET", f"/services/data/v{V}/query", 400, "MALFORMED_QUERY"),
    ("GET", f"/services/data/v{V}/query/01g5g0000000099AAA-2000", 400, "INVALID_QUERY_LOCATOR"),
    ("GET", f"/services/data/v{V}/jobs/query/7505g0000000999AAA", 404, "NOT_FOUND"),
])
def test_rest_errors(authed, org, method, path, status, code):
    reply = authed.request(method, f"{org.instance_url}{path}")
    assert reply.status_code == status
    body = reply.json()
    assert isinstance(body, list) and body[0]["errorCode"] == code and body[0]["message"]
    assert reply.headers["Content-Type"] == "application/json;charset=UTF-8"


def test_bad_json_body_is_a_parser_error(authed, org):
    reply = authed.post(f"{org.instance_url}/services/data/v{V}/sobjects/Account/", data=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_bulk_rejects_what_bulk_rejects(authed, org):
    for soql in ["SELECT COUNT() FROM Account", "SELECT Id, BillingAddress FROM Account",
                 "SELECT Id FROM Account LIMIT 5 OFFSET 2"]:
        reply = authed.post(f"{org.instance_url}/services/data/v{V}/jobs/query",
                            json={"operation": "query", "query": soql})
        assert reply.status_code == 400, soql
        assert isinstance(reply.json(), list) and reply.json()[0]["errorCode"]


def test_random_garbage_never_produces_a_traceback(authed, org):
    rng = random.Random(1)
    alphabet = "abcXYZ01/._-%?=&'\"{}[] \\"
    paths = ["", "/sobjects", "/sobjects/Account", "/query", "/queryAll", "/jobs/query", "/jobs/ingest",
             "/composite/sobjects", "/composite/batch", "/sobjects/Account/updated"]
    for _ in range(300):
        path = rng.choice(paths) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PUT"])
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))).encode()
        reply = authed.request(method, f"{org.instance_url}/services/data/v{V}{path}", data=body,
                               params={"q": body.decode(), "start": "x", "end": "y"})
        assert reply.status_code != 500, (method, path, body, reply.text)
        assert "Traceback" not in reply.text
        if reply.content:
            reply.json()
