"""OrgConnection.validate(): unusable settings are refused before any request, naming the variable to fix,
and the consumer secret never appears in a repr, a str or an error."""

from __future__ import annotations

import pytest

from sonora_pipeline.salesforce.connection import (
    URL_KIND_LOOPBACK,
    URL_KIND_OTHER,
    URL_KIND_PRODUCTION,
    URL_KIND_SANDBOX,
    OrgConnection,
)
from sonora_pipeline.salesforce.errors import ConfigError
from sonora_pipeline_tests.salesforce.conftest import CANARY_SECRET

KEY = "3MVG9exampleKey"


def conn(url: str = "https://acme.my.salesforce.com", key: str = KEY, secret: str = CANARY_SECRET) -> OrgConnection:
    return OrgConnection(instance_url=url, consumer_key=key, consumer_secret=secret)


def refused(connection: OrgConnection) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        connection.validate()
    err = caught.value
    assert CANARY_SECRET not in str(err) and CANARY_SECRET not in err.fix and CANARY_SECRET not in repr(err)
    return err


@pytest.mark.parametrize("field, env", [
    ("url", "SALESFORCE_INSTANCE_URL"),
    ("key", "SALESFORCE_CONSUMER_KEY"),
    ("secret", "SALESFORCE_CONSUMER_SECRET"),
])
def test_empty_settings_name_their_environment_variable(field, env):
    values = {"url": "https://acme.my.salesforce.com", "key": KEY, "secret": CANARY_SECRET, field: "  "}
    err = refused(conn(**values))
    assert env in err.fix
    assert "empty" in err.message


@pytest.mark.parametrize("url", ["acme.my.salesforce.com", "ftp://acme.my.salesforce.com", "https://",
                                 "https://acme.my.salesforce.com:99999", "https://acme.my.salesforce.com?x=1"])
def test_malformed_urls_are_refused(url):
    err = refused(conn(url))
    assert "SALESFORCE_INSTANCE_URL" in str(err)


def test_plain_http_is_refused_unless_loopback():
    err = refused(conn("http://acme.my.salesforce.com"))
    assert "plain http" in err.message and "https://" in err.fix
    for url in ("http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:9000", "http://[::1]:8080"):
        assert conn(url).validate().url_kind == URL_KIND_LOOPBACK


def test_a_path_after_the_host_is_refused_and_the_fix_gives_the_bare_host():
    err = refused(conn("https://acme.my.salesforce.com/lightning/page/home"))
    assert "/lightning/page/home" in err.message
    assert "https://acme.my.salesforce.com " in err.fix


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com", "LOGIN.salesforce.com"])
def test_generic_login_hosts_are_refused_with_the_my_domain_hint(host):
    err = refused(conn(f"https://{host}"))
    assert "My Domain" in err.message
    assert "https://<yourdomain>.my.salesforce.com" in err.fix
    assert "<yourdomain>--<sandbox>.sandbox.my.salesforce.com" in err.fix


def test_lightning_ui_address_is_refused_with_the_api_address():
    err = refused(conn("https://acme.lightning.force.com"))
    assert "https://acme.my.salesforce.com" in err.fix


def test_credentials_in_the_url_are_refused_without_being_echoed():
    err = refused(conn(f"https://user:{CANARY_SECRET}@acme.my.salesforce.com"))
    assert "user:password@" in err.fix


def test_trailing_slash_is_normalised_and_valid_settings_pass():
    c = conn("https://acme.my.salesforce.com/").validate()
    assert c.instance_url == "https://acme.my.salesforce.com"
    assert c.api_base == "https://acme.my.salesforce.com/services/data/v62.0"
    assert OrgConnection("https://acme.my.salesforce.com", KEY, CANARY_SECRET, api_version="v61.0").api_version == "61.0"
    refused(OrgConnection("https://acme.my.salesforce.com", KEY, CANARY_SECRET, api_version="latest"))


@pytest.mark.parametrize("url, kind", [
    ("https://acme.my.salesforce.com", URL_KIND_PRODUCTION),
    ("https://acme--uat.sandbox.my.salesforce.com", URL_KIND_SANDBOX),
    ("https://localhost:8443", URL_KIND_LOOPBACK),
    ("https://127.0.0.1:8443", URL_KIND_LOOPBACK),
    ("https://[::1]:8443", URL_KIND_LOOPBACK),
    ("https://salesforce.example.com", URL_KIND_OTHER),
    ("https://acme.my.salesforce.com.evil.example", URL_KIND_OTHER),
])
def test_url_kind(url, kind):
    assert conn(url).url_kind == kind


def test_secret_never_in_repr_or_str():
    c = conn()
    assert CANARY_SECRET not in repr(c)
    assert CANARY_SECRET not in str(c)
    assert CANARY_SECRET not in f"{c!s} {c!r} {[c]}"
