"""The settings file (YAML, path from `SONORA_CONFIG`): what to sync, and how the customer model reads the
mirror. Sensible defaults when absent; every section and key is optional.

Validated by pydantic before anything touches the org or the warehouse, so a mistake stops the run with a
message naming the file, the line and column, the setting's path and the fix, instead of a traceback
half-way through a sync or a build. All problems of a file are reported together.

Sections: `sync` (the mirror), `accounts` (which Accounts are customers), `mapping` (custom fields into the
model's columns), `contracts` (what makes a customer paying), `renewals`, `health`, `ecsat`. The checks
that need the mirror's columns (does the field exist, does the value fit its type) are in
`sonora_pipeline.model.rules.validate_against_schema`; they report the same file lines.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field as dc_field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

STANDARD_OBJECTS = ("Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User")
_CUSTOM_OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")
_SINCE = re.compile(r"^since:(\d{4}-\d{2}-\d{2})$")
# A Salesforce field API name (standard, custom, or namespaced custom: ns__Field__c); no relationship paths.
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# A column of the customer model: lower-case SQL identifier.
TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "like", "is_null", "is_not_null")
LIST_OPERATORS = ("in", "not_in")
NULL_OPERATORS = ("is_null", "is_not_null")
TODAY = "today"

Path_ = tuple[Any, ...]  # a setting's location: ("accounts", "include", "conditions", 1, "op")


class SettingsError(Exception):
    """A settings file that cannot be used. The message has one line per problem, each naming the file, line
    and column (when the settings came from a file), the setting's path and the fix; `problems` holds them."""

    def __init__(self, *problems: str, header: str | None = None):
        self.problems: list[str] = list(problems)
        lines = ([header] if header else []) + self.problems
        super().__init__("\n".join(lines))


class _At(ValueError):
    """A validation error about a sub-path of the value being validated (e.g. one key of a mapping);
    `on_key` points the line at the key rather than its value."""

    def __init__(self, message: str, *sub: Any, on_key: bool = False):
        super().__init__(message)
        self.sub = sub
        self.on_key = on_key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sync ---------------------------------------------------------------------------------------------------

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


# -- conditions -----------------------------------------------------------------------------------------------

Scalar = typing.Union[bool, int, float, str, date]


def _check_field_name(name: Any) -> str:
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise ValueError(f"{name!r} is not a Salesforce field API name; write the field's API name as in "
                         "Setup > Object Manager > Fields & Relationships, e.g. Industry or ARR__c "
                         "(no spaces, no relationship paths)")
    return name


def _check_scalar(value: Any, *sub: Any) -> Scalar:
    if isinstance(value, datetime):
        raise _At(f"{value.isoformat()} has a time; only dates are supported: write YYYY-MM-DD "
                  f"(e.g. {value.date().isoformat()}) or today", *sub)
    if isinstance(value, float) and not math.isfinite(value):
        raise _At(f"{value} is not a usable number; write a finite number", *sub)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2 ** 63) <= value < 2 ** 63:
        raise _At(f"{value} is too large; numbers must fit in 64 bits", *sub)
    if isinstance(value, (bool, int, float, str, date)):
        return value
    if value is None:
        raise _At("a value is empty (null); to match empty fields use op: is_null, otherwise write the value", *sub)
    raise _At(f"{value!r} is not a single value; use text, a number, true/false, a date (YYYY-MM-DD) or today",
              *sub)


