"""check_connection(): every cause of a failed connection gets its own check, reason, message and fix, the
run stops at the first failing prerequisite, nothing is raised, and the secret never leaks."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sonora_pipeline.salesforce.auth import TokenManager
from sonora_pipeline.salesforce.connection import OrgConnection
from sonora_pipeline.salesforce.diagnose import check_connection
from sonora_pipeline.salesforce.errors import AuthError
from sonora_pipeline.settings import STANDARD_OBJECTS
from sonora_pipeline_tests.salesforce.conftest import CANARY_SECRET, connection_for


class _HtmlPage(BaseHTTPRequestHandler):
    """A web server that is not Salesforce: every path answers an HTML page."""

    def _page(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<!doctype html><html><body><h1>Welcome to our intranet</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *args):
        pass


@pytest.fixture
def html_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _assert_no_leak(report, caplog, *secrets):
    texts = [report.render(), repr(report), caplog.text]
    for secret in secrets:
        for text in texts:
            assert secret not in text


def _failed(report, name, reason):
    assert report.ok is False
    failure = report.failure
    assert failure is not None and failure.name == name and failure.reason == reason, report.render()
    assert report.checks[-1] is failure, "the test must stop at the first failing prerequisite"
    assert "FAILED" in report.render() and "fix:" in report.render()
    return failure


def test_a_working_org_passes_every_check(org):
    report = check_connection(connection_for(org), objects=STANDARD_OBJECTS)
    assert report.ok, report.render()
    names = [c.name for c in report.checks]
    assert names[:4] == ["settings", "salesforce_url", "token", "api_access"]
    assert names[4:] == [f"object {n}" for n in STANDARD_OBJECTS]
    assert report.org_id == org.org_id
    assert report.user_id == org.generated.run_as_user_id
    used, maximum = report.api_usage
    assert maximum == org.quota.snapshot().max and 0 < used <= org.quota.snapshot().used
    text = report.render()
    assert text.startswith("Salesforce connection test: OK") and "object CaseComment" in text


def test_bad_key(canary_org, caplog):
    with caplog.at_level(logging.DEBUG):
        report = check_connection(connection_for(canary_org, consumer_key="3MVG9notTheRightKeyAtAll"),
                                  objects=STANDARD_OBJECTS)
    failure = _failed(report, "token", "bad_key")
    assert "does not know this consumer key" in failure.message
    assert "mistyped" in failure.message and "another org" in failure.message and "sandbox" in failure.message
    assert "External Client App Manager" in failure.fix and "SALESFORCE_CONSUMER_KEY" in failure.fix
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_bad_secret(org, caplog):
    with caplog.at_level(logging.DEBUG):
        report = check_connection(connection_for(org, consumer_secret=CANARY_SECRET), objects=STANDARD_OBJECTS)
    failure = _failed(report, "token", "bad_secret")
    assert "rejected the consumer secret" in failure.message and "SALESFORCE_CONSUMER_SECRET" in failure.fix
    _assert_no_leak(report, caplog, CANARY_SECRET, org.credentials.consumer_secret)


def test_flow_disabled(canary_org, caplog):
    canary_org.configure_app(client_credentials_enabled=False)
    with caplog.at_level(logging.DEBUG):
        report = check_connection(connection_for(canary_org), objects=STANDARD_OBJECTS)
    failure = _failed(report, "token", "flow_disabled")
    assert "request not supported on this domain" in failure.message
    assert "Client Credentials Flow" in failure.fix and "My Domain" in failure.fix
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_no_run_as_user(canary_org, caplog):
    canary_org.configure_app(run_as_user=False)
    with caplog.at_level(logging.DEBUG):
        report = check_connection(connection_for(canary_org), objects=STANDARD_OBJECTS)
    failure = _failed(report, "token", "no_run_as_user")
    assert "no Run As user" in failure.message and "'Run As'" in failure.fix
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_api_disabled_user(canary_org, caplog):
    canary_org.configure_app(api_enabled=False)
    with caplog.at_level(logging.DEBUG):
        report = check_connection(connection_for(canary_org), objects=STANDARD_OBJECTS)
    failure = _failed(report, "api_access", "api_disabled")
    assert "API_DISABLED_FOR_ORG" in failure.message
    assert "API Enabled" in failure.fix and "permission set" in failure.fix
    assert [c.ok for c in report.checks] == [True, True, True, False]
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_plain_http_url_that_is_not_loopback(caplog):
    with caplog.at_level(logging.DEBUG):
        report = check_connection(OrgConnection("http://acme.my.salesforce.com", "3MVG9key", CANARY_SECRET),
                                  objects=STANDARD_OBJECTS)
    failure = _failed(report, "settings", "config")
    assert "plain http://" in failure.message and "https://" in failure.fix
    assert len(report.checks) == 1  # nothing was sent
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_login_salesforce_com_url(caplog):
    with caplog.at_level(logging.DEBUG):
        report = check_connection(OrgConnection("https://login.salesforce.com", "3MVG9key", CANARY_SECRET),
                                  objects=STANDARD_OBJECTS)
    failure = _failed(report, "settings", "config")
    assert "only works on the org's own My Domain" in failure.message
    assert "https://<yourdomain>.my.salesforce.com" in failure.fix
    assert "<yourdomain>--<sandbox>.sandbox.my.salesforce.com" in failure.fix
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_a_url_that_is_not_salesforce(html_site, caplog):
    with caplog.at_level(logging.DEBUG):
        report = check_connection(OrgConnection(html_site, "3MVG9key", CANARY_SECRET), objects=STANDARD_OBJECTS)
    failure = _failed(report, "salesforce_url", "not_salesforce")
    assert "is not a Salesforce URL" in failure.message and "text/html" in failure.message
    assert "SALESFORCE_INSTANCE_URL" in failure.fix and "my.salesforce.com" in failure.fix
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_the_token_endpoint_of_a_site_that_is_not_salesforce(html_site, caplog):
    connection = OrgConnection(html_site, "3MVG9key", CANARY_SECRET)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as caught:
        TokenManager(connection, connection.http_session()).token()
    assert caught.value.reason == "not_salesforce"
    assert "did not answer like a Salesforce org" in caught.value.message
    assert CANARY_SECRET not in str(caught.value) and CANARY_SECRET not in caplog.text


def test_nothing_listening(caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = check_connection(OrgConnection(f"https://127.0.0.1:{port}", "3MVG9key", CANARY_SECRET),
                              objects=STANDARD_OBJECTS)
    failure = _failed(report, "salesforce_url", "unreachable")
    assert "could not reach" in failure.message
    _assert_no_leak(report, caplog, CANARY_SECRET)


def test_an_object_the_run_as_user_cannot_see(canary_org, caplog):
    with caplog.at_level(logging.DEBUG):
        report = check_connection(connection_for(canary_org), objects=("Account", "Invoice__c", "Contact"))
    assert report.ok is False
    by_name = {c.name: c for c in report.checks}
    assert by_name["object Account"].ok and by_name["object Contact"].ok
    missing = by_name["object Invoice__c"]
    assert missing.ok is False and missing.reason == "insufficient_access"
    assert "Object Invoice__c is missing or unreadable" in missing.message
    assert "does not exist in this org or the run-as user cannot read it" in missing.message
    assert "permission set" in missing.fix
    assert report.failure is missing
    _assert_no_leak(report, caplog, CANARY_SECRET)
