"""Are the write-back's target fields usable? Checked against the Account describe before any write.

Each mapped field must be in the describe (so it exists and the run-as user can read it), be `updateable`
(not a formula, not read-only for the run-as user), and have a type that fits the value: numbers go to
double/percent/currency/int fields and must fit their precision and scale; text goes to string/textarea
fields and must fit their length; mapped values (bands) go to a picklist that offers each of them. A bad
target stops the run with the field's name and the fix; nothing is written. Reading describe is one API call
(`check_targets`); `validate` is the pure check on a describe already read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sonora_pipeline.mirror.tables import column_kind
from sonora_pipeline.settings import Settings, SettingsError

TARGET_OBJECT = "Account"  # the write-back writes model values to Account fields only
NUMBER_FIELDS = ("double", "percent", "currency", "int", "long")
TEXT_FIELDS = ("string", "textarea", "email", "phone", "url", "picklist")


class TargetError(SettingsError):
    """A target field the write-back cannot write; one line per problem, each naming the field and the fix."""


@dataclass(frozen=True)
class Target:
    """A validated target field: what `push` needs to format and compare its values."""

    name: str           # the field's API name as the org spells it
    type: str
    scale: int
    length: int


def _fields(describe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(f.get("name", "")).lower(): f for f in describe.get("fields") or []}


def validate(describe: dict[str, Any], settings: Settings, planned: Iterable[Any] = (),
             column_types: dict[int, str] | None = None) -> dict[str, Target]:
    """{mapping field: Target} when every target is usable; else a TargetError listing each problem.

    `planned` (objects with `mapping_index` and `wire`) are the values about to be written: their range and
    length are checked too. `column_types` gives the model column's DuckDB type per mapping index."""
    fields = _fields(describe)
    object_name = describe.get("name") or TARGET_OBJECT
    values: dict[int, list[Any]] = {}
    for p in planned:
        if p.wire is not None:
            values.setdefault(p.mapping_index, []).append(p.wire)
    problems: list[str] = []
    targets: dict[str, Target] = {}
    for i, mapping in enumerate(settings.writeback.mappings):
        where = settings.locate(("writeback", "mappings", i, "field"))
        name = f"{object_name}.{mapping.field}"
        info = fields.get(mapping.field.lower())
        if info is None:
            close = difflib.get_close_matches(mapping.field.lower(), list(fields), n=1, cutoff=0.75)
            hint = f" (did you mean {fields[close[0]]['name']}?)" if close else ""
            problems.append(f"{where}: {name} does not exist or is not visible to the run-as user (it is not in "
                            f"{object_name}'s describe){hint}; fix the API name, create the field, or grant the "
                            "run-as user read and edit access in its field-level security (Setup > Object Manager "
                            f"> {object_name} > Fields & Relationships > {mapping.field} > Set Field-Level Security)")
            continue
        ftype = str(info.get("type"))
        if info.get("calculated"):
            problems.append(f"{where}: {name} is a formula field (not updateable); choose a writable field")
            continue
        if not info.get("updateable"):
            problems.append(f"{where}: {name} is not updateable by the run-as user ({ftype}, read-only); grant "
                            "Edit in its field-level security, or choose a writable field")
            continue
        kind = "text" if mapping.values is not None else column_kind((column_types or {}).get(i, ""))
        mine = values.get(i, [])
        scale = int(info.get("scale") or 0)
        length = int(info.get("length") or 0)
        if kind == "number":
            if ftype not in NUMBER_FIELDS:
                problems.append(f"{where}: {name} is a {ftype} field but {mapping.column} is a number; choose a "
                                "Number, Percent or Currency field")
                continue
            if ftype in ("int", "long"):
                limit = 10 ** int(info.get("digits") or 18)
            else:
                limit = 10 ** (int(info.get("precision") or 18) - scale)
            too_big = [v for v in mine if isinstance(v, (int, float, Decimal)) and abs(v) >= limit]
            if too_big:
                problems.append(f"{where}: {name} holds numbers below {limit:,} ({ftype}, precision "
                                f"{info.get('precision')}, scale {scale}) but {mapping.column} has "
                                f"{float(max(abs(v) for v in too_big)):g}; choose a field with a larger precision")
                continue
            if ftype in ("int", "long") and any(isinstance(v, (float, Decimal)) and v != int(v) for v in mine):
                problems.append(f"{where}: {name} is a whole-number field but {mapping.column} has decimals; "
                                "choose a Number field with decimal places")
                continue
        elif kind in ("boolean", "date", "datetime"):
            if ftype != kind:
                problems.append(f"{where}: {name} is a {ftype} field but {mapping.column} is a {kind}; choose a "
                                f"{kind} field")
                continue
        else:
            if ftype not in TEXT_FIELDS and ftype != "multipicklist":
                problems.append(f"{where}: {name} is a {ftype} field but {mapping.column} is text; choose a Text, "
                                "Text Area or Picklist field")
                continue
            texts = [str(v) for v in mine]
            if ftype in ("picklist", "multipicklist"):
                allowed = [str(p.get("value")) for p in info.get("picklistValues") or [] if p.get("active", True)]
                wanted = list(mapping.values.values()) if mapping.values is not None else sorted(set(texts))
                missing = [v for v in dict.fromkeys(wanted) if v not in allowed]
                if missing:
                    fix = (f"map to allowed values under writeback.mappings[{i}].values" if mapping.values
                           else "add a 'values:' mapping to allowed values")
                    shown = ", ".join(repr(v) for v in missing)
                    problems.append(f"{where}: {name} does not allow the value(s) {shown} "
                                    f"(allowed: {', '.join(allowed) or 'none'}); add them to the picklist in Setup, "
                                    f"or {fix}")
                    continue
            if length and texts and max(len(t) for t in texts) > length:
                longest = max(len(t) for t in texts)
                problems.append(f"{where}: {name} holds at most {length} characters but {mapping.column} has a "
                                f"value of {longest}; choose a longer field (e.g. a Long Text Area) or a shorter "
                                "column")
                continue
        targets[mapping.field] = Target(name=str(info.get("name")), type=ftype, scale=scale, length=length)
    if problems:
        header = f"The write-back's target fields have {len(problems)} problems:" if len(problems) > 1 else None
        raise TargetError(*problems, header=header)
    return targets


def check_targets(client: Any, settings: Settings, planned: Iterable[Any] = (),
                  column_types: dict[int, str] | None = None, object_name: str = TARGET_OBJECT) -> dict[str, Target]:
    """Describe the object (one API call) and validate the targets; writes nothing."""
    return validate(client.describe(object_name), settings, planned, column_types)
