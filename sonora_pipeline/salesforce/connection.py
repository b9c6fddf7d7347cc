"""Which org, and how to reach it: an External Client App's OAuth 2.0 client credentials and the org's My Domain.

Why its own object: every later failure (TLS, DNS, OAuth) is confusing when its cause is a typo in an
environment variable, so `validate()` judges the settings before any request and names the variable to fix.
The consumer secret lives only in a field kept out of the repr and in the token request's body: it is never
logged or put in an error. The token itself is `auth.py`'s; the variables are read in `environment.py`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from sonora_pipeline.salesforce.errors import ConfigError

DEFAULT_API_VERSION = "62.0"

ENV_INSTANCE_URL = "SALESFORCE_INSTANCE_URL"
ENV_CONSUMER_KEY = "SALESFORCE_CONSUMER_KEY"
ENV_CONSUMER_SECRET = "SALESFORCE_CONSUMER_SECRET"
ENV_CA_BUNDLE = "SALESFORCE_CA_BUNDLE"

# What kind of host the instance URL names (see `OrgConnection.url_kind`).
URL_KIND_PRODUCTION = "production"  # <domain>.my.salesforce.com (also Developer Edition / Trailhead My Domains)
URL_KIND_SANDBOX = "sandbox"        # <domain>--<sandbox>.sandbox.my.salesforce.com (and scratch orgs)
URL_KIND_LOOPBACK = "loopback"      # 127.0.0.0/8, ::1, localhost: the local org used by tests and demos
URL_KIND_OTHER = "other"            # anything else (a proxy, a government cloud, a mistake)

MY_DOMAIN_HINT = ("use https://<yourdomain>.my.salesforce.com, or "
                  "<yourdomain>--<sandbox>.sandbox.my.salesforce.com for a sandbox")
LOCAL_ORG_URL = "local"  # SALESFORCE_INSTANCE_URL=local asks for the local demo org, explicitly
_GENERIC_LOGIN_HOSTS = {"login.salesforce.com", "test.salesforce.com"}
_VERSION = re.compile(r"^\d{2,3}\.\d$")


def unset_url_error() -> ConfigError:
    """The instance URL is empty or unset. There is deliberately no fallback: a deployment that lost the
    variable must stop, not sync the demo org into the real warehouse (whose reconcile would then mark every
    real row purged)."""
    return ConfigError(
        f"The Salesforce instance URL is empty: {ENV_INSTANCE_URL} is not set, so there is no org to talk to "
        "(the local demo org is only used when asked for).",
        f"set {ENV_INSTANCE_URL} to your org's My Domain URL ({MY_DOMAIN_HINT}) with {ENV_CONSUMER_KEY} and "
        f"{ENV_CONSUMER_SECRET}; or, for the local demo org, set {ENV_INSTANCE_URL}={LOCAL_ORG_URL}.")


def is_loopback_host(host: str) -> bool:
    """True for localhost and any loopback address (127.0.0.0/8, ::1): the only hosts allowed plain http."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """The URL as it may be shown to a person: scheme, host, port and path only (no user:password@, no
    query string), so that a secret pasted into the wrong variable is never echoed back."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme or not host:
        return "<unparseable URL>"
    shown = f"[{host}]" if ":" in host else host
    netloc = f"{shown}:{port}" if port else shown
    return f"{parts.scheme}://{netloc}{parts.path}"


