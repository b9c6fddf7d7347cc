"""The local org's metadata: which objects exist, their fields, and what the run-as user may read.

Standard objects start from real `describe` recordings (see `seed/NOTICE.md`) so that every field entry
has exactly the keys and values a real org sends; objects with no recording (Task, CaseComment, User,
RecordType) and our custom fields are built from a recorded field entry of the same type. Everything that
answers a client (describe, SOQL, Bulk CSV) reads this catalog, so adding a field or revoking read access
here changes all of them at once, as in a real org.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

# Salesforce field type -> DuckDB column type. Compound types (address, location) have no column:
# they are assembled from their component fields.
DUCKDB_TYPES: dict[str, str] = {
    "id": "VARCHAR",
    "reference": "VARCHAR",
    "string": "VARCHAR",
    "textarea": "VARCHAR",
    "picklist": "VARCHAR",
    "multipicklist": "VARCHAR",
    "combobox": "VARCHAR",
    "email": "VARCHAR",
    "phone": "VARCHAR",
    "url": "VARCHAR",
    "encryptedstring": "VARCHAR",
    "base64": "VARCHAR",
    "anyType": "VARCHAR",
    "boolean": "BOOLEAN",
    "int": "BIGINT",
    "long": "BIGINT",
    "double": "DOUBLE",
    "currency": "DOUBLE",
    "percent": "DOUBLE",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "time": "TIME",
}
COMPOUND_TYPES = {"address", "location"}
DECIMAL_TYPES = {"double", "currency", "percent"}  # stored as DECIMAL(precision, scale) when describe says
NUMERIC_TYPES = {"int", "long", "double", "currency", "percent"}
TEXT_TYPES = {
    "id", "reference", "string", "textarea", "picklist", "multipicklist", "combobox", "email",
    "phone", "url", "encryptedstring", "base64", "anyType",
}
MASTER_RECORD_TYPE_ID = "012000000000000AAA"


def _load_seed(name: str) -> dict[str, Any]:
    text = resources.files("sonora_pipeline.localorg").joinpath("seed", name).read_text("utf-8")
    return json.loads(text)


@dataclass
class FieldSpec:
    """One field: its describe entry (`raw`) plus what the store needs to hold it."""

    raw: dict[str, Any]
    # A Python callable (row dict -> value) for formula fields the store recomputes on every write.
    formula: Any = None
    # For formula fields computed when read, as Salesforce computes every formula: a callable
    # (table alias, org's today) -> DuckDB SQL expression. Their value can change without the record's
    # SystemModstamp moving (a parent's field, TODAY()); the stored column stays NULL.
    query_formula: Any = None

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def type(self) -> str:
        return self.raw["type"]

    @property
    def label(self) -> str:
        return self.raw["label"]

    @property
    def is_compound(self) -> bool:
        return self.type in COMPOUND_TYPES

    @property
    def compound_field_name(self) -> str | None:
        return self.raw.get("compoundFieldName")

    @property
    def reference_to(self) -> list[str]:
        return list(self.raw.get("referenceTo") or [])

    @property
    def relationship_name(self) -> str | None:
        return self.raw.get("relationshipName")

    @property
    def polymorphic(self) -> bool:
        return bool(self.raw.get("polymorphicForeignKey")) or len(self.reference_to) > 1

    @property
    def calculated(self) -> bool:
        return bool(self.raw.get("calculated"))

    @property
    def createable(self) -> bool:
        return bool(self.raw.get("createable"))

    @property
    def updateable(self) -> bool:
        return bool(self.raw.get("updateable"))

    @property
    def filterable(self) -> bool:
        return bool(self.raw.get("filterable", True))

    @property
    def sortable(self) -> bool:
        return bool(self.raw.get("sortable", True))

    @property
    def nillable(self) -> bool:
        return bool(self.raw.get("nillable"))

    @property
    def duckdb_type(self) -> str | None:
        if self.is_compound:
            return None
        if self.type in DECIMAL_TYPES and self.decimal_digits is not None:
            return "DECIMAL({},{})".format(*self.decimal_digits)
        return DUCKDB_TYPES.get(self.type, "VARCHAR")

    @property
    def decimal_digits(self) -> tuple[int, int] | None:
        """(precision, scale) of a number field, as a real org keeps it (an exact decimal: 18 digits of
        currency hold 999999999999999999); None when describe gives none DuckDB can hold (then DOUBLE)."""
        precision, scale = self.raw.get("precision"), self.raw.get("scale")
        if not isinstance(precision, int) or not isinstance(scale, int) or isinstance(precision, bool):
            return None
        if not 0 < precision <= 38 or not 0 <= scale <= precision:
            return None
        return precision, scale

    @property
    def picklist_values(self) -> list[str]:
        return [p["value"] for p in self.raw.get("picklistValues") or [] if p.get("active", True)]


@dataclass
class ObjectSpec:
    """One sObject: describe top-level keys, global-describe entry, and ordered fields."""

    name: str
    key_prefix: str
    describe_top: dict[str, Any]
    global_entry: dict[str, Any]
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    record_types: list[dict[str, Any]] = field(default_factory=list)

    @property
    def table(self) -> str:
        """The DuckDB table that holds this object's rows inside the local org."""
        return f'"{self.name}"'

    def field_named(self, name: str) -> FieldSpec | None:
        for f in self.fields.values():
            if f.name.lower() == name.lower():
                return f
        return None

    def stored_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields.values() if not f.is_compound]

    def compound_components(self, compound: FieldSpec) -> list[FieldSpec]:
        return [f for f in self.fields.values() if f.compound_field_name == compound.name]


