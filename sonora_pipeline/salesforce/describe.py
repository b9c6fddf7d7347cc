"""What to mirror of an object, decided from its describe on every run: the fields the run-as user can
read, their warehouse types, compound addresses rebuilt from their components, and formula fields flagged.

It lives with the client because it reads nothing but describe's JSON: the mirror, the sync and the
formula refresh all take an `ObjectSchema` from here, so none of them has to know another's code.
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
# Salesforce keeps these as decimals of `precision` digits, `scale` after the point (currency of precision 18
# holds 999999999999999999, which a DOUBLE cannot): they are mirrored as DECIMAL(precision, scale).
DECIMAL_TYPES = {"double", "currency", "percent"}
MAX_DECIMAL_PRECISION = 38  # DuckDB's widest DECIMAL
ADDRESS_PARTS = ("street", "city", "state", "postalCode", "country", "latitude", "longitude", "geocodeAccuracy")
REQUIRED_FIELDS = ("Id", "SystemModstamp")
# Objects whose records are never deleted (User is deactivated: IsActive = false) have no IsDeleted field.
# Their mirror table still carries an `IsDeleted` column (false; true only once the Id reconciliation finds
# the record gone), so every table answers "is this row live?" the same way.
SOFT_DELETE_FIELD = "IsDeleted"


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


def decimal_type(raw: dict[str, Any]) -> str | None:
    """`DECIMAL(p,s)` for a number field's describe entry, or None when its precision and scale are missing
    or odd (absent, not whole numbers, 0, wider than DuckDB's 38 digits, scale beyond precision): such a field
    falls back to DOUBLE, which holds any value the org may send."""
    if raw.get("type") not in DECIMAL_TYPES:
        return None
    precision, scale = _whole(raw.get("precision")), _whole(raw.get("scale"))
    if precision is None or scale is None:
        return None
    if not 0 < precision <= MAX_DECIMAL_PRECISION or not 0 <= scale <= precision:
        return None
    return f"DECIMAL({precision},{scale})"


def _whole(value: Any) -> int | None:
    """An integer from describe's JSON (18, 18.0 or "18"), None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def warehouse_type(raw: dict[str, Any]) -> str:
    """The mirror column type of one describe field entry."""
    return decimal_type(raw) or DUCKDB_TYPES.get(raw.get("type", ""), "VARCHAR")


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
            name=raw["name"], sf_type=ftype, duckdb_type=warehouse_type(raw), label=raw["label"],
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
