"""The two building blocks of every settings section.

`Strict`: unknown keys are errors (a misspelt key must not silently fall back to its default) and loaded
settings are frozen (one run reads one set). `FieldName`: a Salesforce field API name, checked by one
validator wherever the file names a field, so every such mistake gets the same message and fix.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

# A Salesforce field API name (standard, custom, or namespaced custom: ns__Field__c); no relationship paths.
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_field_name(name: Any) -> str:
    """`name` when it is a field API name; a ValueError with the fix otherwise."""
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise ValueError(f"{name!r} is not a Salesforce field API name; write the field's API name as in "
                         "Setup > Object Manager > Fields & Relationships, e.g. Industry or ARR__c "
                         "(no spaces, no relationship paths)")
    return name


FieldName = Annotated[str, BeforeValidator(check_field_name)]