@dataclass
class OrgConnection:
    instance_url: str
    consumer_key: str
    consumer_secret: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        # Normalise what is harmless to normalise; everything else is judged by validate().
        self.instance_url = (self.instance_url or "").strip().rstrip("/")
        self.consumer_key = (self.consumer_key or "").strip()
        self.consumer_secret = (self.consumer_secret or "").strip()
        self.api_version = str(self.api_version or DEFAULT_API_VERSION).strip().lstrip("vV")

    def __str__(self) -> str:
        return f"OrgConnection({safe_url(self.instance_url)}, API v{self.api_version})"

    # -- validation --------------------------------------------------------------------------------------
    def validate(self) -> OrgConnection:
        """Raise `ConfigError` when the settings cannot work, before any request; returns self.

        Each message names the environment variable to fix. Neither the secret nor the key is echoed.
        """
        if not self.instance_url:
            raise unset_url_error()
        if self.instance_url.lower() == LOCAL_ORG_URL:
            raise ConfigError(
                f"{ENV_INSTANCE_URL} is '{LOCAL_ORG_URL}' (the local demo org), which this entry point cannot start.",
                "run it through `sonora-pipeline` or Dagster, which look up the running local org, or set "
                f"{ENV_INSTANCE_URL} to the local org's https://localhost:<port> address.")
        if not self.consumer_key:
            raise ConfigError(
                "The External Client App's consumer key is empty.",
                f"set {ENV_CONSUMER_KEY} to the consumer key shown in Setup > External Client App Manager > "
                "your app > Settings > OAuth Settings > Consumer Key and Secret.")
        if not self.consumer_secret:
            raise ConfigError(
                "The External Client App's consumer secret is empty.",
                f"set {ENV_CONSUMER_SECRET} to the consumer secret shown next to the consumer key in Setup > "
                "External Client App Manager > your app > Settings > OAuth Settings.")
        self._validate_url()
        if not _VERSION.match(self.api_version):
            raise ConfigError(f"The API version {self.api_version!r} is not a Salesforce API version.",
                              f"use a version like {DEFAULT_API_VERSION} (no leading 'v').")
        return self

    def _validate_url(self) -> None:
        shown = safe_url(self.instance_url)
        try:
            parts = urlsplit(self.instance_url)
            host = (parts.hostname or "").lower()
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(f"{ENV_INSTANCE_URL} is not a valid URL.",
                              f"set {ENV_INSTANCE_URL} to a URL like https://<yourdomain>.my.salesforce.com.") from None
        if parts.scheme not in ("http", "https") or not host:
            raise ConfigError(
                f"{ENV_INSTANCE_URL} ({shown}) is not a valid URL: it needs https:// and a host name.",
                f"set {ENV_INSTANCE_URL} to your org's My Domain URL: {MY_DOMAIN_HINT}.")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(
                f"{ENV_INSTANCE_URL} ({shown}) contains a user name or password before the host.",
                f"remove the 'user:password@' part; credentials belong in {ENV_CONSUMER_KEY} and "
                f"{ENV_CONSUMER_SECRET}.")
        if parts.query or parts.fragment:
            raise ConfigError(
                f"{ENV_INSTANCE_URL} ({shown}) has a query string or fragment.",
                f"set {ENV_INSTANCE_URL} to just the scheme and host, e.g. https://<yourdomain>.my.salesforce.com.")
        if parts.scheme == "http" and not is_loopback_host(host):
            raise ConfigError(
                f"{ENV_INSTANCE_URL} ({shown}) uses plain http://; Salesforce only serves the API over https "
                "and the credentials must not travel unencrypted.",
                f"use https:// in {ENV_INSTANCE_URL} ({MY_DOMAIN_HINT}).")
        if parts.path not in ("", "/"):
            raise ConfigError(
                f"{ENV_INSTANCE_URL} ({shown}) has a path ({parts.path}); the instance URL is only the "
                "scheme and host.",
                f"set {ENV_INSTANCE_URL} to {parts.scheme}://{parts.netloc.rpartition('@')[2]} "
                f"(without {parts.path}).")
        if host in _GENERIC_LOGIN_HOSTS:
            raise ConfigError(
                f"{ENV_INSTANCE_URL} is {host}, but the client credentials flow only works on the org's own "
                "My Domain, not on the generic login hosts.",
                f"{MY_DOMAIN_HINT} (Setup > My Domain shows it).")
        if host.endswith(".lightning.force.com"):
            domain = host[: -len(".lightning.force.com")]
            raise ConfigError(
                f"{ENV_INSTANCE_URL} ({shown}) is the Lightning UI address, not the API (My Domain) address.",
                f"use https://{domain}.my.salesforce.com ({MY_DOMAIN_HINT}).")

    # -- what the URL names ------------------------------------------------------------------------------
    @property
    def url_kind(self) -> str:
        """production / sandbox / loopback / other, from the instance URL's host (no request made)."""
        try:
            host = (urlsplit(self.instance_url).hostname or "").lower()
        except ValueError:
            return URL_KIND_OTHER
        if not host:
            return URL_KIND_OTHER
        if is_loopback_host(host):
            return URL_KIND_LOOPBACK
        if host.endswith(".sandbox.my.salesforce.com") or host.endswith(".scratch.my.salesforce.com"):
            return URL_KIND_SANDBOX
        if host.endswith(".my.salesforce.com"):
            return URL_KIND_PRODUCTION
        return URL_KIND_OTHER

    @property
    def api_base(self) -> str:
        """Root of the versioned REST API, e.g. https://acme.my.salesforce.com/services/data/v62.0"""
        return f"{self.instance_url}/services/data/v{self.api_version}"

    # -- sessions ------------------------------------------------------------------
    def http_session(self) -> requests.Session:
        session = requests.Session()
        if self.ca_bundle:
            session.verify = self.ca_bundle
            session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override `verify`
        return session

    @property
    def host(self) -> str:
        return urlsplit(self.instance_url).netloc
