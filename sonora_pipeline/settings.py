"""The settings file (YAML, path from `SONORA_CONFIG`): what to sync and how. Sensible defaults when absent.

Validated by pydantic before anything touches the org or the warehouse, so a mistake stops the run with a
message naming the setting and the fix instead of a traceback half-way through a sync.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

STANDARD_OBJECTS = ("Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event")
_CUSTOM_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")
_SINCE = re.compile(r"^since:(\d{4}-\d{2}-\d{2})$")


class SettingsError(Exception):
    """A settings file that cannot be used; the message names the setting and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyncSettings(_Strict):
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
            date.fromisoformat(match.group(1))
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


class Settings(_Strict):
    sync: SyncSettings = Field(default_factory=SyncSettings)


def settings_path() -> Path | None:
    value = os.environ.get("SONORA_CONFIG")
    return Path(value) if value else None


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the settings file; defaults when there is none."""
    path = path or settings_path()
    if path is None:
        return Settings()
    if not path.exists():
        raise SettingsError(f"Settings file {path} (from SONORA_CONFIG) does not exist. "
                            "Fix: point SONORA_CONFIG at your sonora.yaml, or unset it to use the defaults.")
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SettingsError(f"Settings file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}. "
                            "Fix: correct the YAML syntax there.") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"Settings file {path} must be a mapping of sections (e.g. 'sync:'), "
                            f"not a {type(raw).__name__}.")
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        problems = []
        for item in err.errors():
            where = ".".join(str(p) for p in item["loc"])
            if item["type"] == "extra_forbidden":
                problems.append(f"unknown setting '{where}' (check the spelling; see README 'Settings')")
            else:
                problems.append(f"'{where}': {item['msg']}")
        raise SettingsError(f"Settings file {path} has {len(problems)} problem(s): " + "; ".join(problems)) from None
