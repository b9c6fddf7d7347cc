"""One way a request reaches the org: token, budget, retries, timeouts and error mapping, in one place.

Why one place: every REST and Bulk call must obey the same rules, and a rule applied by some calls only is
a rule that fails in production. The retry rules, and why:
- 5xx, 420, 429, timeouts, connection errors (a dropped socket included) and truncated bodies are
  transient: retried with exponential backoff plus jitter (tenacity), capped at `max_backoff_seconds`, at
  most `max_attempts` sends. Reads are idempotent; a Bulk result page is re-read with the same locator.
- 401 INVALID_SESSION_ID: the session expired; the token is replaced (single-flight) and the call is sent
  once more. A second 401 means the new token is refused too, which no retry fixes.
- 403 REQUEST_LIMIT_EXCEEDED: the daily allowance is spent; the `ApiBudget` pauses and the call is retried
  without a count limit; the budget raises `QuotaExhausted` when it gives up.
- A write (`idempotent=False`) that may have reached the org is never re-sent: `WriteOutcomeUnknown`.
- Anything else 4xx is the caller's problem (bad SOQL, missing object...): `ApiError`, no retry.

`OrgSession` is what the calls to one org share (the connection pool and the access token); a `Transport`
adds one caller's rules (timeouts, attempts, whether to wait for the quota) and counts its calls.
"""

from __future__ import annotations

import decimal
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from sonora_pipeline.salesforce.auth import TokenManager
from sonora_pipeline.salesforce.budget import ApiBudget, parse_limit_info
from sonora_pipeline.salesforce.connection import ENV_CA_BUNDLE, ENV_INSTANCE_URL, OrgConnection, safe_url
from sonora_pipeline.salesforce.errors import ApiError, AuthError, ConfigError, TransientError

DEFAULT_TIMEOUT = (10.0, 120.0)  # (connect, read) seconds
_TRANSIENT_STATUSES = {420, 429}
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,      # refused, reset, dropped (RemoteDisconnected), DNS
    requests.exceptions.Timeout,              # connect and read timeouts
    requests.exceptions.ChunkedEncodingError,  # body cut short
    requests.exceptions.ContentDecodingError,  # gzip stream cut short
)


class WriteOutcomeUnknown(TransientError):
    """A write (collections PATCH, Bulk ingest close) failed after the request may have reached the org: it
    may or may not have been applied. Not retried blindly: the caller re-reads the org's values and sends
    again only what is not there."""


class _Retryable(Exception):
    """Internal: one send failed in a way tenacity should retry."""

    def __init__(self, description: str, status: int | None = None):
        super().__init__(description)
        self.description = description
        self.status = status


class _LimitExceeded(Exception):
    """Internal: 403 REQUEST_LIMIT_EXCEEDED; the budget decides when to try again."""

    def __init__(self, usage: tuple[int, int] | None):
        super().__init__("REQUEST_LIMIT_EXCEEDED")
        self.usage: tuple[int, ...] = usage or ()


class _Ambiguous(Exception):
    """Internal: a write request may have reached the org, and its outcome is unknown (no retry)."""

    def __init__(self, description: str, status: int | None = None):
        super().__init__(description)
        self.description = description
        self.status = status


class OrgSession:
    """The HTTP connection pool and the access token of one org, shared by every client made from it (a
    Dagster run's steps, a run's threads), so that a run asks for one token, not one per client."""

    def __init__(self, connection: OrgConnection, *, log: Any = None):
        self.connection = connection.validate()
        self.http = connection.http_session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        self.tokens = TokenManager(connection, self.http, log=log)

    def close(self) -> None:
        self.http.close()