class Catalog:
    """All objects of the org plus the run-as user's field-level security.

    Thread-safe: the server reads it from many request threads while controls change it.
    """

    def __init__(self, objects: Iterable[ObjectSpec], field_factory: FieldFactory | None = None):
        self._objects: dict[str, ObjectSpec] = {o.name.lower(): o for o in objects}
        self.field_factory = field_factory  # makes describe entries for fields added while the org runs
        self._hidden: set[tuple[str, str]] = set()  # (object lower, field lower) the user cannot read
        self.lock = threading.RLock()

    # -- lookup -------------------------------------------------------------------------------------
    def objects(self) -> list[ObjectSpec]:
        return list(self._objects.values())

    def object(self, name: str) -> ObjectSpec | None:
        return self._objects.get(name.lower())

    def object_for_prefix(self, prefix: str) -> ObjectSpec | None:
        for o in self._objects.values():
            if o.key_prefix == prefix:
                return o
        return None

    def is_readable(self, obj: ObjectSpec, f: FieldSpec) -> bool:
        """Field-level security: Id is always readable; a compound is readable when all parts are."""
        if f.name == "Id":
            return True
        if (obj.name.lower(), f.name.lower()) in self._hidden:
            return False
        if f.is_compound:
            return all(self.is_readable(obj, c) for c in obj.compound_components(f))
        return True

    def readable_field(self, obj: ObjectSpec, name: str) -> FieldSpec | None:
        """The field as the run-as user sees it: None when absent or hidden by field-level security."""
        f = obj.field_named(name)
        if f is None or not self.is_readable(obj, f):
            return None
        return f

    def readable_fields(self, obj: ObjectSpec) -> list[FieldSpec]:
        return [f for f in obj.fields.values() if self.is_readable(obj, f)]

    def relationship(self, obj: ObjectSpec, rel_name: str) -> FieldSpec | None:
        """The readable reference field whose relationshipName is `rel_name` (case-insensitive)."""
        for f in obj.fields.values():
            if f.relationship_name and f.relationship_name.lower() == rel_name.lower():
                return f if self.is_readable(obj, f) else None
        return None

    def fork(self) -> Catalog:
        """A catalog of its own for another org of the same shape, made in microseconds: its own objects,
        field lists and hidden fields (what the controls change), sharing the field entries, which nothing
        changes once built (the way `without_custom_fields` shares them)."""
        objects = []
        for obj in self._objects.values():
            kept = copy.copy(obj)
            kept.fields = dict(obj.fields)
            kept.record_types = list(obj.record_types)
            objects.append(kept)
        forked = Catalog(objects, field_factory=self.field_factory)
        with self.lock:
            forked._hidden = set(self._hidden)
        return forked

    # -- changes (controls) ---------------------------------------------------------------------------
    def revoke_read(self, object_name: str, field_name: str) -> None:
        obj = self._require(object_name)
        f = obj.field_named(field_name)
        if f is None:
            raise KeyError(f"{object_name}.{field_name} does not exist")
        with self.lock:
            self._hidden.add((obj.name.lower(), f.name.lower()))

    def grant_read(self, object_name: str, field_name: str) -> None:
        with self.lock:
            self._hidden.discard((object_name.lower(), field_name.lower()))

    def add_field(self, object_name: str, spec: FieldSpec) -> FieldSpec:
        obj = self._require(object_name)
        with self.lock:
            if obj.field_named(spec.name) is not None:
                raise ValueError(f"{object_name}.{spec.name} already exists")
            obj.fields[spec.name] = spec
        return spec

    def _require(self, object_name: str) -> ObjectSpec:
        obj = self.object(object_name)
        if obj is None:
            raise KeyError(f"no sObject named {object_name}")
        return obj


