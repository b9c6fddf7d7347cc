"""Errors a user can act on: each says what is wrong and how to fix it, and never carries a secret."""

from __future__ import annotations


class SalesforceError(Exception):
    """Base class. `fix` is the action that resolves it, shown after the message."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message if not fix else f"{message} Fix: {fix}")
        self.message = message
        self.fix = fix


class ConfigError(SalesforceError):
    """The connection settings are unusable before any request is made (empty, malformed, plain http)."""


class AuthError(SalesforceError):
    """The org refused the credentials. `reason` is one of: bad_key, bad_secret, flow_disabled,
    no_run_as_user, api_disabled, other_org, not_salesforce, token_expired, unknown."""

    def __init__(self, reason: str, message: str, fix: str = ""):
        super().__init__(message, fix)
        self.reason = reason


class ApiError(SalesforceError):
    """A Salesforce API error response (status + errorCode + message)."""

    def __init__(self, status: int, error_code: str, message: str, url_path: str = "", fix: str = ""):
        super().__init__(f"Salesforce answered {status} {error_code}: {message} ({url_path})", fix)
        self.status = status
        self.error_code = error_code
        self.api_message = message
        self.url_path = url_path


class InsufficientAccess(SalesforceError):
    """The run-as user cannot read an object or field the pipeline needs."""

    def __init__(self, object_name: str, field_name: str | None = None):
        what = f"field {object_name}.{field_name}" if field_name else f"object {object_name}"
        fix = (f"in Setup, give the integration (run-as) user read access to {what}: Object Manager > "
               f"{object_name} > Fields & Relationships > {field_name} > Set Field-Level Security"
               if field_name else
               f"in Setup, add read permission on {object_name} to a permission set assigned to the run-as user")
        super().__init__(f"Insufficient access: the run-as user cannot read {what}.", fix)
        self.object_name = object_name
        self.field_name = field_name


class QuotaExhausted(SalesforceError):
    """The API quota did not free up within the allowed pause."""


class BulkJobFailed(ApiError):
    """A Bulk API 2.0 job ended in state Failed or Aborted."""


class TransientError(SalesforceError):
    """The org or the network failed in a way a later retry can fix (5xx, 420/429, a dropped connection).
    Raised once the client's own retries are used up, or by the token endpoint for the client to retry."""

    def __init__(self, message: str, fix: str = "", status: int | None = None):
        super().__init__(message, fix)
        self.status = status


class ResultCountMismatch(ApiError):
    """A Bulk API 2.0 result page held a different number of CSV rows than its `Sforce-NumberOfRecords`
    header announced: the page is incomplete or mis-parsed, so it must not be loaded."""


class QuotaPaused(SalesforceError):
    """A caller that must not wait (the change sensor's tick) met the API budget's pause: nothing was sent,
    or the org refused the call for its daily limit. The next attempt may succeed once usage frees up."""
