"""`check_connection`: check, step by step, that the pipeline can read an org, and say what to fix.

Why: a failed first sync says little ("401", "SSL error", "invalid_grant"). Setting up an External Client
App has several independent prerequisites (the URL, the key, the secret, the flow, the Run As user, API
access, object permissions), and each failure needs a different fix by a different person. This runs them
in dependency order, stops at the first prerequisite that fails, and returns a report; it never raises for
an expected failure, so a CLI or a Dagster asset check can simply render it.

The steps: the settings (no request), `GET /services/data/` without auth (is this a Salesforce org?),
the token (client credentials), one authenticated call (`/limits`: is the API enabled for the run-as
user?), and a describe of each object the caller names (the sync's objects, from the settings: the client knows
no settings; can the run-as user read it?). The object step checks every object, so that one run lists
all the permissions to grant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from sonora_pipeline.salesforce.budget import ApiBudget
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import ENV_INSTANCE_URL, MY_DOMAIN_HINT, OrgConnection, safe_url
from sonora_pipeline.salesforce.errors import (
    ApiError,
    AuthError,
    ConfigError,
    InsufficientAccess,
    QuotaExhausted,
    SalesforceError,
)


@dataclass
class Check:
    """One step of the test: what was checked, whether it passed, what was seen, and what to do."""

    name: str
    ok: bool
    message: str
    fix: str = ""
    reason: str = ""  # a machine-readable cause for failures (AuthError.reason, "config", "not_salesforce"...)


@dataclass
class ConnectionReport:
    ok: bool = False
    checks: list[Check] = field(default_factory=list)
    org_id: str | None = None
    user_id: str | None = None
    api_usage: tuple[int, int] | None = None  # (used, max) of the org's daily API requests

    @property
    def failure(self) -> Check | None:
        """The first failing check, if any."""
        return next((c for c in self.checks if not c.ok), None)

    def lines(self) -> list[str]:
        out = [f"Salesforce connection test: {'OK' if self.ok else 'FAILED'}"]
        for check in self.checks:
            out.append(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.message}")
            if check.fix and not check.ok:
                out.append(f"         fix: {check.fix}")
        if self.org_id or self.user_id:
            out.append(f"  org {self.org_id or '?'}, run-as user {self.user_id or '?'}")
        if self.api_usage:
            used, maximum = self.api_usage
            out.append(f"  API requests used in the last 24 h: {used} of {maximum}")
        return out

    def render(self) -> str:
        """Human-readable lines, one per check, with the fix under each failure."""
        return "\n".join(self.lines())


def check_connection(connection: OrgConnection, *, objects: Iterable[str]) -> ConnectionReport:
    """Run the checks in order and return the report; stops at the first failing prerequisite. `objects`:
    the Salesforce objects the run-as user must be able to read."""
    report = ConnectionReport()
    checks = report.checks

    # 1. the settings, before any request
    try:
        connection.validate()
    except ConfigError as err:
        checks.append(Check("settings", False, err.message, err.fix, "config"))
        return report
    checks.append(Check("settings", True, f"{safe_url(connection.instance_url)} ({connection.url_kind} URL), "
                                          f"API v{connection.api_version}"))

    # Quick failures suit a diagnosis: few retries, and no pausing for the quota (say so instead).
    budget = ApiBudget(max_share=1.0, max_pause_seconds=0.0, pause_poll_seconds=0.0)
    client = SalesforceClient(connection, budget, max_attempts=2, max_backoff_seconds=1.0,
                              min_backoff_seconds=0.2, timeout=(10.0, 30.0))
    try:
        # 2. is this a Salesforce org at all? (GET /services/data/ needs no auth and costs no API call)
        versions = _versions_check(client, connection)
        checks.append(versions)
        if not versions.ok:
            return report

        # 3. the token: key, secret, flow, Run As user
        try:
            client.tokens.token()
        except AuthError as err:
            checks.append(Check("token", False, err.message, err.fix, err.reason))
            return report
        except (SalesforceError, requests.RequestException) as err:
            checks.append(_unreachable("token", connection, err))
            return report
        report.org_id, report.user_id = client.tokens.org_id, client.tokens.user_id
        checks.append(Check("token", True, "the External Client App issued an access token "
                                           "(client credentials flow)"))

        # 4. one authenticated call: is the API enabled for the run-as user?
        try:
            limits = client.limits()
        except AuthError as err:
            checks.append(Check("api_access", False, err.message, err.fix, err.reason))
            return report
        except QuotaExhausted as err:
            checks.append(Check("api_access", False, err.message, err.fix, "quota_exhausted"))
            return report
        except (SalesforceError, requests.RequestException) as err:
            checks.append(_unreachable("api_access", connection, err))
            return report
        report.api_usage = _usage(budget, limits)
        checks.append(Check("api_access", True, "an authenticated REST call succeeded"))

        # 5. can the run-as user read each object the pipeline syncs?
        failed = False
        for name in objects:
            check = _object_check(client, name)
            checks.append(check)
            failed = failed or not check.ok
            if check.reason in ("quota_exhausted", "unreachable", "api_disabled", "token_expired"):
                return report  # not about this object: the rest would fail the same way
        if budget.used is not None and budget.max:
            report.api_usage = (budget.used, budget.max)
        report.ok = not failed
        return report
    finally:
        client.close()


def _versions_check(client: SalesforceClient, connection: OrgConnection) -> Check:
    url = f"{connection.instance_url}/services/data/"
    fix = f"set {ENV_INSTANCE_URL} to your org's My Domain URL: {MY_DOMAIN_HINT}."
    try:
        reply = client.session.get(url, timeout=client.timeout, allow_redirects=False)
    except requests.exceptions.SSLError as err:
        return _unreachable("salesforce_url", connection, err)
    except requests.RequestException as err:
        return _unreachable("salesforce_url", connection, err)
    try:
        body = reply.json()
    except ValueError:
        body = None
    is_versions = (reply.status_code == 200 and isinstance(body, list) and body
                   and all(isinstance(v, dict) and "version" in v for v in body))
    if not is_versions:
        kind = (reply.headers.get("Content-Type") or "no content type").split(";")[0]
        return Check("salesforce_url", False,
                     f"{safe_url(connection.instance_url)} is not a Salesforce URL: GET /services/data/ answered "
                     f"HTTP {reply.status_code} with {kind}, not the list of API versions every org serves.",
                     fix, "not_salesforce")
    offered = [str(v["version"]) for v in body]
    if connection.api_version not in offered:
        return Check("salesforce_url", False,
                     f"the org does not offer API v{connection.api_version} (it offers v{offered[0]} to "
                     f"v{offered[-1]}).", f"set the API version to one of those, e.g. {offered[-1]}.",
                     "api_version")
    return Check("salesforce_url", True, f"a Salesforce org answered (API v{offered[0]} to v{offered[-1]})")


def _object_check(client: SalesforceClient, name: str) -> Check:
    check_name = f"object {name}"
    try:
        described = client.describe(name)
    except ApiError as err:
        if err.status in (403, 404) or err.error_code in ("NOT_FOUND", "INVALID_TYPE", "INSUFFICIENT_ACCESS"):
            denied = InsufficientAccess(name)
            return Check(check_name, False,
                         f"{denied.message} (the org answered {err.error_code})", denied.fix, "insufficient_access")
        return Check(check_name, False, str(err), err.fix, "api_error")
    except AuthError as err:
        return Check(check_name, False, err.message, err.fix, err.reason)
    except QuotaExhausted as err:
        return Check(check_name, False, err.message, err.fix, "quota_exhausted")
    except (SalesforceError, requests.RequestException) as err:
        return _unreachable(check_name, client.connection, err)
    if not described.get("queryable", False):
        denied = InsufficientAccess(name)
        return Check(check_name, False, f"{denied.message} (the object is not queryable for that user)",
                     denied.fix, "insufficient_access")
    return Check(check_name, True, f"readable ({len(described.get('fields') or [])} fields visible)")


def _unreachable(name: str, connection: OrgConnection, err: BaseException) -> Check:
    """A network-level failure, described without echoing anything but the host."""
    host = safe_url(connection.instance_url)
    if isinstance(err, ConfigError):
        return Check(name, False, err.message, err.fix, "config")
    if isinstance(err, requests.exceptions.SSLError):
        return Check(name, False, f"TLS to {host} failed (the certificate is not trusted or TLS is not spoken "
                                  "there).",
                     "check the URL; for the local org set SALESFORCE_CA_BUNDLE to its ca.pem; behind a "
                     "TLS-inspecting proxy use the proxy's CA bundle.", "unreachable")
    if isinstance(err, requests.RequestException):
        return Check(name, False, f"could not reach {host} ({type(err).__name__}).",
                     f"check {ENV_INSTANCE_URL}, DNS, and any proxy or firewall between here and Salesforce.",
                     "unreachable")
    if isinstance(err, SalesforceError):
        return Check(name, False, err.message, err.fix, "unreachable")
    return Check(name, False, f"{type(err).__name__}", "", "unreachable")


def _usage(budget: ApiBudget, limits: Any) -> tuple[int, int] | None:
    if budget.used is not None and budget.max is not None:
        return budget.used, budget.max
    daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
    if isinstance(daily, dict) and isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
        return daily["Max"] - daily["Remaining"], daily["Max"]
    return None
