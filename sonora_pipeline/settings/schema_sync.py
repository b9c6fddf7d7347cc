"""The `sync` section: how the mirror is kept (windows, first import, API use, which objects).

Read by the sync and its Dagster assets; `parse_initial_import` gives a one-run lookback (command line or
run config) the same check and forms as the setting.
"""

from __future__ import annotations

import re
from datetime import date

from pydantic import Field, ValidationError, field_validator

from sonora_pipeline.settings.fields import Strict

STANDARD_OBJECTS = ("Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User")
_CUSTOM_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")
_SINCE = re.compile(r"^since:(\d{4}-\d{2}-\d{2})$")


class SyncSettings(Strict):
    """How the mirror is kept: windows, initial import, API use."""

    partitions_start: date = Field(
        default=date(2025, 1, 1),
        description="First day of the daily sync windows (partitions) on SystemModstamp.")
    initial_import: str = Field(
        default="active",
        description="First import: 'active' (active accounts, open opportunities and their related records), "
                    "'all' (everything, deleted and archived included), or 'since:YYYY-MM-DD'.")
    active_account_types: list[str] = Field(
        default_factory=lambda: ["Customer - Direct", "Customer - Channel"],
        description="Account.Type values that mark an account as active for the 'active' initial import "
                    "(accounts with an open opportunity are active too).")
    lag_seconds: int = Field(default=120, ge=0, le=3600,
                             description="Never read rows modified in the last N seconds (late-visible rows).")
    overlap_seconds: int = Field(default=600, ge=0, le=86400,
                                 description="Re-read N seconds before the previous window's end.")
    bulk_threshold: int = Field(default=5000, ge=1,
                                description="Windows with more rows than this use Bulk API 2.0, smaller ones REST.")
    max_quota_share: float = Field(default=0.8, gt=0, le=1,
                                   description="Share of the org's daily API requests the pipeline may use.")
    quota_pause_seconds: float = Field(default=300, gt=0,
                                       description="How long to wait between checks while the quota is spent.")
    custom_objects: list[str] = Field(default_factory=list, description="Custom objects to mirror, e.g. Invoice__c.")
    max_purge_share: float = Field(
        default=0.5, gt=0, le=1,
        description="A reconcile refuses to mark more than this share of an object's live mirrored rows purged in "
                    "one run (a safety valve: another org or a run-as user who lost access looks like a mass "
                    "delete); 1 = no limit. One run can override it with run config.")
    required_fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Fields the pipeline must be able to read, per object (e.g. Account: [ARR__c]); a sync "
                    "stops with the object, field and the Salesforce setting to change when one is unreadable.")

    @field_validator("initial_import")
    @classmethod
    def _check_initial_import(cls, value: str) -> str:
        if value in ("active", "all"):
            return value
        match = _SINCE.match(value)
        if match:
            try:
                date.fromisoformat(match.group(1))
            except ValueError as err:  # since:2025-13-01: the form is right, the day does not exist
                raise ValueError(f"{match.group(1)} is not a date ({err}); write since:YYYY-MM-DD with a real day "
                                 "(e.g. since:2025-06-01), active or all") from None
            return value
        raise ValueError("must be 'active', 'all' or 'since:YYYY-MM-DD' (e.g. since:2025-06-01)")

    @field_validator("custom_objects")
    @classmethod
    def _check_custom_objects(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _CUSTOM_OBJECT.match(name):
                raise ValueError(f"{name!r} is not a custom object API name (they end in __c, e.g. Invoice__c)")
        return value

    @property
    def objects(self) -> tuple[str, ...]:
        return STANDARD_OBJECTS + tuple(self.custom_objects)

    def initial_since(self) -> date | None:
        match = _SINCE.match(self.initial_import)
        return date.fromisoformat(match.group(1)) if match else None


def parse_initial_import(value: str) -> str:
    """A one-run lookback (command line or run config) in the setting's form: `all`, `active`, `since:YYYY-MM-DD`,
    or a bare `YYYY-MM-DD`. A ValueError names the accepted forms."""
    text = value.strip()
    if text not in ("all", "active") and not text.startswith("since:"):
        text = f"since:{text}"
    try:
        return SyncSettings(initial_import=text).initial_import
    except ValidationError:
        raise ValueError(f"{value!r} is not a lookback. Fix: use all, active, or the first day to import as "
                         "YYYY-MM-DD (e.g. 2025-06-01).") from None
