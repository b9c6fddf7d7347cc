"""SOQL AST + catalog -> parameterised DuckDB SQL, with the column layout results.py needs.

Why a compiler rather than an interpreter: the org's rows live in DuckDB, so filtering, joining parents
and sorting there is both fast and exact. All literal values travel as DuckDB parameters; identifiers come
only from the catalog (never from query text), so no SOQL text can change the SQL's meaning.

Salesforce semantics kept here: field-level security hides fields entirely (INVALID_FIELD); text `=`,
`IN` and `LIKE` are case-insensitive; `!=` and `NOT IN` match nulls (SOQL has no three-valued logic);
literals are type-checked against the field; ORDER BY puts nulls first for ASC and last for DESC.

Semi-joins (`field IN (SELECT ref FROM Other WHERE ...)`) and anti-joins (`NOT IN`) compile to DuckDB
`IN (SELECT ...)` sub-selects over the other object's table, with Salesforce's restrictions: the left operand
is an Id or reference field of the queried object (no relationship path), the sub-select selects exactly
one Id/reference field of another object (not Task/Event), never nests a further sub-select, and at most
two appear per query, only ANDed at the top level (never under OR or NOT).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sonora_pipeline.localorg.schema import TEXT_TYPES, Catalog, FieldSpec, ObjectSpec
from sonora_pipeline.localorg.soql import formats
from sonora_pipeline.localorg.soql.errors import (
    SoqlError,
    invalid_field,
    invalid_relationship,
    invalid_type,
    positioned,
)
from sonora_pipeline.localorg.soql.parser import (
    BoolOp,
    Compare,
    CountAll,
    InList,
    Literal,
    Not,
    Path,
    Pos,
    Query,
    SemiJoin,
    SubQuery,
    parse,
)

MAX_OFFSET = 2000
# Fields of the polymorphic "Name" entity (what `Who.X`, `What.X`, `Owner.X` may select), with the type used
# when no target defines them.
_NAME_ENTITY_FIELDS = {
    "Id": "id", "Name": "string", "Type": "string", "Alias": "string", "Email": "email",
    "FirstName": "string", "LastName": "string", "Title": "string", "Username": "string",
    "IsActive": "boolean", "Phone": "phone", "UserRoleId": "reference", "ProfileId": "reference",
    "RecordTypeId": "reference", "LastReferencedDate": "datetime", "LastViewedDate": "datetime",
}
_COMPOUND_KEYS = ("GeocodeAccuracy", "PostalCode", "Latitude", "Longitude", "Country", "Street", "State", "City")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# -- column layout for results.py ------------------------------------------------------------------------

@dataclass(frozen=True)
class ValueColumn:
    """A scalar field: JSON key, Salesforce type, index in the row, dotted SOQL path (Bulk header)."""

    key: str
    ftype: str
    index: int
    path: str


@dataclass(frozen=True)
class CompoundColumn:
    """An address/location: JSON key, type, (json key, row index, type) parts, dotted path."""

    key: str
    ftype: str
    parts: tuple[tuple[str, int, str], ...]
    path: str


@dataclass
class RecordShape:
    """One record level (root or parent): its type, where its Id (and for polymorphic, type) sits in the row,
    and its keys in SELECT order."""

    type_name: str | None
    id_index: int
    type_index: int | None = None
    items: list[tuple[str, ValueColumn | CompoundColumn | RecordShape]] = field(default_factory=list)

    def child(self, key: str) -> RecordShape | None:
        for k, v in self.items:
            if k == key and isinstance(v, RecordShape):
                return v
        return None


@dataclass
class CompiledQuery:
    """What the server runs: `sql` + `params` (rows for REST, or one count row when `is_count`)."""

    object: ObjectSpec
    is_count: bool
    sql: str
    params: list[Any]
    shape: RecordShape | None  # REST record layout (None for COUNT())
    columns: list[ValueColumn | CompoundColumn]  # selected items in SELECT order
    count_sql: str  # one row: how many rows `sql` returns (totalSize)
    bulk_sql: str | None  # same rows, every column already Salesforce CSV text, named by its SOQL path
    limit: int | None
    offset: int | None
    query_text: str

    @property
    def headers(self) -> list[str]:
        return [c.path for c in self.columns]


# -- joins -----------------------------------------------------------------------------------------------

@dataclass
class _Level:
    """A record level reachable by a relationship chain: root (chain ()), a parent, or a polymorphic parent."""

    chain: tuple[str, ...]  # canonical relationship names
    obj: ObjectSpec | None  # None when polymorphic
    alias: str | None = None
    targets: list[tuple[ObjectSpec, str]] = field(default_factory=list)  # polymorphic (object, alias)
    join_sql: list[str] = field(default_factory=list)

    @property
    def polymorphic(self) -> bool:
        return self.obj is None

    def id_expr(self) -> str:
        if not self.polymorphic:
            return f"{self.alias}.\"Id\""
        if not self.targets:
            return "CAST(NULL AS VARCHAR)"
        return "COALESCE(" + ", ".join(f"{a}.\"Id\"" for _, a in self.targets) + ")" \
            if len(self.targets) > 1 else f"{self.targets[0][1]}.\"Id\""

    def type_expr(self) -> str:
        if not self.polymorphic:
            return _sql_str(self.obj.name)
        if not self.targets:
            return "CAST(NULL AS VARCHAR)"
        whens = " ".join(f"WHEN {a}.\"Id\" IS NOT NULL THEN {_sql_str(o.name)}" for o, a in self.targets)
        return f"(CASE {whens} END)"


@dataclass
class _Resolved:
    """A path resolved to a field on a level: `expr` (scalar) or `parts` (compound)."""

    level: _Level
    name: str  # canonical field name (JSON key)
    ftype: str
    spec: FieldSpec | None
    expr: str | None
    parts: list[tuple[str, str, str]] | None  # (json key, sql expr, type) for compounds
    path_text: str

    @property
    def is_compound(self) -> bool:
        return self.parts is not None


class _Resolver:
    """Resolves field paths against the catalog, creating LEFT JOINs for each relationship chain once."""

    def __init__(self, catalog: Catalog, root: ObjectSpec, alias: str | None, text: str, prefix: str = "t",
                 today: dt.date | None = None):
        self.catalog = catalog
        self.today = today or dt.date.today()  # the org's today, for formulas computed when read
        self.root = root
        self.alias = alias
        self.text = text
        self.prefix = prefix  # SQL table aliases are prefix0, prefix1 ...: sub-selects use their own
        self.levels: dict[tuple[str, ...], _Level] = {(): _Level((), root, f"{prefix}0")}
        self._n = 0

    @property
    def root_alias(self) -> str:
        return f"{self.prefix}0"

    def _new_alias(self) -> str:
        self._n += 1
        return f"{self.prefix}{self._n}"

    def joins(self) -> str:
        return " ".join(j for lvl in self.levels.values() for j in lvl.join_sql)

    def _err_rel(self, pos: Pos, rel: str) -> SoqlError:
        return invalid_relationship(self.text, pos.line, pos.column, rel)

    def resolve(self, path: Path) -> _Resolved:
        parts = list(path.parts)
        pos = path.pos
        if len(parts) > 1:
            first = parts[0].lower()
            is_rel = self.catalog.relationship(self.root, parts[0]) is not None
            if not is_rel and (first == self.root.name.lower() or (self.alias and first == self.alias.lower())):
                parts = parts[1:]
        level = self.levels[()]
        for rel in parts[:-1]:
            level = self._step(level, rel, pos)
        return self._field(level, parts[-1], pos)

    def _step(self, level: _Level, rel: str, pos: Pos) -> _Level:
        if level.polymorphic:
            raise self._err_rel(pos, rel)
        ref = self.catalog.relationship(level.obj, rel)
        if ref is None:
            raise self._err_rel(pos, rel)
        chain = level.chain + (ref.relationship_name,)
        key = tuple(c.lower() for c in chain)
        if key in self.levels:
            return self.levels[key]
        fk = f"{level.alias}.{_q(ref.name)}"
        if ref.polymorphic:
            new = _Level(chain, None)
            for target_name in ref.reference_to:
                target = self.catalog.object(target_name)
                if target is None:
                    continue
                a = self._new_alias()
                new.targets.append((target, a))
                new.join_sql.append(f"LEFT JOIN {target.table} AS {a} ON {a}.\"Id\" = {fk}")
        else:
            target = self.catalog.object(ref.reference_to[0]) if ref.reference_to else None
            if target is None:
                raise self._err_rel(pos, rel)
            a = self._new_alias()
            new = _Level(chain, target, a, join_sql=[f"LEFT JOIN {target.table} AS {a} ON {a}.\"Id\" = {fk}"])
        self.levels[key] = new
        return new

    def _path_text(self, level: _Level, name: str) -> str:
        return ".".join(level.chain + (name,))

    def _field(self, level: _Level, name: str, pos: Pos) -> _Resolved:
        if level.polymorphic:
            return self._name_entity_field(level, name, pos)
        obj = level.obj
        f = self.catalog.readable_field(obj, name)
        if f is None:
            raise invalid_field(self.text, pos.line, pos.column, name, obj.name)
        text = self._path_text(level, f.name)
        if f.is_compound:
            parts = []
            for c in obj.compound_components(f):
                if not self.catalog.is_readable(obj, c):
                    continue
                parts.append((_compound_key(f.name, c.name), f"{level.alias}.{_q(c.name)}", c.type))
            parts.sort(key=lambda p: p[0])
            return _Resolved(level, f.name, f.type, f, None, parts, text)
        if f.query_formula is not None:  # computed when read, like every Salesforce formula
            expr = f"CAST(({f.query_formula(level.alias, self.today)}) AS {f.duckdb_type})"
            return _Resolved(level, f.name, f.type, f, expr, None, text)
        return _Resolved(level, f.name, f.type, f, f"{level.alias}.{_q(f.name)}", None, text)

    def _name_entity_field(self, level: _Level, name: str, pos: Pos) -> _Resolved:
        canon = next((k for k in _NAME_ENTITY_FIELDS if k.lower() == name.lower()), None)
        if canon is None:
            raise invalid_field(self.text, pos.line, pos.column, name, "Name")
        text = self._path_text(level, canon)
        if canon == "Id":
            return _Resolved(level, canon, "id", None, level.id_expr(), None, text)
        if canon == "Type":
            return _Resolved(level, canon, "string", None, level.type_expr(), None, text)
        exprs: list[str] = []
        ftype = _NAME_ENTITY_FIELDS[canon]
        for target, a in level.targets:
            if canon == "Name":
                f = next((x for x in target.fields.values() if x.raw.get("nameField")), None)
                f = f if f is not None and self.catalog.is_readable(target, f) else None
            else:
                f = self.catalog.readable_field(target, canon)
            if f is not None and not f.is_compound:
                exprs.append(f"{a}.{_q(f.name)}")
                if canon != "Name":
                    ftype = f.type
        if not exprs:
            expr = "NULL"
        elif len(exprs) == 1:
            expr = exprs[0]
        else:
            expr = "COALESCE(" + ", ".join(exprs) + ")"
        return _Resolved(level, canon, ftype, None, expr, None, text)


def _compound_key(compound: str, component: str) -> str:
    """JSON key of an address component: BillingPostalCode -> postalCode."""
    for suffix in _COMPOUND_KEYS:
        if component.lower().endswith(suffix.lower()) or component.lower().endswith(suffix.lower() + "__s"):
            return suffix[0].lower() + suffix[1:]
    return component[0].lower() + component[1:]


# -- literals and relative dates -------------------------------------------------------------------------

def _category(ftype: str) -> str:
    if ftype in ("id", "reference"):
        return "id"
    if ftype in TEXT_TYPES:
        return "text"
    if ftype in formats.NUMBER_TYPES or ftype in formats.INT_TYPES:
        return "number"
    return ftype  # boolean, date, datetime, time


_SOAP_TYPE = {"text": "string", "id": "id", "boolean": "boolean", "date": "date", "datetime": "dateTime",
              "time": "time"}
_ACCEPTS = {
    "text": {"string"}, "id": {"string"}, "boolean": {"boolean"}, "number": {"number"},
    "date": {"date", "reldate"}, "datetime": {"datetime", "reldate"}, "time": set(),
}
_ID_RE = re.compile(r"[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?")


def _add_months(d: dt.date, n: int) -> dt.date:
    y, m = divmod(d.month - 1 + n, 12)
    return dt.date(d.year + y, m + 1, 1)


def relative_range(name: str, n: int | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """[start, end) dates of a SOQL relative date literal, weeks starting on Sunday."""
    day = dt.timedelta(days=1)
    week_start = today - dt.timedelta(days=(today.weekday() + 1) % 7)
    month_start = today.replace(day=1)
    year_start = dt.date(today.year, 1, 1)
    k = n or 0
    table = {
        "TODAY": (today, today + day),
        "YESTERDAY": (today - day, today),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_N_DAYS": (today - k * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (k + 1) * day),
        "N_DAYS_AGO": (today - k * day, today - (k - 1) * day),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "THIS_WEEK": (week_start, week_start + 7 * day),
        "LAST_WEEK": (week_start - 7 * day, week_start),
        "NEXT_WEEK": (week_start + 7 * day, week_start + 14 * day),
        "LAST_N_WEEKS": (week_start - 7 * k * day, week_start),
        "NEXT_N_WEEKS": (week_start + 7 * day, week_start + 7 * (k + 1) * day),
        "THIS_MONTH": (month_start, _add_months(month_start, 1)),
        "LAST_MONTH": (_add_months(month_start, -1), month_start),
        "NEXT_MONTH": (_add_months(month_start, 1), _add_months(month_start, 2)),
        "LAST_N_MONTHS": (_add_months(month_start, -k), month_start),
        "NEXT_N_MONTHS": (_add_months(month_start, 1), _add_months(month_start, k + 1)),
        "THIS_YEAR": (year_start, dt.date(today.year + 1, 1, 1)),
        "LAST_YEAR": (dt.date(today.year - 1, 1, 1), year_start),
        "NEXT_YEAR": (dt.date(today.year + 1, 1, 1), dt.date(today.year + 2, 1, 1)),
    }
    return table[name]


# -- semi-joins and anti-joins ------------------------------------------------------------------------------

MAX_SEMI_JOINS = 2
# Objects Salesforce refuses as the FROM of a semi-join sub-select (those of them this org serves matter).
_NO_SEMI_JOIN_INNER = {"activityhistory", "attachment", "event", "note", "openactivity", "task"}
_SEMI_ID_TYPES = ("id", "reference")


def _semi_joins(cond) -> list[SemiJoin]:
    """Every semi-/anti-join of a condition tree, in query order (nested sub-selects not included)."""
    if isinstance(cond, SemiJoin):
        return [cond]
    if isinstance(cond, BoolOp):
        return [s for c in cond.conds for s in _semi_joins(c)]
    if isinstance(cond, Not):
        return _semi_joins(cond.cond)
    return []


def check_semi_join_placement(cond, text: str) -> None:
    """Salesforce's structural rules, checked before anything is resolved.

    A sub-select may only be ANDed into the top-level WHERE: under OR it is refused with Salesforce's
    "not allowed with the 'OR' operator", under NOT (which would silently flip it) with the "top level WHERE
    expressions" message; a sub-select's own WHERE may not hold another one; at most two per query.
    """
    def walk(c, under_or: bool, under_not: bool) -> None:
        if isinstance(c, SemiJoin):
            pos = c.query.pos
            if under_or:
                raise positioned("MALFORMED_QUERY", text, pos.line, pos.column,
                                 "Semi join sub-selects are not allowed with the 'OR' operator")
            if under_not:
                raise positioned("MALFORMED_QUERY", text, pos.line, pos.column,
                                 "Semi join sub-selects are only allowed at the top level WHERE expressions "
                                 "and not in nested WHERE expressions.")
            nested = _semi_joins(c.query.where) if c.query.where is not None else []
            if nested:
                npos = nested[0].query.pos
                raise positioned("MALFORMED_QUERY", text, npos.line, npos.column,
                                 "Nesting of semi join sub-selects is not supported")
        elif isinstance(c, BoolOp):
            for x in c.conds:
                walk(x, under_or or c.op == "OR", under_not)
        elif isinstance(c, Not):
            walk(c.cond, under_or, True)

    walk(cond, False, False)
    found = _semi_joins(cond)
    if len(found) > MAX_SEMI_JOINS:
        pos = found[MAX_SEMI_JOINS].query.pos
        raise positioned("MALFORMED_QUERY", text, pos.line, pos.column,
                         f"Maximum {MAX_SEMI_JOINS} semi join sub-selects are allowed")


def _references(res: _Resolved, obj: ObjectSpec) -> set[str]:
    """Object names an Id (the object itself) or reference field (its targets) can point at, lower-cased."""
    if res.ftype == "id":
        return {obj.name.lower()}
    return {t.lower() for t in (res.spec.reference_to if res.spec is not None else [])}


def _deleted_filters(obj: ObjectSpec, alias: str) -> list[str]:
    """What hides recycle-bin (and, for activities, archived) rows from a query without ALL ROWS."""
    filters = []
    if obj.field_named("IsDeleted") is not None:
        filters.append(f'{alias}."IsDeleted" IS NOT TRUE')
    if obj.name in ("Task", "Event") and obj.field_named("IsArchived") is not None:
        filters.append(f'{alias}."IsArchived" IS NOT TRUE')
    return filters


class _WhereCompiler:
    """Turns a condition tree into SQL whose every atom is two-valued (never NULL), like SOQL."""

    def __init__(self, resolver: _Resolver, text: str, today: dt.date):
        self.r = resolver
        self.text = text
        self.today = today
        self.params: list[Any] = []
        self._subselects = 0

    def compile(self, cond) -> str:
        if isinstance(cond, BoolOp):
            return "(" + f" {cond.op} ".join(self.compile(c) for c in cond.conds) + ")"
        if isinstance(cond, Not):
            return f"(NOT {self.compile(cond.cond)})"
        if isinstance(cond, InList):
            return self._in(cond)
        if isinstance(cond, SemiJoin):
            return self._semi_join(cond)
        return self._compare(cond)

    def _semi_join(self, node: SemiJoin) -> str:
        """`e IN (SELECT ref ...)`, or for NOT IN `e IS NULL OR e NOT IN (...)`: SOQL's anti-join keeps rows
        whose field is null, and the sub-select drops null refs so SQL's NOT IN never turns NULL."""
        text = self.text
        res, _ = self._target(node.path)
        pos = node.path.pos
        if res.level.chain:
            raise positioned("INVALID_FIELD", text, pos.line, pos.column,
                             f"Semi join sub-selects can only filter a field of the queried object: "
                             f"'{node.path.text}' is a relationship path")
        if res.ftype not in _SEMI_ID_TYPES:
            raise positioned("INVALID_FIELD", text, pos.line, pos.column,
                             f"Semi join sub-selects can only filter an Id or reference field: "
                             f"'{res.name}' is of type {res.ftype}")
        sub: SubQuery = node.query
        catalog = self.r.catalog
        inner = catalog.object(sub.object_name)
        opos = sub.object_pos
        if inner is None:
            raise invalid_type(text, opos.line, opos.column, sub.object_name)
        if inner.name.lower() == self.r.root.name.lower():
            raise positioned("MALFORMED_QUERY", text, opos.line, opos.column,
                             "The inner and outer selects should not be on the same object type")
        if inner.name.lower() in _NO_SEMI_JOIN_INNER or inner.name.lower().endswith("tag"):
            raise positioned("MALFORMED_QUERY", text, opos.line, opos.column,
                             f"Entity '{inner.name}' is not supported for semi join inner selects")
        if len(sub.select) != 1 or isinstance(sub.select[0], CountAll):
            bad = sub.select[1] if len(sub.select) > 1 else sub.select[0]
            raise positioned("INVALID_FIELD", text, bad.pos.line, bad.pos.column,
                             "Semi join sub-selects must select exactly one Id or reference field")
        self._subselects += 1
        ir = _Resolver(catalog, inner, sub.alias, text, prefix=f"{self.r.prefix}s{self._subselects}_",
                       today=self.r.today)
        ires = ir.resolve(sub.select[0])
        spos = sub.select[0].pos
        if ires.level.chain:
            raise positioned("INVALID_FIELD", text, spos.line, spos.column,
                             f"The selected field of a semi join sub-select can't traverse relationships: "
                             f"'{sub.select[0].text}'")
        if ires.ftype not in _SEMI_ID_TYPES or ires.expr is None:
            raise positioned("INVALID_FIELD", text, spos.line, spos.column,
                             f"The selected field of a semi join sub-select must be an Id or reference field: "
                             f"'{ires.name}' is of type {ires.ftype}")
        outer_refs, inner_refs = _references(res, self.r.root), _references(ires, inner)
        if outer_refs and inner_refs and not outer_refs & inner_refs:
            raise positioned("INVALID_FIELD", text, spos.line, spos.column,
                             f"The selected field '{ires.name}' of {inner.name} does not reference the same "
                             f"object type as '{res.name}'")
        # Deleted rows: a deliberate simplification. The sub-select always hides the recycle bin, like a plain
        # query, even when the outer query is a queryAll (Salesforce's queryAll would let the sub-select see
        # deleted rows too). So queryAll answers "which rows, live or deleted, relate to a live X".
        iwc = _WhereCompiler(ir, text, self.today)
        filters = [f"{ires.expr} IS NOT NULL", *_deleted_filters(inner, ir.root_alias)]
        if sub.where is not None:
            filters.append(iwc.compile(sub.where))
        select = (f"SELECT {ires.expr} FROM {inner.table} AS {ir.root_alias} {ir.joins()}".rstrip()
                  + " WHERE " + " AND ".join(filters))
        self.params.extend(iwc.params)
        e = res.expr
        if node.negated:
            return f"({e} IS NULL OR {e} NOT IN ({select}))"
        return f"COALESCE({e} IN ({select}), FALSE)"

    # -- helpers
    def _target(self, path: Path) -> tuple[_Resolved, str]:
        res = self.r.resolve(path)
        if res.is_compound or (res.spec is not None and not res.spec.filterable):
            raise positioned("INVALID_FIELD", self.text, path.pos.line, path.pos.column,
                             f"field '{res.name}' can not be filtered in query call")
        return res, _category(res.ftype)

    def _check(self, res: _Resolved, cat: str, lit: Literal) -> None:
        if lit.kind == "null" or lit.kind in _ACCEPTS.get(cat, set()):
            if cat == "id" and lit.kind == "string" and lit.value and not _ID_RE.fullmatch(lit.value):
                raise positioned("INVALID_QUERY_FILTER_OPERATOR", self.text, lit.pos.line, lit.pos.column,
                                 f"invalid ID field: {lit.value}")
            return
        soap = _SOAP_TYPE.get(cat) or ("int" if res.ftype in ("int", "long") else "double")
        quoted = "should be enclosed in quotes" if cat in ("text", "id") else "should not be enclosed in quotes"
        raise positioned("INVALID_FIELD", self.text, lit.pos.line, lit.pos.column,
                         f"value of filter criterion for field '{res.name}' must be of type {soap} and {quoted}")

    @staticmethod
    def _value(cat: str, lit: Literal) -> Any:
        v = lit.value
        if lit.kind == "number" and isinstance(v, int) and not (-(2 ** 63) <= v < 2 ** 63):
            v = float(v)
        if cat == "datetime" and isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            v = dt.datetime(v.year, v.month, v.day)
        return v

    def _param(self, cat: str, lit: Literal) -> Any:
        self.params.append(self._value(cat, lit))
        return "?"

    def _range(self, cat: str, lit: Literal) -> tuple[Any, Any]:
        name, n = lit.value
        lo, hi = relative_range(name, n, self.today)
        if cat == "datetime":
            lo, hi = dt.datetime(lo.year, lo.month, lo.day), dt.datetime(hi.year, hi.month, hi.day)
        return lo, hi

    def _eq(self, expr: str, cat: str, lit: Literal) -> str:
        """Null-free equality with one non-null literal."""
        if lit.kind == "reldate":
            lo, hi = self._range(cat, lit)
            self.params += [lo, hi]
            return f"COALESCE({expr} >= ? AND {expr} < ?, FALSE)"
        if cat == "id" and isinstance(lit.value, str) and len(lit.value) == 15:
            return f"COALESCE(left({expr}, 15) = {self._param(cat, lit)}, FALSE)"
        if cat in ("text", "id"):
            return f"COALESCE(lower({expr}) = lower({self._param(cat, lit)}), FALSE)"
        return f"COALESCE({expr} = {self._param(cat, lit)}, FALSE)"

    def _compare(self, cmp: Compare) -> str:
        res, cat = self._target(cmp.path)
        lit = cmp.value
        e = res.expr
        if cmp.op == "like":
            if cat not in ("text", "id") or lit.kind not in ("string", "null"):
                if cat not in ("text", "id"):
                    raise positioned("INVALID_FIELD", self.text, cmp.op_pos.line, cmp.op_pos.column,
                                     f"invalid operator on field '{res.name}': LIKE")
                self._check(res, cat, lit)
            if lit.kind == "null":
                return "FALSE"
            self.params.append(lit.like_pattern)
            return f"COALESCE({e} ILIKE ? ESCAPE '\\', FALSE)"
        self._check(res, cat, lit)
        if cat == "boolean" and cmp.op not in ("=", "!="):
            raise positioned("INVALID_QUERY_FILTER_OPERATOR", self.text, cmp.op_pos.line, cmp.op_pos.column,
                             "invalid operator on boolean field")
        if lit.kind == "null":
            return {"=": f"({e} IS NULL)", "!=": f"({e} IS NOT NULL)"}.get(cmp.op, "FALSE")
        if cmp.op == "=":
            return self._eq(e, cat, lit)
        if cmp.op == "!=":
            return f"(NOT {self._eq(e, cat, lit)})"
        if lit.kind == "reldate":
            lo, hi = self._range(cat, lit)
            bound, op = {"<": (lo, "<"), "<=": (hi, "<"), ">": (hi, ">="), ">=": (lo, ">=")}[cmp.op]
            self.params.append(bound)
            return f"COALESCE({e} {op} ?, FALSE)"
        if cat == "text":
            return f"COALESCE(lower({e}) {cmp.op} lower({self._param(cat, lit)}), FALSE)"
        return f"COALESCE({e} {cmp.op} {self._param(cat, lit)}, FALSE)"

    def _in(self, node: InList) -> str:
        res, cat = self._target(node.path)
        e = res.expr
        alts: list[str] = []
        plain: list[Any] = []
        for lit in node.values:
            self._check(res, cat, lit)
            if lit.kind == "null":
                alts.append(f"({e} IS NULL)")
            elif lit.kind == "reldate" or (cat == "id" and len(lit.value) == 15):
                alts.append(self._eq(e, cat, lit))
            else:
                plain.append(self._value(cat, lit))
        if plain:
            # Placed last so its parameters, appended now, follow those the alternatives above appended.
            lhs = f"lower({e})" if cat in ("text", "id") else e
            marks = ", ".join("lower(?)" if cat in ("text", "id") else "?" for _ in plain)
            alts.append(f"COALESCE({lhs} IN ({marks}), FALSE)")
            self.params.extend(plain)
        expr = "(" + " OR ".join(alts) + ")"
        return f"(NOT {expr})" if node.negated else expr


