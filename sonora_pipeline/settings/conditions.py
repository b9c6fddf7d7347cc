"""A condition: one test on a field of a Salesforce object, as written in the file.

The model turns conditions into SQL over the mirror and SOQL for the org (`sonora_pipeline.model.rules`);
both rely on what is checked here: the field is an API name, the operator known, and the value one that
fits the operator (a list for in/not_in, none for is_null, a single date without a time, a 64-bit number).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from sonora_pipeline.settings.fields import FieldName, Strict
from sonora_pipeline.settings.problems import At, as_yaml

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not_in", "like", "is_null", "is_not_null")
LIST_OPERATORS = ("in", "not_in")
NULL_OPERATORS = ("is_null", "is_not_null")
TODAY = "today"

Scalar = bool | int | float | str | date


def _check_scalar(value: Any, *sub: Any) -> Scalar:
    if isinstance(value, datetime):
        raise At(f"{value.isoformat()} has a time; only dates are supported: write YYYY-MM-DD "
                 f"(e.g. {value.date().isoformat()}) or today", *sub)
    if isinstance(value, float) and not math.isfinite(value):
        raise At(f"{value} is not a usable number; write a finite number", *sub)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2 ** 63) <= value < 2 ** 63:
        raise At(f"{value} is too large; numbers must fit in 64 bits", *sub)
    if isinstance(value, (bool, int, float, str, date)):
        return value
    if value is None:
        raise At("a value is empty (null); to match empty fields use op: is_null, otherwise write the value", *sub)
    raise At(f"{value!r} is not a single value; use text, a number, true/false, a date (YYYY-MM-DD) or today",
             *sub)


class Condition(Strict):
    """One test on a field of the object: `{field: Industry, op: "!=", value: Government}`."""

    field: FieldName = Field(description="The Salesforce field's API name, e.g. Industry or ARR__c.")
    op: str = Field(description="The operator: = != < <= > >= in not_in like is_null is_not_null.")
    value: Scalar | list[Scalar] | None = Field(
        default=None,
        description="What to compare with: text, a number, true/false, an ISO date (YYYY-MM-DD), the keyword "
                    "'today' (date fields), a list for in/not_in, nothing for is_null/is_not_null. For like: "
                    "% matches any text, _ one character, \\ makes the next character literal.")

    @field_validator("op", mode="before")
    @classmethod
    def _check_op(cls, value: Any) -> str:
        if value in OPERATORS and isinstance(value, str):
            return value
        raise ValueError(f"unknown operator {as_yaml(value)!r}; use one of {' '.join(OPERATORS)}")

    @field_validator("value", mode="before")
    @classmethod
    def _check_value(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [_check_scalar(v, i) for i, v in enumerate(value)]
        return _check_scalar(value)

    @model_validator(mode="after")
    def _check_value_fits_op(self) -> Condition:
        op, value = self.op, self.value
        if op in NULL_OPERATORS:
            if value is not None:
                raise At(f"'{op}' takes no value; remove 'value: {as_yaml(value)}'", "value")
        elif op in LIST_OPERATORS:
            if not isinstance(value, list):
                example = as_yaml(value) if value is not None else "A"
                where = ("value",) if value is not None else ()
                raise At(f"'{op}' needs a list of values, e.g. value: [{example}, B]", *where)
            if not value:
                raise At(f"'{op}' needs at least one value in its list", "value")
        elif value is None:
            raise At(f"'{op}' needs a value; add 'value: ...' (to match empty fields use op: is_null)")
        elif isinstance(value, list):
            raise At(f"'{op}' compares with one value, not a list; use op: in (or not_in) for a list", "value")
        elif op == "like" and not isinstance(value, str):
            raise At(f"'like' needs a text pattern, e.g. value: \"%{as_yaml(value)}%\"", "value")
        return self

    def values(self) -> list[Scalar]:
        """The condition's values as a list (empty for is_null/is_not_null)."""
        if self.value is None:
            return []
        return list(self.value) if isinstance(self.value, list) else [self.value]
