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
    """An object or field the pipeline needs is not visible to the run-as user.

    Salesforce answers the same way for a field (or object) that does not exist and for one the run-as user may
    not read: describe leaves it out, a query says it does not exist. So the message says "missing or
    unreadable" and the fix tells how to check both, instead of blaming field-level security for a field that
    is simply not in this org (a custom field of another org named in the settings)."""

    def __init__(self, object_name: str, field_name: str | None = None):
        if field_name:
            message = (f"Field {object_name}.{field_name} is missing or unreadable: the run-as user's describe of "
                       f"{object_name} does not list it, so either it does not exist in this org or the run-as "
                       "user cannot read it (the Salesforce API does not tell which).")
            fix = (f"check both in Setup > Object Manager > {object_name} > Fields & Relationships. If no field "
                   f"has the API name {field_name}, correct or remove it in your settings file (mapping, "
                   "conditions, renewals/health fields, sync.required_fields) or create the field; if it is "
                   f"there, give the run-as user read access: {field_name} > Set Field-Level Security > Visible "
                   "for the run-as user's profile, or Read on the field in a permission set assigned to that user")
        else:
            message = (f"Object {object_name} is missing or unreadable: either it does not exist in this org or "
                       "the run-as user cannot read it (the Salesforce API does not tell which).")
            fix = (f"check both: Setup > Object Manager lists {object_name} if it exists (otherwise correct or "
                   "remove it in your settings, e.g. sync.custom_objects); if it is there, add Read on "
                   f"{object_name} to a permission set assigned to the run-as user")
        super().__init__(message, fix)
        self.object_name = object_name
        self.field_name = field_name


class OrgMismatch(SalesforceError):
    """The warehouse mirrors one org and the credentials reach another: a sync, reconcile or write-back would
    mix two orgs' records (and a reconcile would mark every row of the first one purged), so nothing is done."""

    def __init__(self, mirrored_org: str, mirrored_url: str, connected_org: str, connected_url: str,
                 database: str = "this warehouse"):
        super().__init__(
            f"Refused: {database} mirrors org {mirrored_org} (first synced from {mirrored_url}), but the "
            f"credentials reach org {connected_org} ({connected_url}). Nothing was read into or written to it.",
            "to mirror the other org, point SONORA_DUCKDB_PATH at a new file; to keep this warehouse, restore the "
            f"SALESFORCE_INSTANCE_URL, SALESFORCE_CONSUMER_KEY and SALESFORCE_CONSUMER_SECRET of org {mirrored_org}.")
        self.mirrored_org = mirrored_org
        self.connected_org = connected_org


class TooManyPurges(SalesforceError):
    """A reconcile would mark more of an object's mirrored rows purged than `sync.max_purge_share` allows: more
    likely a mistake (another org, a run-as user who lost sharing access) than a real mass delete."""

    def __init__(self, object_name: str, would_purge: int, mirrored: int, max_share: float):
        share = would_purge / mirrored if mirrored else 1.0
        super().__init__(
            f"Refused: reconciling {object_name} would mark {would_purge:,} of its {mirrored:,} live mirrored rows "
            f"purged ({share:.0%}), more than sync.max_purge_share ({max_share:.0%}) allows in one run. Nothing was "
            f"marked for {object_name}. A run-as user who lost access to records (sharing rules, a changed role) "
            "or credentials of another org look the same as a mass delete.",
            f"check that the run-as user still sees {object_name}'s records (e.g. SELECT COUNT() FROM {object_name} "
            "as that user); if they really were deleted, run salesforce_reconcile_job once with run config "
            "ops: {reconcile_deleted_ids: {config: {max_purge_share: 1.0}}}, or raise sync.max_purge_share.")
        self.object_name = object_name
        self.would_purge = would_purge
        self.mirrored = mirrored


class QuotaExhausted(SalesforceError):
    """The API quota did not free up within the allowed pause."""


class BulkJobFailed(ApiError):
    """A Bulk API 2.0 job ended in state Failed or Aborted."""


class BulkJobTimeout(SalesforceError):
    """A Bulk API 2.0 job was not done by the client's deadline. `job_id` names it for Setup > Bulk Data Load
    Jobs; whether it was aborted (a query) or left to finish (an ingest, whose rows may be written) is said."""

    def __init__(self, message: str, fix: str, job_id: str):
        super().__init__(message, fix)
        self.job_id = job_id


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