class Transport:
    """One caller's way to the org: the rules above over a shared `OrgSession`. Thread-safe."""

    def __init__(self, connection: OrgConnection | OrgSession, budget: ApiBudget | None = None, *, log: Any = None,
                 max_attempts: int = 6, max_backoff_seconds: float = 30.0, min_backoff_seconds: float = 0.5,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, sleep: Callable[[float], None] = time.sleep,
                 wait_for_quota: bool = True):
        self.log = log or logging.getLogger(__name__)
        # A session of our own (closed by close()) unless one is shared with us (its owner closes it).
        self._owns_session = isinstance(connection, OrgConnection)
        self.org_session = OrgSession(connection, log=self.log) if isinstance(connection, OrgConnection) else connection
        self.connection = self.org_session.connection
        self.session = self.org_session.http
        self.tokens = self.org_session.tokens
        # A budget per client only when none is given; clients of one org in one run should share one.
        self.budget = budget if budget is not None else ApiBudget()
        self.max_attempts = max(1, max_attempts)
        self.max_backoff_seconds = max_backoff_seconds
        self.min_backoff_seconds = min(min_backoff_seconds, max_backoff_seconds)
        self.timeout = timeout
        self.wait_for_quota = wait_for_quota  # False: a quota pause raises QuotaPaused at once (the sensor)
        self._sleep = sleep
        self.base_url = self.connection.api_base
        self._lock = threading.Lock()
        self.api_calls = 0  # REST/Bulk calls made through this transport (token requests excluded)
        self.retries = 0
        self._server_offset: timedelta | None = None

    def close(self) -> None:
        """Close the HTTP session if it is this client's own (a shared one is closed by its owner)."""
        if self._owns_session:
            self.org_session.close()

    # -- the org's clock ---------------------------------------------------------------------------------
    def server_now(self) -> datetime:
        """The org's current time (UTC, aware): our clock corrected by the offset seen in the last
        response's `Date` header. Sync windows and their lag use it, so a skewed local clock cannot make
        the sync skip or double-read rows. Asks the (unauthenticated, free) versions list if no call was
        made yet."""
        if self._server_offset is None:
            try:
                reply = self.session.get(self.connection.instance_url + "/services/data/", timeout=self.timeout)
                self._note_server_date(reply.headers.get("Date"))
            except _TRANSPORT_ERRORS:
                pass
        # The Date header has whole seconds: stay one second behind so nothing counts as read too early.
        offset = self._server_offset or timedelta(0)
        return datetime.now(UTC) + offset - timedelta(seconds=1)

    def _note_server_date(self, header: str | None) -> None:
        if not header:
            return
        try:
            server = parsedate_to_datetime(header)  # an HTTP date (RFC 7231), not a Salesforce datetime
        except (TypeError, ValueError):
            return
        self._server_offset = server - datetime.now(UTC)

    # -- the one way a request is made -------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith("/services/"):
            return self.connection.instance_url + path  # nextRecordsUrl and other absolute paths
        return f"{self.base_url}/{path.lstrip('/')}"

    def _get_json(self, url: str, *, params: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None, attempts: int = 3, exact_numbers: bool = False) -> Any:
        """GET and parse; a malformed body (cut short by a proxy or a dropped stream) is read again, which
        is safe for a read, before it is reported. `exact_numbers` decodes JSON numbers with a fraction or
        exponent as `Decimal`: record values (an 18-digit currency) must not pass through a float."""
        for attempt in range(1, attempts + 1):
            try:
                return self._json(self._call("GET", url, params=params, headers=headers),
                                  parse_float=decimal.Decimal if exact_numbers else None)
            except ApiError as err:
                if err.error_code != "NOT_JSON" or attempt == attempts:
                    raise
                self.log.warning("Malformed JSON from %s (attempt %d); reading it again", path_of(url), attempt)
        raise AssertionError("unreachable")

    def _json(self, reply: requests.Response, *, parse_float: Callable[[str], Any] | None = None) -> Any:
        try:
            return reply.json(parse_float=parse_float) if parse_float else reply.json()
        except ValueError:
            kind = (reply.headers.get("Content-Type") or "no content type").split(";")[0]
            raise ApiError(reply.status_code, "NOT_JSON",
                           f"the answer was not valid JSON ({kind}, {len(reply.content)} bytes: malformed or cut "
                           "short)",
                           path_of(reply.request.url or "")) from None

    def _call(self, method: str, url: str, *, params: dict[str, Any] | None = None,
              json_body: Any = None, headers: dict[str, str] | None = None, data: bytes | None = None,
              idempotent: bool = True) -> requests.Response:
        """One logical call: budget gate, token, transient retries and quota pauses. Returns a 2xx/3xx
        response or raises a SalesforceError."""
        path = path_of(url)
        try:
            while True:
                retrying = Retrying(
                    stop=stop_after_attempt(self.max_attempts),
                    wait=wait_exponential_jitter(multiplier=self.min_backoff_seconds, max=self.max_backoff_seconds,
                                                 jitter=self.min_backoff_seconds),
                    retry=retry_if_exception_type(_Retryable),
                    sleep=self._sleep,
                    before_sleep=lambda state: self._log_retry(method, path, state),
                    reraise=True,
                )
                try:
                    return retrying(self._attempt, method, url, params, json_body, headers or {}, data,
                                    idempotent)
                except _Ambiguous as exc:
                    raise WriteOutcomeUnknown(
                        f"{method} {path} may or may not have been applied ({exc.description}); it was not "
                        "sent again.", "re-read the records and send only the values that are missing.",
                        status=exc.status) from None
                except _LimitExceeded as refused:
                    # pauses, or raises QuotaExhausted (QuotaPaused at once for a client that must not wait)
                    self.budget.on_limit_exceeded(*refused.usage, wait=self.wait_for_quota)
                except _Retryable as exc:
                    raise TransientError(
                        f"Salesforce at {safe_url(self.connection.instance_url)} did not answer {method} {path} "
                        f"after {self.max_attempts} attempts (last: {exc.description}).",
                        f"check {ENV_INSTANCE_URL}; if it is right, the org or the network is unavailable: run "
                        "again later (the next run starts where this one stopped).", status=exc.status) from None
        finally:
            self.budget.after_call()

    def _attempt(self, method: str, url: str, params: dict[str, Any] | None, json_body: Any,
                 headers: dict[str, str], data: bytes | None = None, idempotent: bool = True) -> requests.Response:
        self.budget.before_call(wait=self.wait_for_quota)
        token = self._token(None)
        reply = self._send(method, url, token, params, json_body, headers, data, idempotent)
        if reply.status_code == 401 and error_of(reply)[0] == "INVALID_SESSION_ID":
            self.log.info("Salesforce session expired; getting a new access token")
            token = self._token(token)
            reply = self._send(method, url, token, params, json_body, headers, data, idempotent)
        try:
            return self._check(reply, method, url)
        except _Retryable as exc:
            if idempotent or exc.status in _TRANSIENT_STATUSES:  # 420/429: refused before processing
                raise
            raise _Ambiguous(exc.description, exc.status) from None

    def _token(self, stale: str | None) -> str:
        timeout = (self.timeout[0], min(self.timeout[1], 60.0))
        try:
            return self.tokens.token(timeout=timeout) if stale is None else self.tokens.refresh(stale, timeout=timeout)
        except TransientError as exc:
            raise _Retryable(f"token endpoint HTTP {exc.status}", exc.status) from None
        except _TRANSPORT_ERRORS as exc:
            self._raise_if_certificate(exc)
            raise _Retryable(f"token endpoint: {type(exc).__name__}") from None

    def _send(self, method: str, url: str, token: str, params: dict[str, Any] | None, json_body: Any,
              headers: dict[str, str], data: bytes | None = None, idempotent: bool = True) -> requests.Response:
        with self._lock:
            self.api_calls += 1
        try:
            reply = self.session.request(method, url, params=params, json=json_body, data=data,
                                         headers={**headers, "Authorization": f"Bearer {token}"},
                                         timeout=self.timeout, allow_redirects=False)
        except _TRANSPORT_ERRORS as exc:
            self._raise_if_certificate(exc)
            if not idempotent and not _pre_send(exc):
                raise _Ambiguous(type(exc).__name__) from None
            raise _Retryable(type(exc).__name__) from None
        self._note_server_date(reply.headers.get("Date"))
        usage = parse_limit_info(reply.headers.get("Sforce-Limit-Info"))
        if reply.status_code == 403 and error_of(reply)[0] == "REQUEST_LIMIT_EXCEEDED":
            # Not an ordinary observation: the budget must not count a refusal as the quota freeing up.
            raise _LimitExceeded(usage)
        if usage is not None:
            self.budget.observe(*usage)
        return reply

    def _check(self, reply: requests.Response, method: str, url: str) -> requests.Response:
        status = reply.status_code
        if status < 400:
            return reply
        code, message = error_of(reply)
        path = path_of(url)
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise _Retryable(f"HTTP {status} {code}", status)
        if status == 403 and code == "API_DISABLED_FOR_ORG":
            raise AuthError(
                "api_disabled",
                f"The org accepted the credentials but refused the API call ({code}: {message}): the run-as "
                "user may not use the API.",
                "grant 'API Enabled' to the run-as user's profile or to a permission set assigned to that user "
                "(the org's edition must include API access).")
        if status == 401:
            raise AuthError(
                "token_expired",
                f"The org refused a freshly issued access token for {method} {path} ({code}: {message}).",
                "check the External Client App's session policies and that the run-as user is active.")
        raise ApiError(status, code, message, path)

    def _raise_if_certificate(self, exc: BaseException) -> None:
        if _is_certificate_problem(exc):
            raise ConfigError(
                f"The TLS certificate of {safe_url(self.connection.instance_url)} is not trusted.",
                f"check {ENV_INSTANCE_URL}; for the local org set {ENV_CA_BUNDLE} to its ca.pem; behind a "
                f"TLS-inspecting proxy, point {ENV_CA_BUNDLE} at the proxy's CA bundle.") from None

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        why = exc.description if isinstance(exc, _Retryable) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning("Salesforce %s %s failed (%s); retry %d of %d in %.2f s", method, path, why,
                         state.attempt_number, self.max_attempts - 1, wait)


def error_of(reply: requests.Response) -> tuple[str, str]:
    """(errorCode, message) from a Salesforce error body (a JSON array), or a stand-in for other bodies."""
    try:
        body = reply.json()
    except ValueError:
        kind = (reply.headers.get("Content-Type") or "no content type").split(";")[0]
        return f"HTTP_{reply.status_code}", f"non-JSON answer ({kind})"
    item = body[0] if isinstance(body, list) and body else body
    if isinstance(item, dict):
        code = str(item.get("errorCode") or item.get("error") or f"HTTP_{reply.status_code}")
        message = str(item.get("message") or item.get("error_description") or "")
        return code, message
    return f"HTTP_{reply.status_code}", "unexpected answer"


def path_of(url: str) -> str:
    """The URL's path only: for messages and logs (query strings carry SOQL, never needed there)."""
    return urlsplit(url).path


def _pre_send(exc: BaseException) -> bool:
    """True when a transport error surely happened before the request left (nothing reached the org)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    text = repr(exc)
    return isinstance(exc, requests.exceptions.ConnectionError) and (
        "NewConnectionError" in text or "Connection refused" in text or "Name or service not known" in text)


def _is_certificate_problem(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, requests.exceptions.SSLError) and (
        "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text.lower())