class Condition(_Strict):
    """One test on a field of the object: `{field: Industry, op: "!=", value: Government}`."""

    field: str = Field(description="The Salesforce field's API name, e.g. Industry or ARR__c.")
    op: str = Field(description="The operator: = != < <= > >= in not_in like is_null is_not_null.")
    value: Optional[typing.Union[Scalar, list[Scalar]]] = Field(
        default=None,
        description="What to compare with: text, a number, true/false, an ISO date (YYYY-MM-DD), the keyword "
                    "'today' (date fields), a list for in/not_in, nothing for is_null/is_not_null. For like: "
                    "% matches any text, _ one character, \\ makes the next character literal.")

    @field_validator("field", mode="before")
    @classmethod
    def _check_field(cls, value: Any) -> str:
        return _check_field_name(value)

    @field_validator("op", mode="before")
    @classmethod
    def _check_op(cls, value: Any) -> str:
        if value in OPERATORS and isinstance(value, str):
            return value
        raise ValueError(f"unknown operator {_show(value)!r}; use one of {' '.join(OPERATORS)}")

    @field_validator("value", mode="before")
    @classmethod
    def _check_value(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [_check_scalar(v, i) for i, v in enumerate(value)]
        return _check_scalar(value)

    @model_validator(mode="after")
    def _check_value_fits_op(self) -> "Condition":
        op, value = self.op, self.value
        if op in NULL_OPERATORS:
            if value is not None:
                raise _At(f"'{op}' takes no value; remove 'value: {_show(value)}'", "value")
        elif op in LIST_OPERATORS:
            if not isinstance(value, list):
                example = _show(value) if value is not None else "A"
                where = ("value",) if value is not None else ()
                raise _At(f"'{op}' needs a list of values, e.g. value: [{example}, B]", *where)
            if not value:
                raise _At(f"'{op}' needs at least one value in its list", "value")
        elif value is None:
            raise _At(f"'{op}' needs a value; add 'value: ...' (to match empty fields use op: is_null)")
        elif isinstance(value, list):
            raise _At(f"'{op}' compares with one value, not a list; use op: in (or not_in) for a list", "value")
        elif op == "like" and not isinstance(value, str):
            raise _At(f"'like' needs a text pattern, e.g. value: \"%{_show(value)}%\"", "value")
        return self

    def values(self) -> list[Scalar]:
        """The condition's values as a list (empty for is_null/is_not_null)."""
        if self.value is None:
            return []
        return list(self.value) if isinstance(self.value, list) else [self.value]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the customer model's sections --------------------------------------------------------------------------

class AccountInclusion(_Strict):
    """Which Accounts are Sonora customers: all of the set filters must hold."""

    record_types: list[str] = Field(
        default_factory=list,
        description="Account record types (their DeveloperName) that are customers; empty = any record type.")
    types: list[str] = Field(default_factory=list,
                             description="Account.Type values that are customers; empty = any type.")
    conditions: list[Condition] = Field(default_factory=list,
                                        description="Further tests on Account fields; all must hold.")


class AccountsSettings(_Strict):
    """Which Salesforce Accounts the model treats as customers."""

    include: AccountInclusion = Field(default_factory=AccountInclusion,
                                      description="The filters an Account must pass to be a customer.")


def _default_account_mapping() -> dict[str, str]:
    return {"ARR__c": "arr", "Contract_End_Date__c": "contract_end_date", "Tier__c": "tier"}


def _default_contact_mapping() -> dict[str, str]:
    return {"Persona__c": "persona", "NPS_Score__c": "nps"}


class MappingSettings(_Strict):
    """Salesforce fields (API names) copied into the model's tables, under the column names given."""

    account: dict[str, str] = Field(
        default_factory=_default_account_mapping,
        description="Account field API name -> column of the customers table. Replaces the default mapping "
                    "when set.")
    contact: dict[str, str] = Field(
        default_factory=_default_contact_mapping,
        description="Contact field API name -> column of the people table. Replaces the default mapping "
                    "when set.")

    @field_validator("account", "contact")
    @classmethod
    def _check_mapping(cls, value: dict[str, str]) -> dict[str, str]:
        from sonora_pipeline.model.rules import RESERVED_COLUMNS  # late: rules imports this module

        seen: dict[str, str] = {}
        problems: list[_At] = []
        for source, target in value.items():
            if not FIELD_NAME.match(source):
                problems.append(_At(f"{source!r} is not a Salesforce field API name; write it as in Setup > "
                                    "Object Manager > Fields & Relationships, e.g. ARR__c", source, on_key=True))
                continue
            if not isinstance(target, str) or not TARGET_NAME.match(target):
                fixed = re.sub(r"[^a-z0-9_]+", "_", str(target).lower()).strip("_")
                fixed = fixed if fixed and fixed[0].isalpha() else f"x_{fixed}".rstrip("_")
                problems.append(_At(f"{target!r} is not a valid column name: use lower-case letters, digits and "
                                    f"_, starting with a letter (e.g. {fixed})", source))
            elif target in RESERVED_COLUMNS:
                problems.append(_At(f"column '{target}' is one of the model's own columns; choose another name "
                                    f"for {source} (e.g. {target}_sf)", source))
            elif target in seen:
                problems.append(_At(f"column '{target}' is already the target of {seen[target]}; each field needs "
                                    f"its own column (e.g. {target}_2), two fields in one column would lose "
                                    "data", source))
            else:
                seen[target] = source
        if problems:
            raise problems[0] if len(problems) == 1 else _Many(problems)
        return value


class _Many(ValueError):
    """Several `_At` problems found by one validator."""

    def __init__(self, problems: list[_At]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _default_contract_conditions() -> list[Condition]:
    return [Condition(field="Contract_End_Date__c", op=">=", value=TODAY)]


class ContractsSettings(_Strict):
    """What makes a customer paying (`is_paying`)."""

    match: Literal["any", "all"] = Field(
        default="any",
        description="'any': one of the rules that are set is enough; 'all': every rule that is set must hold.")
    account_conditions: list[Condition] = Field(
        default_factory=_default_contract_conditions,
        description="Tests on Account fields that all must hold (one rule); empty = rule not set.")
    won_opportunity_within_days: Optional[int] = Field(
        default=365, ge=1, le=36500, strict=True,
        description="Rule: a Closed Won opportunity closed within the last N days; null = rule not set.")

    @model_validator(mode="after")
    def _check_some_rule(self) -> "ContractsSettings":
        if not self.account_conditions and self.won_opportunity_within_days is None:
            raise ValueError("no rule is set, so no customer would ever be paying; set account_conditions "
                             "or won_opportunity_within_days")
        return self


class RenewalsSettings(_Strict):
    """Which paying customers are up for renewal."""

    horizon_days: int = Field(default=120, ge=1, le=3650, strict=True,
                              description="Customers whose contract ends within N days are up for renewal.")
    contract_end_field: Optional[str] = Field(
        default="Contract_End_Date__c",
        description="Account date field (API name) holding the contract's end; null = unknown.")
    arr_field: Optional[str] = Field(
        default="ARR__c", description="Account number field (API name) holding the annual recurring revenue; "
                                      "null = unknown.")

    @field_validator("contract_end_field", "arr_field", mode="before")
    @classmethod
    def _check_field(cls, value: Any) -> Any:
        return None if value is None else _check_field_name(value)


class HealthWeights(_Strict):
    """How much each measure counts in the health score (relative weights; they need not sum to 1)."""

    engagement: float = Field(default=0.35, ge=0, strict=True, description="Weight of engagement (touches, meetings).")
    support: float = Field(default=0.25, ge=0, strict=True, description="Weight of support (open cases by priority).")
    commercial: float = Field(default=0.25, ge=0, strict=True, description="Weight of the contract/renewal position.")
    sentiment: float = Field(default=0.15, ge=0, strict=True, description="Weight of sentiment (NPS).")

    @model_validator(mode="after")
    def _check_some_weight(self) -> "HealthWeights":
        if not any(getattr(self, name) > 0 for name in type(self).model_fields):
            raise ValueError("all weights are 0; give at least one measure a weight above 0 "
                             "(e.g. engagement: 0.35)")
        return self


class HealthBands(_Strict):
    """Score thresholds of the bands: green at or above `green`, yellow at or above `yellow`, red below."""

    green: float = Field(default=70, ge=0, le=100, strict=True, description="Lowest score that is green (0-100).")
    yellow: float = Field(default=40, ge=0, le=100, strict=True,
                          description="Lowest score that is yellow (0-100, below green).")

    @model_validator(mode="after")
    def _check_order(self) -> "HealthBands":
        if not self.green > self.yellow:
            raise _At(f"green ({_show(self.green)}) must be above yellow ({_show(self.yellow)}); e.g. green: 70, "
                      "yellow: 40", "green")
        return self


class HealthSettings(_Strict):
    """The health score: weighted measures and their bands."""

    weights: HealthWeights = Field(default_factory=HealthWeights, description="Weight of each measure.")
    bands: HealthBands = Field(default_factory=HealthBands, description="Score thresholds of the bands.")
    nps_field: Optional[str] = Field(
        default="NPS_Score__c",
        description="Contact number field (API name, 0-10) the sentiment measure averages; null = no sentiment.")

    @field_validator("nps_field", mode="before")
    @classmethod
    def _check_field(cls, value: Any) -> Any:
        return None if value is None else _check_field_name(value)


class EcsatSettings(_Strict):
    """The estimated CSAT from support outcomes."""

    sla_hours: float = Field(default=48, gt=0, le=8760, strict=True,
                             description="A case closed within N hours of being opened counts as within SLA.")


# -- write-back -----------------------------------------------------------------------------------------------

WRITEBACK_TABLES = ("health_scores", "ecsat", "customers", "engagement_signals", "renewals")
_WRITEBACK_COLUMN = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")


class WritebackMapping(_Strict):
    """One model column pushed to one Account field: `{column: health_scores.score, field: Sonora_Health_Score__c}`."""

    column: str = Field(description="The model column, as <table>.<column> (tables: "
                                    + ", ".join(WRITEBACK_TABLES) + ").")
    field: str = Field(description="The Account field's API name that receives the value.")
    values: Optional[dict[str, str]] = Field(
        default=None,
        description="Model value -> Salesforce value (e.g. green: Green for a picklist); model values not listed "
                    "are written as empty (null).")

    @field_validator("column", mode="before")
    @classmethod
    def _check_column(cls, value: Any) -> str:
        match = _WRITEBACK_COLUMN.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"{_show(value)!r} is not a model column; write <table>.<column> in lower case, "
                             "e.g. health_scores.score")
        if match.group(1) not in WRITEBACK_TABLES:
            close = difflib.get_close_matches(match.group(1), WRITEBACK_TABLES, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"table '{match.group(1)}' cannot be written back{hint}; use one of "
                             f"{', '.join(WRITEBACK_TABLES)}")
        return value

    @field_validator("field", mode="before")
    @classmethod
    def _check_field(cls, value: Any) -> str:
        return _check_field_name(value)

    @field_validator("values")
    @classmethod
    def _check_values(cls, value: Optional[dict[str, str]]) -> Optional[dict[str, str]]:
        if value is not None and not value:
            raise ValueError("'values' is empty; list model value -> Salesforce value pairs (e.g. green: Green), "
                             "or remove it to write the model's values as they are")
        return value

    @property
    def table(self) -> str:
        return self.column.split(".", 1)[0]

    @property
    def model_column(self) -> str:
        return self.column.split(".", 1)[1]


def _default_writeback_mappings() -> list[WritebackMapping]:
    return [WritebackMapping(column="health_scores.score", field="Sonora_Health_Score__c"),
            WritebackMapping(column="ecsat.ecsat", field="Sonora_eCSAT__c"),
            WritebackMapping(column="health_scores.band", field="Sonora_Health_Band__c",
                             values={"green": "Green", "yellow": "Yellow", "red": "Red"})]


class WritebackSettings(_Strict):
    """Opt-in push of model values (health score, eCSAT, ...) to Account fields in Salesforce."""

    enabled: bool = Field(default=False, strict=True,
                          description="Write to Salesforce at all; off by default (the asset then reports "
                                      "'disabled' and makes no call).")
    mappings: list[WritebackMapping] = Field(default_factory=_default_writeback_mappings,
                                             description="Model column -> Account field.")
    bulk_threshold: int = Field(default=2000, ge=1, strict=True,
                                description="More changed rows than this use Bulk API 2.0 ingest, fewer use "
                                            "sObject Collections (200 records per call).")
    dry_run: bool = Field(default=False, strict=True,
                          description="Compute and report what would be written, write nothing to Salesforce.")
    settle_seconds: float = Field(
        default=120, ge=0,
        description="After a run that died while sending, wait until its last send is this old before reading "
                    "the org back (Salesforce finishes a request whose client died), so nothing is sent twice.")

    @field_validator("mappings")
    @classmethod
    def _check_unique(cls, value: list[WritebackMapping]) -> list[WritebackMapping]:
        seen: dict[str, int] = {}
        problems: list[_At] = []
        for i, mapping in enumerate(value):
            key = mapping.field.lower()
            if key in seen:
                problems.append(_At(f"Account.{mapping.field} is already the target of mappings[{seen[key]}] "
                                    f"({value[seen[key]].column}); each field takes one column: remove one of "
                                    "them or choose another field", i, "field"))
            else:
                seen[key] = i
        if problems:
            raise problems[0] if len(problems) == 1 else _Many(problems)
        return value


# -- the file -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SettingsSource:
    """Where loaded settings came from: the file, and the line/column of every key and value in it."""

    path: Path
    key_marks: dict[Path_, tuple[int, int]] = dc_field(default_factory=dict)    # 1-based (line, column)
    value_marks: dict[Path_, tuple[int, int]] = dc_field(default_factory=dict)

    def mark(self, path: Path_, *, on_key: bool = False) -> tuple[int, int] | None:
        """The (line, column) of the setting at `path` (its key, or its value), or of the closest enclosing
        setting written in the file; None when nothing on the path is in the file."""
        path = tuple(path)
        primary, secondary = (self.key_marks, self.value_marks) if on_key else (self.value_marks, self.key_marks)
        if path in primary:
            return primary[path]
        if path in secondary:
            return secondary[path]
        return None


def dotted(path: Path_) -> str:
    """accounts.include.conditions[1].op"""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def locate(source: SettingsSource | None, path: Path_, *, on_key: bool = False) -> str:
    """`sonora.yaml line 12, column 9 (accounts.include.conditions[1].op)` for a problem's message."""
    if source is None:
        return f"settings ({dotted(path)})"
    mark = source.mark(path, on_key=on_key)
    if mark is not None:
        return f"{source.path} line {mark[0]}, column {mark[1]} ({dotted(path)})"
    # Not written in the file: a default value (possibly inside a section that is in the file).
    for i in range(len(path) - 1, 0, -1):
        if tuple(path[:i]) in source.key_marks:
            line, column = source.key_marks[tuple(path[:i])]
            return (f"{source.path} line {line}, column {column} ({dotted(path)}, a default: "
                    f"not set under {dotted(path[:i])})")
    return f"{source.path} ({dotted(path)}, a default: not set in the file)"


class Settings(_Strict):
    """Everything the settings file says; each section optional."""

    sync: SyncSettings = Field(default_factory=SyncSettings, description="How the mirror is kept.")
    accounts: AccountsSettings = Field(default_factory=AccountsSettings,
                                       description="Which Accounts are Sonora customers.")
    mapping: MappingSettings = Field(default_factory=MappingSettings,
                                     description="Salesforce fields -> model columns.")
    contracts: ContractsSettings = Field(default_factory=ContractsSettings,
                                         description="What marks a customer as paying.")
    renewals: RenewalsSettings = Field(default_factory=RenewalsSettings, description="Renewal horizon.")
    health: HealthSettings = Field(default_factory=HealthSettings, description="Health score weights and bands.")
    ecsat: EcsatSettings = Field(default_factory=EcsatSettings, description="Estimated CSAT.")
    writeback: WritebackSettings = Field(default_factory=WritebackSettings,
                                         description="Opt-in write-back of model values to Account fields.")

    _source: SettingsSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> SettingsSource | None:
        """The file these settings were loaded from, with its line numbers (None for code-built settings)."""
        return self._source

    def locate(self, path: Path_, *, on_key: bool = False) -> str:
        """Where a setting is, for messages: file, line, column and dotted path."""
        return locate(self._source, path, on_key=on_key)


def settings_path() -> Path | None:
    value = os.environ.get("SONORA_CONFIG")
    return Path(value) if value else None


# -- YAML with line numbers ---------------------------------------------------------------------------------

class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader for settings files. Reads an unquoted `=` (YAML 1.1's "value" tag) and `!=` (which YAML
    takes for a tag) as the operators they are meant to be."""


def _operator_constructor(text: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "="):  # `=` is "=", `!=` is tag + ""
            return text
        raise yaml.constructor.ConstructorError(None, None, f"unexpected {text!r} here; quote the value",
                                                node.start_mark)
    return construct


_MarkedLoader.add_constructor("tag:yaml.org,2002:value", _operator_constructor("="))
_MarkedLoader.add_constructor("!=", _operator_constructor("!="))
_QUOTE_HINT = re.compile(r":\s*(>=|>|!=|!|\||%|@|`)")


def _read_yaml(path: Path, text: str) -> tuple[Any, SettingsSource, list[str]]:
    source = SettingsSource(path)
    problems: list[str] = []
    loader = _MarkedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    if node is not None:
        _walk(node, (), source, problems)
        source.value_marks[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
    return data, source, problems


def _walk(node: yaml.Node, path: Path_, source: SettingsSource, problems: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            here = (*path, key)
            if key in seen:
                first = seen[key].start_mark
                problems.append(f"{source.path} line {key_node.start_mark.line + 1}, column "
                                f"{key_node.start_mark.column + 1} ({dotted(here)}): duplicate setting '{key}', "
                                f"also set at line {first.line + 1}; keep only one (the last one would win)")
            seen[key] = key_node
            source.key_marks[here] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            source.value_marks[here] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
            _walk(value_node, here, source, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            here = (*path, i)
            source.key_marks[here] = source.value_marks[here] = (item.start_mark.line + 1,
                                                                 item.start_mark.column + 1)
            _walk(item, here, source, problems)


# -- pydantic errors -> messages ----------------------------------------------------------------------------

def _unwrap(annotation: Any) -> Any:
    """Optional[X] -> X."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _model_at(path: Path_) -> tuple[type[BaseModel] | None, Any]:
    """(the model class holding the last element of `path`, the FieldInfo of that element or None)."""
    current: Any = Settings
    info = None
    parts = list(path)
    for i, part in enumerate(parts):
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return (current if i == len(parts) - 1 else None), None
            if i == len(parts) - 1:
                return current, current.model_fields[part]
            info = current.model_fields[part]
            current = info.annotation
            continue
        origin = typing.get_origin(current)
        if origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None, None
    return None, info


def _example(path: Path_) -> str:
    _, info = _model_at(path)
    if info is None or path == ():
        return ""
    default = info.get_default(call_default_factory=True) if not info.is_required() else None
    if default is None or isinstance(default, (BaseModel, list, dict)):
        return ""
    return f" (e.g. {path[-1]}: {_show(default)})"


def _describe(item: dict[str, Any]) -> tuple[Path_, str, bool]:
    """(path, message with its fix, point at the key?) for one pydantic error."""
    loc = tuple(item["loc"])
    kind = item["type"]
    value = item.get("input")
    ctx = item.get("ctx") or {}
    error = ctx.get("error")
    # Union members add their type names to the location; keep the settings path only.
    if kind.endswith(("_type", "_parsing")) and len(loc) >= 2 and loc[-1] in (
            "bool", "int", "float", "str", "date", "list[union[bool,int,float,str,date]]"):
        loc = loc[:-1]
    if isinstance(error, _At):
        return (*loc, *error.sub), str(error), error.on_key
    if kind == "extra_forbidden":
        model, _ = _model_at(loc)
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        where = dotted(loc[:-1]) if len(loc) > 1 else "the top level"
        choices = ", ".join(known)
        return loc, (f"unknown setting '{loc[-1]}'{hint}; the settings under {where} are: {choices}"), True
    if kind == "missing":
        return loc[:-1], f"missing setting '{loc[-1]}'; add '{loc[-1]}: ...' here", False
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return loc, f"{_shown(value)} is not a whole number; write a number without quotes{_example(loc)}", False
    if kind in ("float_parsing", "float_type"):
        return loc, f"{_shown(value)} is not a number; write a number without quotes{_example(loc)}", False
    if kind in ("bool_parsing", "bool_type"):
        return loc, f"{_shown(value)} is not true or false; write true or false", False
    if kind in ("string_type", "string_parsing"):
        return loc, f"{_shown(value)} is not text; put it in quotes, e.g. \"{_show(value)}\"", False
    if kind in ("list_type", "tuple_type"):
        return loc, (f"{_shown(value)} is not a list; write a list, e.g. [A, B] or one '- item' per line"), False
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return loc, (f"{_shown(value)} is not a section; write its settings indented below it "
                     f"(key: value lines), or remove it to use the defaults"), False
    if kind == "literal_error":
        return loc, f"{_shown(value)} is not allowed here; use one of {ctx.get('expected', '')}", False
    bounds = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "above"),
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "below")}
    if kind in bounds:
        key, words = bounds[kind]
        return loc, f"{_shown(value)} is out of range: it must be {words} {ctx.get(key)}", False
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type", "date_from_datetime_inexact"):
        return loc, f"{_shown(value)} is not a date; write YYYY-MM-DD without quotes{_example(loc)}", False
    message = item["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return loc, message, False


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, str):
        return repr(value)
    return _show(value)


