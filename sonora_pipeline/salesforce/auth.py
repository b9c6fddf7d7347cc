"""Access tokens for the OAuth 2.0 client credentials flow, shared by every client of one org session.

Why a manager: the client credentials flow issues no refresh token, so when the org expires a session
(401 INVALID_SESSION_ID) the only cure is a new token request. With many threads paging at once, they
all see the same 401 together; `refresh(stale_token)` is single-flight so that one of them asks the org
and the others reuse its answer, instead of stampeding the token endpoint.

Why the error mapping: the token endpoint's answers (`invalid_client_id`, `invalid_grant: request not
supported on this domain`, ...) are terse; each is turned into an `AuthError` whose `reason` a program can
test and whose message and fix a Salesforce admin can act on. Neither the consumer secret nor any access
token is ever put in a message, a log line or a repr.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from sonora_pipeline.salesforce.connection import (
    ENV_CONSUMER_KEY,
    ENV_CONSUMER_SECRET,
    ENV_INSTANCE_URL,
    MY_DOMAIN_HINT,
    OrgConnection,
    safe_url,
)
from sonora_pipeline.salesforce.errors import AuthError, TransientError

TOKEN_PATH = "/services/oauth2/token"
# An org id: key prefix 00D, then 12 more characters (15), optionally the 3-character case-safe suffix (18).
ORG_ID = re.compile(r"^00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$")
_APP_SETTINGS = "Setup > External Client App Manager > your app"
_TRANSIENT_STATUSES = {420, 429}


class TokenManager:
    """The current access token for one connection; `token()` fetches lazily, `refresh()` replaces it."""

    def __init__(self, connection: OrgConnection, session: requests.Session, *, log: Any = None,
                 timeout: tuple[float, float] = (10.0, 60.0)):
        self._connection = connection
        self._session = session
        self._log = log or logging.getLogger(__name__)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self.fetches = 0  # token requests sent to the org (successful or not)
        self.identity_url: str | None = None

    def __repr__(self) -> str:
        return f"TokenManager({safe_url(self._connection.instance_url)}, fetches={self.fetches})"

    # -- public ------------------------------------------------------------------------------------------
    def token(self, *, timeout: tuple[float, float] | None = None) -> str:
        """The current access token, fetching one on first use (`timeout`: the caller's, else the manager's)."""
        with self._lock:
            if self._token is None:
                self._token = self._fetch(timeout)
            return self._token

    def refresh(self, stale_token: str | None, *, timeout: tuple[float, float] | None = None) -> str:
        """Replace `stale_token` (the one the org just rejected) and return the new token.

        Single-flight: if another thread already replaced `stale_token`, its token is returned without a
        request.
        """
        with self._lock:
            if self._token is not None and self._token != stale_token:
                return self._token
            self._token = None
            self._token = self._fetch(timeout)
            return self._token

    @property
    def org_id(self) -> str | None:
        """The org id (00D...) of the org the credentials reach: from the identity URL of the last token
        response (`.../id/<00D...>/<005...>`), or else from the access token itself, which Salesforce prefixes
        with the 15-character org id (`00D...!AR...`). None before the first token, or when neither says."""
        parts = self._identity_parts()
        if parts and ORG_ID.match(parts[0]):
            return parts[0]
        prefix = (self._token or "").split("!", 1)[0]
        return prefix if "!" in (self._token or "") and ORG_ID.match(prefix) else None

    @property
    def user_id(self) -> str | None:
        """The run-as user's id (005...) from the identity URL of the last token response."""
        parts = self._identity_parts()
        return parts[1] if parts else None

    # -- the request -------------------------------------------------------------------------------------
    def _fetch(self, timeout: tuple[float, float] | None = None) -> str:
        url = self._connection.instance_url + TOKEN_PATH
        self.fetches += 1
        reply = self._session.post(
            url, data={"grant_type": "client_credentials"},
            auth=(self._connection.consumer_key, self._connection.consumer_secret),
            timeout=timeout or self._timeout, allow_redirects=False,
        )
        body = _json_or_none(reply)
        if reply.status_code == 200 and isinstance(body, dict) and isinstance(body.get("access_token"), str):
            self.identity_url = body.get("id") if isinstance(body.get("id"), str) else None
            self._log.info("Obtained a Salesforce access token from %s (token request #%d)",
                           urlsplit(url).netloc, self.fetches)
            return body["access_token"]
        if reply.status_code >= 500 or reply.status_code in _TRANSIENT_STATUSES:
            raise TransientError(f"The token endpoint at {safe_url(url)} answered HTTP {reply.status_code}; "
                                 "the org is busy or unavailable.", "retry later.", status=reply.status_code)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            raise _oauth_error(self._connection, body["error"], str(body.get("error_description") or ""))
        raise _not_salesforce(self._connection, reply)

    def _identity_parts(self) -> tuple[str, str] | None:
        if not self.identity_url:
            return None
        bits = urlsplit(self.identity_url).path.rstrip("/").split("/")
        if len(bits) >= 3 and bits[-3] == "id":
            return bits[-2], bits[-1]
        return None