# -- the entry point ----------------------------------------------------------------------------------------

def compile_query(query_text: str, catalog: Catalog, *, include_deleted: bool, now: dt.datetime,
                  for_bulk: bool = False) -> CompiledQuery:
    """Compile SOQL for the local org. Raises SoqlError (never anything else) for any query it refuses."""
    try:
        return _compile(query_text, catalog, include_deleted=include_deleted, now=now, for_bulk=for_bulk)
    except SoqlError:
        raise
    except RecursionError:
        raise SoqlError("MALFORMED_QUERY", "Query is too complicated") from None
    except Exception as e:  # a bug must still answer like Salesforce, not with a traceback
        raise SoqlError("MALFORMED_QUERY", f"Unable to compile query ({type(e).__name__})") from e


def _api_error(message: str) -> SoqlError:
    return SoqlError("API_ERROR", message)


def _compile(text: str, catalog: Catalog, *, include_deleted: bool, now: dt.datetime,
             for_bulk: bool) -> CompiledQuery:
    q: Query = parse(text)
    obj = catalog.object(q.object_name)
    if obj is None:
        raise invalid_type(text, q.object_pos.line, q.object_pos.column, q.object_name)
    if now.tzinfo is not None:
        now = now.astimezone(dt.UTC).replace(tzinfo=None)
    resolver = _Resolver(catalog, obj, q.alias, text, today=now.date())

    counts = [s for s in q.select if isinstance(s, CountAll)]
    is_count = bool(counts)
    if is_count and len(q.select) > 1:
        bad = counts[0] if q.select[0] is not counts[0] else q.select[1]
        pos = bad.pos
        raise positioned("MALFORMED_QUERY", text, pos.line, pos.column,
                         "unexpected token: '" + ("COUNT" if isinstance(bad, CountAll) else bad.text) + "'")
    if q.offset is not None and q.offset > MAX_OFFSET:
        raise positioned("NUMBER_OUTSIDE_VALID_RANGE", text, q.offset_pos.line, q.offset_pos.column,
                         f"Maximum SOQL offset allowed is {MAX_OFFSET}")
    if for_bulk:
        if is_count:
            raise _api_error("Implementation restriction: COUNT() is not supported in Bulk Query")
        if q.offset is not None:
            raise _api_error("Implementation restriction: OFFSET is not supported in Bulk Query")

    # SELECT
    resolved: list[_Resolved] = []
    seen: set[str] = set()
    for item in q.select:
        if isinstance(item, CountAll):
            continue
        res = resolver.resolve(item)
        if res.path_text.lower() in seen:
            raise positioned("MALFORMED_QUERY", text, item.pos.line, item.pos.column,
                             f"duplicate field selected: {res.path_text}")
        seen.add(res.path_text.lower())
        if res.is_compound and for_bulk:
            raise _api_error("Selecting compound data not supported in Bulk Query")
        resolved.append(res)

    # WHERE
    wc = _WhereCompiler(resolver, text, now.date())
    filters: list[str] = []
    if not include_deleted:
        filters.extend(_deleted_filters(obj, "t0"))
    if q.where is not None:
        check_semi_join_placement(q.where, text)
        filters.append(wc.compile(q.where))

    # ORDER BY
    order_sql: list[str] = []
    for item in q.order_by:
        res = resolver.resolve(item.path)
        if res.is_compound or (res.spec is not None and not res.spec.sortable):
            raise positioned("INVALID_FIELD", text, item.path.pos.line, item.path.pos.column,
                             f"field '{res.name}' can not be sorted in a query call")
        key = f"lower({res.expr})" if _category(res.ftype) == "text" else res.expr
        order_sql.append(f"{key} {'DESC' if item.descending else 'ASC'} "
                         f"NULLS {'FIRST' if item.nulls_first else 'LAST'}")
    base = f"FROM {obj.table} AS t0 {resolver.joins()}".rstrip()
    where_sql = f" WHERE {' AND '.join(filters)}" if filters else ""
    window = ""
    if q.limit is not None:
        window += f" LIMIT {int(q.limit)}"
    if q.offset is not None:
        window += f" OFFSET {int(q.offset)}"
    # REST pages must be stable, so Id breaks ties. Bulk results have no defined order in Salesforce and
    # sorting ~70 wide columns would triple the extract time, so Bulk sorts only when asked (or windowed).
    tail = " ORDER BY " + ", ".join(order_sql + ['t0."Id" ASC']) + window
    bulk_tail = tail if (order_sql or window) else ""
    count_sql = f"SELECT count(*) FROM (SELECT 1 {base}{where_sql}{window}) AS c"

    if is_count:
        return CompiledQuery(obj, True, count_sql, wc.params, None, [], count_sql, None,
                             q.limit, q.offset, text)

    exprs: list[str] = []

    def col(expr: str) -> int:
        exprs.append(expr)
        return len(exprs) - 1

    shape = RecordShape(obj.name, col('t0."Id"'))
    shapes: dict[tuple[str, ...], RecordShape] = {(): shape}
    columns: list[ValueColumn | CompoundColumn] = []
    bulk_exprs: list[str] = []
    for res in resolved:
        parent = shape
        for i in range(1, len(res.level.chain) + 1):
            key = tuple(c.lower() for c in res.level.chain[:i])
            if key not in shapes:
                lvl = resolver.levels[key]
                child = RecordShape(None if lvl.polymorphic else lvl.obj.name, col(lvl.id_expr()),
                                    col(lvl.type_expr()) if lvl.polymorphic else None)
                parent.items.append((lvl.chain[-1], child))
                shapes[key] = child
            parent = shapes[key]
        if res.is_compound:
            parts = tuple((k, col(e), t) for k, e, t in res.parts)
            c: ValueColumn | CompoundColumn = CompoundColumn(res.name, res.ftype, parts, res.path_text)
        else:
            c = ValueColumn(res.name, res.ftype, col(res.expr), res.path_text)
            column_type = res.spec.duckdb_type if res.spec is not None else None
            bulk_exprs.append(f"{formats.sql_text(res.ftype, res.expr, column_type)} AS {_q(res.path_text)}")
        parent.items.append((res.name, c))
        columns.append(c)

    sql = f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(exprs))} {base}{where_sql}{tail}"
    bulk_sql = None
    if not any(isinstance(c, CompoundColumn) for c in columns):
        bulk_sql = f"SELECT {', '.join(bulk_exprs)} {base}{where_sql}{bulk_tail}"
    return CompiledQuery(obj, False, sql, wc.params, shape, columns, count_sql, bulk_sql, q.limit, q.offset,
                         text)