def _problems(err: ValidationError, source: SettingsSource | None) -> list[str]:
    problems: list[str] = []
    for item in err.errors():
        error = (item.get("ctx") or {}).get("error")
        if isinstance(error, _Many):
            for sub in error.problems:
                path = (*item["loc"], *sub.sub)
                problems.append(f"{locate(source, path, on_key=sub.on_key)}: {sub}")
            continue
        path, message, on_key = _describe(item)
        problems.append(f"{locate(source, path, on_key=on_key)}: {message}")
    return problems


def _fill_empty_sections(data: Any, model: type[BaseModel]) -> Any:
    """`accounts:` with nothing under it (every key commented out) means the defaults, not an error."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and name in out:
            if out[name] is None:
                out[name] = {}
            out[name] = _fill_empty_sections(out[name], annotation)
    return out


def validate_settings(raw: Any, source: SettingsSource | None = None) -> Settings:
    """Validate a settings mapping (as read from YAML); a SettingsError lists every problem with its line."""
    where = f"{source.path} line 1, column 1" if source is not None else "settings"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = {list: "a list", str: "a single text", int: "a number", float: "a number",
                bool: "true/false"}.get(type(raw), type(raw).__name__)
        raise SettingsError(f"{where}: the settings must be a mapping of sections (sync:, accounts:, mapping:, "
                            f"contracts:, renewals:, health:, ecsat:), not {kind}; see sonora.example.yaml")
    try:
        settings = Settings.model_validate(_fill_empty_sections(raw, Settings))
    except ValidationError as err:
        problems = sort_problems(_problems(err, source))
        raise SettingsError(*problems, header=_header(source, len(problems))) from None
    settings._source = source
    return settings


def _header(source: SettingsSource | None, count: int) -> str | None:
    if count < 2:
        return None
    name = f"Settings file {source.path}" if source is not None else "The settings"
    return f"{name} has {count} problems:"


def sort_problems(problems: list[str]) -> list[str]:
    """Problems in file order (those without a line last, in their order)."""
    def line_of(problem: str) -> int:
        match = re.search(r" line (\d+), column ", problem)
        return int(match.group(1)) if match else 1 << 30
    return sorted(problems, key=line_of)


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


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the settings file; defaults when there is none (no path and no SONORA_CONFIG)."""
    path = path or settings_path()
    if path is None:
        return Settings()
    if not path.exists():
        raise SettingsError(f"Settings file {path} (from SONORA_CONFIG) does not exist. "
                            "Fix: point SONORA_CONFIG at your sonora.yaml, or unset it to use the defaults.")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"Settings file {path} cannot be read ({err}). "
                            "Fix: make it a readable UTF-8 text file.") from None
    try:
        raw, source, duplicates = _read_yaml(path, text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        started = getattr(err, "context_mark", None)
        if context and started is not None and mark is not None and started.line != mark.line:
            context += f" started at line {started.line + 1}, column {started.column + 1}"
        detail = f"{problem} ({context})" if context else problem
        fix = ("correct the YAML syntax there (indentation, a missing ':' after a key, an unclosed quote or "
               "bracket, or a value starting with a special character that needs quotes)")
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        if _QUOTE_HINT.search(line):
            fix = ("put the value in quotes: in YAML a value starting with > ! | % @ or ` means something else "
                   "(e.g. op: \">=\")")
        raise SettingsError(f"{path}{where}: not valid YAML: {detail}; {fix}") from None
    problems = list(duplicates)
    try:
        settings = validate_settings(raw, source)
    except SettingsError as err:
        problems = sort_problems(problems + err.problems)
        raise SettingsError(*problems, header=_header(source, len(problems))) from None
    if problems:
        raise SettingsError(*problems, header=_header(source, len(problems)))
    return settings


def model_required_fields(settings: "Settings") -> dict[str, list[str]]:
    """Fields the customer model reads, per object: the sync refuses to run without read access to them
    (naming object, field and the Salesforce setting to change) instead of building a silently poorer model."""
    account = list(settings.mapping.account)
    account += [c.field for c in settings.accounts.include.conditions]
    account += [c.field for c in settings.contracts.account_conditions]
    account += [f for f in (settings.renewals.contract_end_field, settings.renewals.arr_field) if f]
    contact = list(settings.mapping.contact) + ([settings.health.nps_field] if settings.health.nps_field else [])
    merged = {name: list(fields) for name, fields in settings.sync.required_fields.items()}
    for name, fields in (("Account", account), ("Contact", contact)):
        merged[name] = sorted(set(merged.get(name, [])) | set(fields))
    return merged
