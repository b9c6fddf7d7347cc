"""The `writeback` section: which model values are pushed to which Account fields in Salesforce.

Off by default and checked strictly, because it is the one setting that writes to the customer's org:
each mapping names a table that can be written back, and no Account field takes two columns.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from sonora_pipeline.settings.fields import FieldName, Strict
from sonora_pipeline.settings.problems import At, as_yaml, did_you_mean, raise_all

WRITEBACK_TABLES = ("health_scores", "ecsat", "customers", "engagement_signals", "renewals")
_WRITEBACK_COLUMN = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")


class WritebackMapping(Strict):
    """One model column pushed to one Account field: `{column: health_scores.score, field: Sonora_Health_Score__c}`."""

    column: str = Field(description="The model column, as <table>.<column> (tables: "
                                    + ", ".join(WRITEBACK_TABLES) + ").")
    field: FieldName = Field(description="The Account field's API name that receives the value.")
    values: dict[str, str] | None = Field(
        default=None,
        description="Model value -> Salesforce value (e.g. green: Green for a picklist); model values not listed "
                    "are written as empty (null).")

    @field_validator("column", mode="before")
    @classmethod
    def _check_column(cls, value: Any) -> str:
        match = _WRITEBACK_COLUMN.match(value) if isinstance(value, str) else None
        if not match:
            raise ValueError(f"{as_yaml(value)!r} is not a model column; write <table>.<column> in lower case, "
                             "e.g. health_scores.score")
        if match.group(1) not in WRITEBACK_TABLES:
            raise ValueError(f"table '{match.group(1)}' cannot be written back"
                             f"{did_you_mean(match.group(1), WRITEBACK_TABLES)}; use one of "
                             f"{', '.join(WRITEBACK_TABLES)}")
        return value

    @field_validator("values")
    @classmethod
    def _check_values(cls, value: dict[str, str] | None) -> dict[str, str] | None:
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


class WritebackSettings(Strict):
    """Opt-in push of model values (health score, eCSAT, ...) to Account fields in Salesforce."""

    enabled: bool = Field(default=False, strict=True,
                          description="Write to Salesforce at all; off by default (the asset then reports "
                                      "'disabled' and makes no call).")
    mappings: list[WritebackMapping] = Field(
        default_factory=list,
        description="Model column -> Account field, e.g. {column: health_scores.score, field: "
                    "Sonora_Health_Score__c}; none by default (the fields must first be created in the org).")
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
        problems: list[At] = []
        for i, mapping in enumerate(value):
            key = mapping.field.lower()
            if key in seen:
                problems.append(At(f"Account.{mapping.field} is already the target of mappings[{seen[key]}] "
                                   f"({value[seen[key]].column}); each field takes one column: remove one of "
                                   "them or choose another field", i, "field"))
            else:
                seen[key] = i
        raise_all(problems)
        return value

    @model_validator(mode="after")
    def _check_something_to_write(self) -> WritebackSettings:
        if self.enabled and not self.mappings:
            raise At("write-back is enabled but no mapping says what to write where; add mappings, e.g. "
                     "- {column: health_scores.score, field: Sonora_Health_Score__c} (create the Account field in "
                     "Setup > Object Manager > Account > Fields & Relationships first), or set enabled: false",
                     "mappings")
        return self