# -- building field entries ---------------------------------------------------------------------------

_TEMPLATE_SOURCES = {
    # type -> (seed object, field) whose recorded entry is the template for new fields of that type
    "id": ("Account", "Id"),
    "reference": ("Account", "ParentId"),
    "string": ("Account", "AccountNumber"),
    "textarea": ("Account", "Description"),
    "picklist": ("Account", "Industry"),
    "combobox": ("Event", "Subject"),
    "email": ("Contact", "Email"),
    "phone": ("Account", "Phone"),
    "url": ("Account", "Website"),
    "boolean": ("Account", "IsPartner"),
    "int": ("Account", "NumberOfEmployees"),
    "double": ("Opportunity", "TotalOpportunityQuantity"),
    "currency": ("Opportunity", "Amount"),
    "percent": ("Opportunity", "Probability"),
    "date": ("Opportunity", "CloseDate"),
    "datetime": ("Account", "LastViewedDate"),
}


class FieldFactory:
    """Makes describe entries for fields with no recording, from a recorded entry of the same type."""

    def __init__(self, seeds: dict[str, dict[str, Any]]):
        self._templates: dict[str, dict[str, Any]] = {}
        for ftype, (obj, fname) in _TEMPLATE_SOURCES.items():
            entry = next(f for f in seeds[obj]["fields"] if f["name"] == fname)
            self._templates[ftype] = entry

    def make(
        self,
        name: str,
        ftype: str,
        label: str,
        *,
        length: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
        picklist: list[str] | None = None,
        reference_to: list[str] | None = None,
        relationship_name: str | None = None,
        custom: bool | None = None,
        createable: bool = True,
        updateable: bool = True,
        nillable: bool = True,
        calculated_formula: str | None = None,
        formula: Any = None,
        query_formula: Any = None,
        defaulted: bool = False,
        polymorphic: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> FieldSpec:
        raw = copy.deepcopy(self._templates[ftype])
        is_custom = name.endswith("__c") if custom is None else custom
        raw.update(
            name=name, label=label, custom=is_custom, createable=createable, updateable=updateable,
            nillable=nillable, defaultedOnCreate=defaulted, idLookup=ftype == "id",
            nameField=False, externalId=False, unique=False, inlineHelpText=None, defaultValue=None,
            calculated=calculated_formula is not None, calculatedFormula=calculated_formula,
            compoundFieldName=None, polymorphicForeignKey=polymorphic, permissionable=is_custom,
            dependentPicklist=False, controllerName=None, restrictedPicklist=False,
        )
        if ftype == "boolean":
            raw.update(defaultValue=False, nillable=False, defaultedOnCreate=True)
        if ftype in TEXT_TYPES and length is not None:
            raw.update(length=length, byteLength=length * 3)
        if ftype in ("double", "currency", "percent"):
            raw.update(precision=precision or 18, scale=scale if scale is not None else 2)
        if ftype == "int":
            raw.update(digits=precision or 9)
        if ftype == "picklist":
            values = picklist or []
            raw["picklistValues"] = [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in values
            ]
        if ftype == "reference":
            raw.update(referenceTo=reference_to or [], relationshipName=relationship_name,
                       cascadeDelete=False, restrictedDelete=False)
        if calculated_formula is not None:
            raw.update(createable=False, updateable=False, defaultedOnCreate=False, nillable=True)
        if extra:
            raw.update(extra)
        return FieldSpec(raw=raw, formula=formula, query_formula=query_formula)


# -- the catalog of a standard local org -------------------------------------------------------------

def _spec_from_seed(seed: dict[str, Any], global_entry: dict[str, Any]) -> ObjectSpec:
    top = {k: v for k, v in seed.items() if k not in ("fields", "recordTypeInfos")}
    obj = ObjectSpec(
        name=seed["name"], key_prefix=seed["keyPrefix"], describe_top=top,
        global_entry=copy.deepcopy(global_entry),
    )
    for f in seed["fields"]:
        obj.fields[f["name"]] = FieldSpec(raw=copy.deepcopy(f))
    return obj


def _global_entry_like(template: dict[str, Any], name: str, label: str, plural: str, prefix: str,
                       **overrides: Any) -> dict[str, Any]:
    entry = copy.deepcopy(template)
    entry.update(name=name, label=label, labelPlural=plural, keyPrefix=prefix, custom=name.endswith("__c"))
    entry.update(overrides)
    return entry


def _top_like(template: dict[str, Any], name: str, label: str, plural: str, prefix: str,
              **overrides: Any) -> dict[str, Any]:
    top = copy.deepcopy(template)
    top.update(name=name, label=label, labelPlural=plural, keyPrefix=prefix, custom=name.endswith("__c"),
               childRelationships=[], supportedScopes=[{"label": "All " + plural.lower(), "name": "everything"}],
               actionOverrides=[], namedLayoutInfos=[])
    top.update(overrides)
    return top


def _audit_fields(seeds: dict[str, dict[str, Any]]) -> list[FieldSpec]:
    """IsDeleted and the audit fields exactly as the recorded Account has them."""
    acct = {f["name"]: f for f in seeds["Account"]["fields"]}
    out = []
    for name in ("IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp"):
        out.append(FieldSpec(raw=copy.deepcopy(acct[name])))
    return out


def _id_field(seeds: dict[str, dict[str, Any]], label: str) -> FieldSpec:
    raw = copy.deepcopy(next(f for f in seeds["Account"]["fields"] if f["name"] == "Id"))
    raw["label"] = label
    return FieldSpec(raw=raw)


_standard: Catalog | None = None
_standard_lock = threading.Lock()


def build_standard_catalog() -> Catalog:
    """The objects Sonora syncs, with the custom fields a typical customer-success org has: a fork of one
    catalog built per process (a build deep-copies the recorded describes, ~50 ms an org; a fork takes
    microseconds and gives the org its own objects, field lists and hidden fields, as `Catalog.fork` says)."""
    global _standard
    with _standard_lock:
        if _standard is None:
            _standard = _build_standard_catalog()
    return _standard.fork()


def _build_standard_catalog() -> Catalog:
    seeds = {
        "Account": _load_seed("cumulusci_account_describe.json"),
        "Contact": _load_seed("cumulusci_contact_describe.json"),
        "Opportunity": _load_seed("cumulusci_opportunity_describe.json"),
        "Case": _load_seed("cumulusci_case_describe.json"),
        "Event": _load_seed("cumulusci_event_describe.json"),
    }
    global_seed = {s["name"]: s for s in _load_seed("cumulusci_describe_global_subset.json")["sobjects"]}
    ff = FieldFactory(seeds)
    objects: dict[str, ObjectSpec] = {}
    for name, seed in seeds.items():
        objects[name] = _spec_from_seed(seed, global_seed[name])

    # The recorded Account describe comes from a nonprofit org whose custom fields we keep (they make the
    # org realistic), but its record types are replaced with a B2B set.
    objects["Account"].record_types = [
        {"developerName": "Customer", "name": "Customer", "recordTypeId": "0125g000000CusAAAS"},
        {"developerName": "Partner", "name": "Partner", "recordTypeId": "0125g000000ParAAAS"},
        {"developerName": "Prospect", "name": "Prospect", "recordTypeId": "0125g000000ProAAAS"},
    ]

    acct_global = global_seed["Account"]
    acct_top = objects["Account"].describe_top

    # User: the owners. Built like the recorded objects, with the fields owners are queried by.
    user = ObjectSpec(
        name="User", key_prefix="005",
        describe_top=_top_like(acct_top, "User", "User", "Users", "005", mergeable=False, feedEnabled=True),
        global_entry=_global_entry_like(global_seed.get("User", acct_global), "User", "User", "Users", "005"),
    )
    for f in [
        _id_field(seeds, "User ID"),
        ff.make("Username", "string", "Username", length=80, nillable=False, custom=False),
        ff.make("LastName", "string", "Last Name", length=80, nillable=False, custom=False),
        ff.make("FirstName", "string", "First Name", length=40, custom=False),
        ff.make("Name", "string", "Full Name", length=121, createable=False, updateable=False, custom=False,
                extra={"nameField": True}),
        ff.make("Email", "email", "Email", length=128, nillable=False, custom=False),
        ff.make("Title", "string", "Title", length=80, custom=False),
        ff.make("Department", "string", "Department", length=80, custom=False),
        ff.make("IsActive", "boolean", "Active", custom=False),
        ff.make("UserType", "picklist", "User Type", custom=False, createable=False, updateable=False,
                picklist=["Standard", "PowerPartner", "CsnOnly"]),
    ]:
        user.fields[f.name] = f
    for f in _audit_fields(seeds):
        if f.name != "IsDeleted":  # User has no IsDeleted in a real org
            user.fields[f.name] = f
    objects["User"] = user

    # RecordType: so RecordType.DeveloperName works in SOQL.
    rt = ObjectSpec(
        name="RecordType", key_prefix="012",
        describe_top=_top_like(acct_top, "RecordType", "Record Type", "Record Types", "012",
                               createable=False, deletable=False, updateable=False, mergeable=False),
        global_entry=_global_entry_like(acct_global, "RecordType", "Record Type", "Record Types", "012",
                                        createable=False, deletable=False, updateable=False),
    )
    for f in [
        _id_field(seeds, "Record Type ID"),
        ff.make("Name", "string", "Record Type Name", length=80, custom=False, extra={"nameField": True}),
        ff.make("DeveloperName", "string", "Record Type Name", length=80, custom=False),
        ff.make("SobjectType", "picklist", "SObject Type Name", length=40, custom=False,
                picklist=["Account", "Contact", "Opportunity", "Case"]),
        ff.make("IsActive", "boolean", "Active", custom=False),
    ]:
        rt.fields[f.name] = f
    for f in _audit_fields(seeds):
        if f.name != "IsDeleted":
            rt.fields[f.name] = f
    objects["RecordType"] = rt

    # Task: shares the activity fields of the recorded Event describe, plus its own status fields.
    event = objects["Event"]
    task = ObjectSpec(
        name="Task", key_prefix="00T",
        describe_top=_top_like(event.describe_top, "Task", "Task", "Tasks", "00T"),
        global_entry=_global_entry_like(global_seed["Event"], "Task", "Task", "Tasks", "00T"),
    )
    shared = ["Id", "WhoId", "WhatId", "Subject", "ActivityDate", "Description", "AccountId", "OwnerId",
              "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
              "SystemModstamp", "IsArchived", "IsRecurrence", "ReminderDateTime", "IsReminderSet"]
    for name in shared:
        raw = copy.deepcopy(event.fields[name].raw)
        if name == "Id":
            raw["label"] = "Activity ID"
        task.fields[name] = FieldSpec(raw=raw)
        if name == "Subject":
            for f in [
                ff.make("Status", "picklist", "Status", custom=False, nillable=False, defaulted=True,
                        picklist=["Not Started", "In Progress", "Completed", "Waiting on someone else",
                                  "Deferred"]),
                ff.make("Priority", "picklist", "Priority", custom=False, nillable=False, defaulted=True,
                        picklist=["High", "Normal", "Low"]),
                ff.make("IsHighPriority", "boolean", "High Priority", custom=False, createable=False,
                        updateable=False),
                ff.make("IsClosed", "boolean", "Closed", custom=False, createable=False, updateable=False),
                ff.make("TaskSubtype", "picklist", "Task Subtype", custom=False, updateable=False,
                        picklist=["Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"]),
                ff.make("CallDurationInSeconds", "int", "Call Duration", custom=False, precision=8),
                ff.make("CompletedDateTime", "datetime", "Completed Date/Time", custom=False,
                        createable=False, updateable=False),
            ]:
                task.fields[f.name] = f
    objects["Task"] = task

    # CaseComment: the doc'd fields, built from recorded entries of the same types.
    cc = ObjectSpec(
        name="CaseComment", key_prefix="00a",
        describe_top=_top_like(objects["Case"].describe_top, "CaseComment", "Case Comment", "Case Comments",
                               "00a", feedEnabled=False, mergeable=False, searchable=False),
        global_entry=_global_entry_like(global_seed["Case"], "CaseComment", "Case Comment", "Case Comments",
                                        "00a", feedEnabled=False, mergeable=False, searchable=False),
    )
    for f in [
        _id_field(seeds, "Case Comment ID"),
        ff.make("ParentId", "reference", "Parent ID", custom=False, nillable=False, updateable=False,
                reference_to=["Case"], relationship_name="Parent"),
        ff.make("IsPublished", "boolean", "Published", custom=False),
        ff.make("CommentBody", "textarea", "Body", length=4000, custom=False),
    ]:
        cc.fields[f.name] = f
    for f in _audit_fields(seeds):
        cc.fields[f.name] = f
    objects["CaseComment"] = cc

    objects["Subscription__c"] = _subscription_object(seeds, global_seed, ff)
    _add_child_relationship(objects["Account"], "Subscription__c", "Account__c", "Subscriptions__r")

    _add_custom_fields(objects, ff)
    return Catalog(objects.values(), field_factory=ff)


SUBSCRIPTION_STATUSES = ("Active", "Trial", "Cancelled", "Expired")
SUBSCRIPTION_PLANS = ("Starter", "Growth", "Enterprise")


# The global-describe / describe-top flags a custom object has that differ from the recorded Account.
_CUSTOM_OBJECT_FLAGS = dict(
    custom=True, mergeable=False, feedEnabled=False, activateable=False, deepCloneable=False,
    customSetting=False, queryable=True, retrieveable=True, replicateable=True, searchable=True,
    createable=True, updateable=True, deletable=True, undeletable=True, triggerable=True, layoutable=True,
    mruEnabled=True,
)


def _subscription_object(seeds: dict[str, dict[str, Any]], global_seed: dict[str, dict[str, Any]],
                         ff: FieldFactory) -> ObjectSpec:
    """Subscription__c: a custom object (one row per product subscription of a customer account).

    Built like the other objects without a recording: the describe top and global entry copy the recorded
    Account's (same key sets) with a custom object's flags; the system fields are the recorded Account
    entries, the `__c` fields come from `FieldFactory`. Its Name is a text name field (length 80, as a
    custom object's text Name is); generated rows are named "SUB-000123"."""
    acct_top = seeds["Account"]
    top_template = {k: v for k, v in acct_top.items() if k not in ("fields", "recordTypeInfos")}
    acct_global = global_seed["Account"]
    flags_top = {k: v for k, v in _CUSTOM_OBJECT_FLAGS.items() if k in top_template}
    flags_global = {k: v for k, v in _CUSTOM_OBJECT_FLAGS.items() if k in acct_global}
    sub = ObjectSpec(
        name="Subscription__c", key_prefix="a0S",
        describe_top=_top_like(top_template, "Subscription__c", "Subscription", "Subscriptions", "a0S",
                               **flags_top),
        global_entry=_global_entry_like(acct_global, "Subscription__c", "Subscription", "Subscriptions",
                                        "a0S", **flags_global),
    )
    recorded = {f["name"]: f for f in seeds["Account"]["fields"]}
    audit = {f.name: f for f in _audit_fields(seeds)}
    name = ff.make("Name", "string", "Subscription Name", length=80, custom=False,
                   extra={"nameField": True, "idLookup": True, "defaultedOnCreate": True})
    name.raw.update(nillable=True, permissionable=False)
    owner = FieldSpec(raw=copy.deepcopy(recorded["OwnerId"]))
    account = ff.make("Account__c", "reference", "Account", reference_to=["Account"],
                      relationship_name="Account__r", nillable=False,
                      extra={"permissionable": False, "relationshipOrder": None})
    for f in [
        _id_field(seeds, "Record ID"),
        owner,
        audit["IsDeleted"],
        name,
        audit["CreatedDate"], audit["CreatedById"], audit["LastModifiedDate"], audit["LastModifiedById"],
        audit["SystemModstamp"],
        account,
        ff.make("Status__c", "picklist", "Status", length=255, picklist=list(SUBSCRIPTION_STATUSES)),
        ff.make("Plan__c", "picklist", "Plan", length=255, picklist=list(SUBSCRIPTION_PLANS)),
        ff.make("MRR__c", "currency", "MRR", precision=16, scale=2),
        ff.make("Seats__c", "double", "Seats", precision=18, scale=0),
        ff.make("Start_Date__c", "date", "Start Date"),
        ff.make("End_Date__c", "date", "End Date"),
        ff.make("Auto_Renew__c", "boolean", "Auto Renew"),
    ]:
        sub.fields[f.name] = f
    return sub


def _add_child_relationship(parent: ObjectSpec, child: str, field_name: str, relationship_name: str) -> None:
    """List `child.field_name` among `parent`'s describe childRelationships (same keys as recorded ones)."""
    entry = {
        "cascadeDelete": False, "childSObject": child, "deprecatedAndHidden": False, "field": field_name,
        "junctionIdListNames": [], "junctionReferenceTo": [], "relationshipName": relationship_name,
        "restrictedDelete": False,
    }
    rels = parent.describe_top.setdefault("childRelationships", [])
    if rels:
        entry = {k: entry.get(k) for k in rels[0]}  # exactly the recorded key set
    rels.append(entry)


def _add_custom_fields(objects: dict[str, ObjectSpec], ff: FieldFactory) -> None:
    """Custom fields a customer-success org has: revenue, contract, tier, and write-back targets."""
    acct = objects["Account"]

    def arr_band(row: dict[str, Any]) -> str | None:
        arr = row.get("ARR__c")
        if arr is None:
            return None
        return "Enterprise" if arr >= 250_000 else "Mid-Market" if arr >= 50_000 else "SMB"

    for f in [
        ff.make("ARR__c", "currency", "ARR", precision=16, scale=2),
        ff.make("Contract_Start_Date__c", "date", "Contract Start Date"),
        ff.make("Contract_End_Date__c", "date", "Contract End Date"),
        ff.make("Tier__c", "picklist", "Tier", length=255, picklist=["Platinum", "Gold", "Silver", "Bronze"]),
        ff.make("Customer_Success_Manager__c", "reference", "Customer Success Manager",
                reference_to=["User"], relationship_name="Customer_Success_Manager__r"),
        ff.make("Sonora_Health_Score__c", "double", "Sonora Health Score", precision=5, scale=2),
        ff.make("Sonora_eCSAT__c", "percent", "Sonora eCSAT", precision=5, scale=2),
        ff.make("Sonora_Health_Band__c", "picklist", "Sonora Health Band", length=255,
                picklist=["Green", "Yellow", "Red"]),
        ff.make("Sonora_Notes__c", "string", "Sonora Notes", length=255),
        ff.make("ARR_Band__c", "string", "ARR Band", length=1300,
                calculated_formula='IF(ARR__c >= 250000, "Enterprise", IF(ARR__c >= 50000, "Mid-Market", '
                                   '"SMB"))',
                formula=arr_band),
    ]:
        acct.fields[f.name] = f

    for name, spec in _read_time_formulas(ff).items():
        for f in spec:
            objects[name].fields[f.name] = f

    contact = objects["Contact"]
    for f in [
        ff.make("Persona__c", "picklist", "Persona", length=255,
                picklist=["Executive Sponsor", "Champion", "Decision Maker", "Admin", "End User"]),
        ff.make("NPS_Score__c", "double", "NPS Score", precision=2, scale=0),
        ff.make("Last_Survey_Date__c", "date", "Last Survey Date"),
        ff.make("Is_Primary_Contact__c", "boolean", "Primary Contact"),
    ]:
        contact.fields[f.name] = f


def without_custom_fields(catalog: Catalog) -> Catalog:
    """The same org as a fresh one has it: standard objects with their standard fields only — no custom
    object, no custom field (the recorded describes' own `__c` fields included) and no relationship to
    either. A pipeline that works here assumes nothing a customer's org may lack."""
    objects = []
    for obj in catalog.objects():
        if obj.name.endswith("__c") or obj.global_entry.get("custom"):
            continue
        kept = copy.copy(obj)
        kept.fields = {name: f for name, f in obj.fields.items()
                       if not f.raw.get("custom") and not name.endswith("__c")}  # recordings miss some flags
        kept.describe_top = dict(obj.describe_top)
        kept.describe_top["childRelationships"] = [
            rel for rel in obj.describe_top.get("childRelationships") or []
            if not str(rel.get("childSObject", "")).endswith("__c") and not str(rel.get("field", "")).endswith("__c")
        ]
        objects.append(kept)
    return Catalog(objects, field_factory=catalog.field_factory)


def _read_time_formulas(ff: FieldFactory) -> dict[str, list[FieldSpec]]:
    """Formula fields whose value changes while the record's SystemModstamp stays put, as in a real org:
    one reads its parent's owner (reassigning the Account, or renaming its owner, changes every
    Opportunity's value), one counts days from TODAY() (it changes every day, following the org clock).
    Computed in SQL when a query reads them (`query_formula`), so every API answers with today's value."""

    def account_owner_name(alias: str, today: Any) -> str:
        return (f'(SELECT fu."Name" FROM "Account" AS fa JOIN "User" AS fu ON fu."Id" = fa."OwnerId" '
                f'WHERE fa."Id" = {alias}."AccountId")')

    def days_to_renewal(alias: str, today: Any) -> str:
        return f"date_diff('day', DATE '{today.isoformat()}', {alias}.\"Contract_End_Date__c\")"

    return {
        "Opportunity": [ff.make(
            "Account_Owner_Name__c", "string", "Account Owner", length=1300,
            calculated_formula='Account.Owner.FirstName & " " & Account.Owner.LastName',
            query_formula=account_owner_name)],
        "Account": [ff.make(
            "Days_To_Renewal__c", "double", "Days to Renewal", precision=18, scale=0,
            calculated_formula="Contract_End_Date__c - TODAY()", query_formula=days_to_renewal)],
    }
