"""What to mirror of an object, decided from its describe on every run: the fields the run-as user can
read, their warehouse types, compound addresses rebuilt from their components, and formula fields flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sonora_pipeline.salesforce.errors import InsufficientAccess, SalesforceError

DUCKDB_TYPES = {
    "id": "VARCHAR", "reference": "VARCHAR", "string": "VARCHAR", "textarea": "VARCHAR", "picklist": "VARCHAR",
    "multipicklist": "VARCHAR", "combobox": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR", "url": "VARCHAR",
    "encryptedstring": "VARCHAR", "base64": "VARCHAR", "anyType": "VARCHAR", "complexvalue": "VARCHAR",
    "json": "VARCHAR", "boolean": "BOOLEAN", "int": "BIGINT", "long": "BIGINT", "double": "DOUBLE",
    "currency": "DOUBLE", "percent": "DOUBLE", "date": "DATE", "datetime": "TIMESTAMP", "time": "VARCHAR",
}
ADDRESS_PARTS = ("street", "city", "state", "postalCode", "country", "latitude", "longitude", "geocodeAccuracy")
REQUIRED_FIELDS = ("Id", "SystemModstamp")
# Objects whose records are never deleted (User is deactivated: IsActive = false) have no IsDeleted field.
# Their mirror table still carries an `IsDeleted` column (false; true only once the Id reconciliation finds
# the record gone), so every table answers "is this row live?" the same way.
SOFT_DELETE_FIELD = "IsDeleted"
_TABLE_NAMES = {"CaseComment": "case_comment"}


def table_name_for(object_name: str) -> str:
    """Analyst-friendly table name: account, contact, case, case_comment, invoice__c."""
    if object_name in _TABLE_NAMES:
        return _TABLE_NAMES[object_name]
    return object_name.lower()


@dataclass(frozen=True)
class MirrorField:
    name: str
    sf_type: str
    duckdb_type: str
    label: str
    calculated: bool = False
    formula: str | None = None
    custom: bool = False

    @property
    def comment(self) -> str:
        text = self.label
        if self.calculated:
            text += f" (formula: {self.formula})" if self.formula else " (formula)"
        return text


@dataclass(frozen=True)
class CompoundField:
    """An address compound, stored as a STRUCT built from its component columns at commit time."""

    name: str
    label: str
    parts: tuple[tuple[str, str], ...]  # (struct key, component column)


@dataclass
class ObjectSchema:
    object_name: str
    label: str
    fields: list[MirrorField] = field(default_factory=list)
    compounds: list[CompoundField] = field(default_factory=list)
    record_types: list[tuple[str, str, str]] = field(default_factory=list)  # (id, developer name, label)

    @property
    def table(self) -> str:
        return table_name_for(self.object_name)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> MirrorField | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def soft_deletes(self) -> bool:
        """Whether the object has Salesforce's IsDeleted (a recycle bin); User, for one, has not."""
        return self.field(SOFT_DELETE_FIELD) is not None

    @property
    def formula_fields(self) -> list[MirrorField]:
        """Formula (calculated) fields: their values change without SystemModstamp moving."""
        return [f for f in self.fields if f.calculated]

    @property
    def has_archived(self) -> bool:
        return self.field("IsArchived") is not None


def _part_key(compound: str, component: str) -> str | None:
    prefix = re.sub(r"Address$", "", compound)
    if not component.startswith(prefix):
        return None
    rest = component[len(prefix):]
    key = rest[:1].lower() + rest[1:]
    return key if key in ADDRESS_PARTS else None


def schema_from_describe(describe: dict[str, Any], *, required: tuple[str, ...] = ()) -> ObjectSchema:
    """Build the mirror schema; a required field the run-as user cannot read is an InsufficientAccess."""
    name = describe["name"]
    if not describe.get("queryable", True):
        raise SalesforceError(f"{name} cannot be queried through the API.",
                              f"remove {name} from sync.custom_objects, or use a queryable object")
    schema = ObjectSchema(object_name=name, label=describe.get("label", name), record_types=[
        (rt["recordTypeId"], rt["developerName"], rt["name"]) for rt in describe.get("recordTypeInfos") or []
        if rt.get("recordTypeId") and rt.get("developerName")])
    for raw in describe["fields"]:
        ftype = raw["type"]
        if ftype == "address":
            continue
        if ftype == "location" or raw.get("deprecatedAndHidden"):
            continue
        schema.fields.append(MirrorField(
            name=raw["name"], sf_type=ftype, duckdb_type=DUCKDB_TYPES.get(ftype, "VARCHAR"), label=raw["label"],
            calculated=bool(raw.get("calculated")), formula=raw.get("calculatedFormula"),
            custom=bool(raw.get("custom")),
        ))
    names = set(schema.field_names)
    for raw in describe["fields"]:
        if raw["type"] != "address":
            continue
        parts = tuple(
            (key, component["name"]) for component in describe["fields"]
            if component.get("compoundFieldName") == raw["name"] and component["name"] in names
            and (key := _part_key(raw["name"], component["name"]))
        )
        if parts:
            schema.compounds.append(CompoundField(name=raw["name"], label=raw["label"], parts=parts))
    for needed in (*REQUIRED_FIELDS, *required):
        if needed not in names:
            raise InsufficientAccess(name, needed)
    return schema
