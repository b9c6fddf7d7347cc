"""The customer model's sections: `accounts`, `mapping`, `contracts`, `renewals`, `health`, `ecsat`.

Only what can be checked without the mirror is checked here (names, ranges, rules that contradict each
other); whether a named field exists and a value fits its type needs the mirror's columns and is checked by
`sonora_pipeline.model.rules.validate_against_schema`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sonora_pipeline.settings.conditions import Condition
from sonora_pipeline.settings.fields import FieldName, Strict, check_field_name
from sonora_pipeline.settings.problems import At, as_yaml, raise_all

# A column of the customer model: lower-case SQL identifier.
TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Columns the model's tables define themselves (customers, people): a mapping target may not take one.
# The model's author extends this set as tables gain columns.
RESERVED_COLUMNS: frozenset[str] = frozenset({
    "external_id", "name", "type", "industry", "owner_id", "owner_name", "owner_email", "parent_id", "is_paying",
    "record_type", "account_id", "customer_id", "email", "title", "billing_country", "created_at",
    "last_won_on", "person_id", "has_customer", "first_name", "last_name", "phone", "department",
    "reports_to_id",
})


class AccountInclusion(Strict):
    """Which Accounts are Sonora customers: all of the set filters must hold."""

    record_types: list[str] = Field(
        default_factory=list,
        description="Account record types (their DeveloperName) that are customers; empty = any record type.")
    types: list[str] = Field(default_factory=list,
                             description="Account.Type values that are customers; empty = any type.")
    conditions: list[Condition] = Field(default_factory=list,
                                        description="Further tests on Account fields; all must hold.")


class AccountsSettings(Strict):
    """Which Salesforce Accounts the model treats as customers."""

    include: AccountInclusion = Field(default_factory=AccountInclusion,
                                      description="The filters an Account must pass to be a customer.")


def _column_name_like(target: object) -> str:
    """A valid column name close to `target`, for the fix: 'Customer Tier' -> customer_tier."""
    fixed = re.sub(r"[^a-z0-9_]+", "_", str(target).lower()).strip("_")
    return fixed if fixed and fixed[0].isalpha() else f"x_{fixed}".rstrip("_")


class MappingSettings(Strict):
    """Salesforce fields (API names) copied into the model's tables, under the column names given."""

    account: dict[str, str] = Field(
        default_factory=dict,
        description="Account field API name -> column of the customers table, e.g. ARR__c: arr; none by "
                    "default (a fresh org has no custom fields).")
    contact: dict[str, str] = Field(
        default_factory=dict,
        description="Contact field API name -> column of the people table, e.g. Persona__c: persona; none by "
                    "default.")

    @field_validator("account", "contact")
    @classmethod
    def _check_mapping(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        problems: list[At] = []
        for source, target in value.items():
            try:
                check_field_name(source)
            except ValueError as err:
                problems.append(At(str(err), source, on_key=True))
                continue
            if not isinstance(target, str) or not TARGET_NAME.match(target):
                problems.append(At(f"{target!r} is not a valid column name: use lower-case letters, digits and "
                                   f"_, starting with a letter (e.g. {_column_name_like(target)})", source))
            elif target in RESERVED_COLUMNS:
                problems.append(At(f"column '{target}' is one of the model's own columns; choose another name "
                                   f"for {source} (e.g. {target}_sf)", source))
            elif target in seen:
                problems.append(At(f"column '{target}' is already the target of {seen[target]}; each field needs "
                                   f"its own column (e.g. {target}_2), two fields in one column would lose "
                                   "data", source))
            else:
                seen[target] = source
        raise_all(problems)
        return value


class ContractsSettings(Strict):
    """What makes a customer paying (`is_paying`)."""

    match: Literal["any", "all"] = Field(
        default="any",
        description="'any': one of the rules that are set is enough; 'all': every rule that is set must hold.")
    account_conditions: list[Condition] = Field(
        default_factory=list,
        description="Tests on Account fields that all must hold (one rule), e.g. {field: Contract_End_Date__c, "
                    "op: \">=\", value: today}; empty (the default) = rule not set.")
    won_opportunity_within_days: int | None = Field(
        default=365, ge=1, le=36500, strict=True,
        description="Rule: a Closed Won opportunity closed within the last N days; null = rule not set.")

    @model_validator(mode="after")
    def _check_some_rule(self) -> ContractsSettings:
        if not self.account_conditions and self.won_opportunity_within_days is None:
            raise ValueError("no rule is set, so no customer would ever be paying; set account_conditions "
                             "or won_opportunity_within_days")
        return self


class RenewalsSettings(Strict):
    """Which paying customers are up for renewal."""

    horizon_days: int = Field(default=120, ge=1, le=3650, strict=True,
                              description="Customers whose contract ends within N days are up for renewal.")
    contract_end_field: FieldName | None = Field(
        default=None,
        description="Account date field (API name) holding the contract's end, e.g. Contract_End_Date__c; "
                    "null (the default) = unknown.")
    arr_field: FieldName | None = Field(
        default=None, description="Account number field (API name) holding the annual recurring revenue, e.g. "
                                  "ARR__c; null (the default) = unknown.")


class HealthWeights(Strict):
    """How much each measure counts in the health score (relative weights; they need not sum to 1)."""

    engagement: float = Field(default=0.35, ge=0, strict=True, description="Weight of engagement (touches, meetings).")
    support: float = Field(default=0.25, ge=0, strict=True, description="Weight of support (open cases by priority).")
    commercial: float = Field(default=0.25, ge=0, strict=True, description="Weight of the contract/renewal position.")
    sentiment: float = Field(default=0.15, ge=0, strict=True, description="Weight of sentiment (NPS).")

    @model_validator(mode="after")
    def _check_some_weight(self) -> HealthWeights:
        if not any(getattr(self, name) > 0 for name in type(self).model_fields):
            raise ValueError("all weights are 0; give at least one measure a weight above 0 "
                             "(e.g. engagement: 0.35)")
        return self


class HealthBands(Strict):
    """Score thresholds of the bands: green at or above `green`, yellow at or above `yellow`, red below."""

    green: float = Field(default=70, ge=0, le=100, strict=True, description="Lowest score that is green (0-100).")
    yellow: float = Field(default=40, ge=0, le=100, strict=True,
                          description="Lowest score that is yellow (0-100, below green).")

    @model_validator(mode="after")
    def _check_order(self) -> HealthBands:
        if not self.green > self.yellow:
            raise At(f"green ({as_yaml(self.green)}) must be above yellow ({as_yaml(self.yellow)}); e.g. green: 70, "
                     "yellow: 40", "green")
        return self


class HealthSettings(Strict):
    """The health score: weighted measures and their bands."""

    weights: HealthWeights = Field(default_factory=HealthWeights, description="Weight of each measure.")
    bands: HealthBands = Field(default_factory=HealthBands, description="Score thresholds of the bands.")
    nps_field: FieldName | None = Field(
        default=None,
        description="Contact number field (API name, 0-10) the sentiment measure averages, e.g. NPS_Score__c; "
                    "null (the default) = no sentiment measure.")


class EcsatSettings(Strict):
    """The estimated CSAT from support outcomes."""

    sla_hours: float = Field(default=48, gt=0, le=8760, strict=True,
                             description="A case closed within N hours of being opened counts as within SLA.")