def _json_or_none(reply: requests.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


def _not_salesforce(connection: OrgConnection, reply: requests.Response) -> AuthError:
    kind = (reply.headers.get("Content-Type") or "no content type").split(";")[0]
    what = (f"a redirect (HTTP {reply.status_code})" if 300 <= reply.status_code < 400
            else f"HTTP {reply.status_code} with {kind}")
    return AuthError(
        "not_salesforce",
        f"{safe_url(connection.instance_url)}{TOKEN_PATH} did not answer like a Salesforce org ({what} instead "
        "of an OAuth JSON response): the URL is probably not a Salesforce My Domain.",
        f"set {ENV_INSTANCE_URL} to your org's My Domain URL: {MY_DOMAIN_HINT}.",
    )


def _oauth_error(connection: OrgConnection, error: str, description: str) -> AuthError:
    """Turn the token endpoint's `{"error", "error_description"}` into an actionable AuthError."""
    url = safe_url(connection.instance_url)
    said = f"({error}: {description})" if description else f"({error})"
    if error == "invalid_client_id":
        return AuthError(
            "bad_key",
            f"The org at {url} does not know this consumer key {said}: either the key is mistyped, or the URL "
            "belongs to another org than the one where the External Client App lives (for example a sandbox "
            "instead of production, or the other way round).",
            f"copy the consumer key from that org's External Client App Manager ({_APP_SETTINGS} > Settings > "
            f"OAuth Settings > Consumer Key and Secret) into {ENV_CONSUMER_KEY}, and check that "
            f"{ENV_INSTANCE_URL} is that same org's My Domain.",
        )
    if error == "invalid_client":
        return AuthError(
            "bad_secret",
            f"The org at {url} knows the consumer key but rejected the consumer secret {said}.",
            f"copy the current consumer secret from {_APP_SETTINGS} > Settings > OAuth Settings > Consumer Key "
            f"and Secret into {ENV_CONSUMER_SECRET} (it changes when the secret is rotated).",
        )
    lowered = description.lower()
    if error == "invalid_grant" and "not supported on this domain" in lowered:
        return AuthError(
            "flow_disabled",
            f"The org at {url} refused the client credentials grant {said}: the External Client App does not "
            "have the Client Credentials Flow enabled, or the URL is not the org's My Domain.",
            f"in {_APP_SETTINGS} > Policies > OAuth Policies, enable 'Client Credentials Flow'; and make sure "
            f"{ENV_INSTANCE_URL} is the org's My Domain ({MY_DOMAIN_HINT}).",
        )
    if error == "invalid_grant" and "no client credentials user" in lowered:
        return AuthError(
            "no_run_as_user",
            f"The org at {url} has the Client Credentials Flow enabled for this app but no Run As user {said}.",
            f"in {_APP_SETTINGS} > Policies > OAuth Policies > Client Credentials Flow, set 'Run As' to the "
            "integration user whose access the pipeline should have.",
        )
    if error == "unsupported_grant_type":
        return AuthError(
            "flow_disabled",
            f"The org at {url} does not accept the client credentials grant {said}.",
            f"in {_APP_SETTINGS} > Policies > OAuth Policies, enable 'Client Credentials Flow'.",
        )
    return AuthError(
        "unknown",
        f"The org at {url} refused the client credentials {said}.",
        f"check the External Client App's OAuth settings and policies in {_APP_SETTINGS}.",
    )
