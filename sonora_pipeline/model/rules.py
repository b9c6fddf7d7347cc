"""The settings' rules against the mirror: checks that need the mirror's columns, and conditions as SQL.

- `validate_against_schema` checks every Salesforce field the settings name (conditions, mapping sources,
  the renewal/health fields) exists in the mirror and that every value fits its column's type; the
  problems name the settings file's line when the settings came from a file.
- `condition_sql` turns conditions into a DuckDB boolean expression over the mirror: identifiers come only
  from validated settings (double-quoted), values travel only as `?` parameters, so no value can change the
  SQL's meaning. Every condition is two-valued (never NULL), with SOQL's semantics for nulls: `!=` and
  `not_in` match empty fields, the other comparisons never do. Text compares as SOQL compares it:
  case-insensitively (`=`, `!=`, `<`..., `in`, `not_in`, `like`, and record types and types of
  `accounts.include`), so a rule selects the same accounts in the model as in Salesforce.

`like` patterns: `%` matches any text, `_` one character, and a backslash makes the next character literal
(`\\%` is a percent sign), as in SOQL.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sonora_pipeline.mirror.names import RAW_SCHEMA, object_for_table, quote_identifier
from sonora_pipeline.mirror.tables import column_kind
from sonora_pipeline.settings import (
    LIST_OPERATORS,
    NULL_OPERATORS,
    STANDARD_OBJECTS,
    TODAY,
    Condition,
    Settings,
    SettingsError,
    locate,
    sort_problems,
)

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_COMPARE = ("=", "!=", "<", "<=", ">", ">=")
_KIND_WORDS = {"text": "a text field", "number": "a number field", "boolean": "a true/false field",
               "date": "a date field", "datetime": "a date/time field", "other": "a field"}
_FIXES = {
    "text": "write text (in quotes when it looks like a number, a date or true/false, e.g. value: \"42\")",
    "number": "write a number without quotes (e.g. value: 100000)",
    "boolean": "write true or false",
    "date": "write a date as YYYY-MM-DD without quotes (e.g. value: 2025-01-31), or today",
    "datetime": "write a date as YYYY-MM-DD without quotes (e.g. value: 2025-01-31), or today",
}


# -- the mirror's columns -----------------------------------------------------------------------------------

def columns_from_mirror(conn: Any) -> dict[str, dict[str, str]]:
    """{Salesforce object name: {column name: DuckDB type}} of the mirror (schema `salesforce` of the
    connection's current database). Tables: account -> Account, ..., case_comment -> CaseComment; other
    tables (custom objects) under their table name; internal tables (`_sync_state`, ...) are left out."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = ? AND database_name = current_database() "
        "ORDER BY table_name, column_index", [RAW_SCHEMA]
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        if table.startswith("_"):
            continue
        out.setdefault(object_for_table(table, STANDARD_OBJECTS) or table, {})[column] = data_type
    return out


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, date):
        return "date"
    if value == TODAY:
        return "today"
    return "text"


def _fits(kind: str, value: Any) -> bool:
    vk = _value_kind(value)
    if kind in ("date", "datetime"):
        return vk in ("date", "today")
    return vk == kind


def _describe_value(value: Any) -> str:
    vk = _value_kind(value)
    if vk == "boolean":
        shown = "true" if value else "false"
    elif vk == "text":
        shown = repr(value)
    else:
        shown = str(value)
    return {"boolean": f"{shown} (true/false)", "number": f"{shown} (a number)", "date": f"{shown} (a date)",
            "text": f"{shown} (text)", "today": "today"}[vk]


# -- validation against the mirror ---------------------------------------------------------------------------

class _Check:
    def __init__(self, settings: Settings, columns: Mapping[str, Mapping[str, str]]):
        self.settings = settings
        self.source = getattr(settings, "source", None)
        # case-insensitive lookups (Salesforce API names and DuckDB identifiers both are)
        self.columns = {obj: {c.lower(): (c, t) for c, t in cols.items()} for obj, cols in columns.items()}
        self.problems: list[str] = []

    def add(self, path: tuple, message: str, *, on_key: bool = False) -> None:
        self.problems.append(f"{locate(self.source, path, on_key=on_key)}: {message}")

    def column(self, obj: str, name: str, path: tuple, *, on_key: bool = False) -> tuple[str, str] | None:
        """(column, DuckDB type) of obj.name, or None after reporting it missing. Objects absent from the
        column map (no mirror table yet) are not checked: the caller reports missing tables."""
        cols = self.columns.get(obj)
        if cols is None:
            return None
        found = cols.get(name.lower())
        if found is None:
            close = difflib.get_close_matches(name.lower(), list(cols), n=1, cutoff=0.75)
            hint = f" (did you mean '{cols[close[0]][0]}'?)" if close else ""
            self.add(path, f"{obj}.{name} is not in the mirror: it does not exist, or the run-as user cannot "
                           f"read it (Setup > Object Manager > {obj} > Fields & Relationships > {name} > Set "
                           f"Field-Level Security){hint}; fix the name, or grant read access and sync {obj} again",
                     on_key=on_key)
        return found

    def conditions(self, obj: str, conditions: Sequence[Condition], path: tuple) -> None:
        for i, cond in enumerate(conditions):
            here = (*path, i)
            found = self.column(obj, cond.field, (*here, "field"))
            if found is None:
                continue
            column, ctype = found
            kind = column_kind(ctype)
            what = f"{obj}.{column} is {_KIND_WORDS[kind]} ({ctype})"
            if cond.op in NULL_OPERATORS:
                continue
            if kind == "other":
                self.add((*here, "field"), f"{what}; conditions work on text, number, true/false and date fields "
                                           "only: choose another field")
                continue
            if cond.op == "like" and kind != "text":
                self.add((*here, "op"), f"'like' only works on text fields, and {what}; use = != < <= > >= in or "
                                        "not_in")
                continue
            if kind == "boolean" and cond.op not in ("=", "!="):
                self.add((*here, "op"), f"{what}: use = or != (with value true or false), or is_null")
                continue
            values = cond.value if isinstance(cond.value, list) else [cond.value]
            for j, value in enumerate(values):
                vpath = (*here, "value", j) if isinstance(cond.value, list) else (*here, "value")
                if _fits(kind, value):
                    continue
                if value == TODAY:
                    self.add(vpath, f"'today' only works on date fields, and {what}; {_FIXES[kind]}")
                elif isinstance(value, bool) and kind == "text":
                    self.add(vpath, f"{_describe_value(value)} does not fit: {what}; YAML reads yes/no/on/off/"
                                    "true/false unquoted as true/false: quote the text (e.g. value: \"no\")")
                else:
                    self.add(vpath, f"{_describe_value(value)} does not fit: {what}; {_FIXES[kind]}")

    def mapping(self, obj: str, mapping: Mapping[str, str], path: tuple) -> None:
        for source in mapping:
            self.column(obj, source, (*path, source), on_key=True)

    def typed_field(self, obj: str, name: str | None, path: tuple, kinds: tuple[str, ...], needs: str) -> None:
        if not name:
            return
        found = self.column(obj, name, path)
        if found is not None and column_kind(found[1]) not in kinds:
            kind = column_kind(found[1])
            self.add(path, f"{obj}.{found[0]} is {_KIND_WORDS[kind]} ({found[1]}), but {needs}; set it to such a "
                           "field's API name, or null")

    def needed(self, obj: str, names: Iterable[str], path: tuple, why: str) -> None:
        cols = self.columns.get(obj)
        if cols is None:
            return
        for name in names:
            if name.lower() not in cols:
                self.add(path, f"{why} needs {obj}.{name}, which is not in the mirror: the run-as user cannot read "
                               f"it (Setup > Object Manager > {obj} > Fields & Relationships > {name} > Set "
                               f"Field-Level Security); grant read access and sync {obj} again")


def validate_against_schema(settings: Settings, columns: dict[str, dict[str, str]]) -> None:
    """Check the settings against the mirror's columns ({"Account": {"Id": "VARCHAR", ...}, ...}, e.g. from
    `columns_from_mirror`). Raises SettingsError listing every problem (with the file's line numbers when the
    settings came from a file). Objects missing from `columns` are not checked."""
    check = _Check(settings, columns)
    include = settings.accounts.include
    if include.record_types:
        check.needed("Account", ["RecordTypeId"], ("accounts", "include", "record_types"),
                     "accounts.include.record_types")
    if include.types:
        check.needed("Account", ["Type"], ("accounts", "include", "types"), "accounts.include.types")
    check.conditions("Account", include.conditions, ("accounts", "include", "conditions"))
    check.mapping("Account", settings.mapping.account, ("mapping", "account"))
    check.mapping("Contact", settings.mapping.contact, ("mapping", "contact"))
    check.conditions("Account", settings.contracts.account_conditions, ("contracts", "account_conditions"))
    if settings.contracts.won_opportunity_within_days is not None:
        check.needed("Opportunity", ["AccountId", "IsWon", "CloseDate"],
                     ("contracts", "won_opportunity_within_days"), "contracts.won_opportunity_within_days")
    check.typed_field("Account", settings.renewals.contract_end_field, ("renewals", "contract_end_field"),
                      ("date", "datetime"), "renewals.contract_end_field needs a date field")
    check.typed_field("Account", settings.renewals.arr_field, ("renewals", "arr_field"), ("number",),
                      "renewals.arr_field needs a number field")
    check.typed_field("Contact", settings.health.nps_field, ("health", "nps_field"), ("number",),
                      "health.nps_field needs a number field")
    if check.problems:
        n = len(check.problems)
        header = None
        if n > 1:
            where = f"Settings file {check.source.path}" if check.source is not None else "The settings"
            header = f"{where} does not fit the mirror ({n} problems):"
        raise SettingsError(*sort_problems(check.problems), header=header)


# -- SQL -------------------------------------------------------------------------------------------------------

def _column_sql(alias: str, name: str) -> str:
    if not _FIELD.match(name):  # validated settings never get here; a guard for hand-built conditions
        raise ValueError(f"{name!r} is not a field API name")
    if alias and not _ALIAS.match(alias):
        raise ValueError(f"{alias!r} is not a table alias")
    return f"{alias}.{quote_identifier(name)}" if alias else quote_identifier(name)


def _param(value: Any, today: date) -> Any:
    return today if value == TODAY and isinstance(value, str) else value


def _like_tokens(pattern: str) -> list[tuple[str, str]]:
    """("lit", ch) | ("any", "%") | ("one", "_"); a backslash makes the next character literal."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            tokens.append(("lit", pattern[i + 1]))
            i += 2
            continue
        tokens.append(("any", ch) if ch == "%" else ("one", ch) if ch == "_" else ("lit", ch))
        i += 1
    return tokens


def like_pattern_sql(pattern: str) -> str:
    """The DuckDB LIKE pattern (ESCAPE '\\') a settings pattern means."""
    return "".join(("\\" + ch if ch in "%_\\" else ch) if kind == "lit" else ch
                   for kind, ch in _like_tokens(pattern))


def _is_text(value: Any) -> bool:
    """A text value (validated settings put text values on text fields only, so the field is text too)."""
    return isinstance(value, str) and value != TODAY


def _folded(expr: str, values: Sequence[Any]) -> str:
    """`expr` case-folded when the values are text: SOQL compares text case-insensitively."""
    return f"lower({expr})" if values and all(_is_text(v) for v in values) else expr


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("lower(?)" if _is_text(v) else "?" for v in values)


def condition_sql(conditions: Sequence[Condition], *, alias: str, today: date) -> tuple[str, list[Any]]:
    """(DuckDB boolean expression, parameters) that holds when every condition holds; "TRUE" when there are
    none. Never NULL. `alias` qualifies the columns (the mirror table's alias in the caller's query). Text
    is compared case-insensitively, as SOQL does (`lower()` on both sides, `ILIKE` for like)."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        col = _column_sql(alias, cond.field)
        op = cond.op
        if op == "is_null":
            parts.append(f"({col} IS NULL)")
        elif op == "is_not_null":
            parts.append(f"({col} IS NOT NULL)")
        elif op in LIST_OPERATORS:
            values = [_param(v, today) for v in cond.values()]
            lhs = _folded(col, values)
            marks = _marks(values) if lhs != col else ", ".join("?" for _ in values)
            params.extend(values)
            parts.append(f"COALESCE({lhs} IN ({marks}), FALSE)" if op == "in"
                         else f"({col} IS NULL OR {lhs} NOT IN ({marks}))")
        elif op == "like":
            params.append(like_pattern_sql(str(cond.value)))
            parts.append(f"COALESCE({col} ILIKE ? ESCAPE '\\', FALSE)")
        elif op in _COMPARE:
            value = _param(cond.value, today)
            lhs, mark = (f"lower({col})", "lower(?)") if _is_text(value) else (col, "?")
            params.append(value)
            parts.append(f"({lhs} IS DISTINCT FROM {mark})" if op == "!=" else f"COALESCE({lhs} {op} {mark}, FALSE)")
        else:  # pragma: no cover - Condition validates op
            raise ValueError(f"unknown operator {op!r}")
    if not parts:
        return "TRUE", []
    return "(" + " AND ".join(parts) + ")", params


def _text_in_sql(expr: str, values: Sequence[str]) -> str:
    """`expr` is one of the text `values`, case-insensitively (SOQL's IN on a picklist); never NULL."""
    return f"COALESCE(lower({expr}) IN ({', '.join('lower(?)' for _ in values)}), FALSE)"


def account_inclusion_sql(settings: Settings, *, alias: str, record_type_alias: str | None = None,
                          today: date, record_type_sql: str | None = None) -> tuple[str, list[Any]]:
    """(DuckDB boolean expression, parameters): the Account at `alias` is a customer per
    `accounts.include` (record types, types and conditions, all must hold; "TRUE" when none is set), text
    compared case-insensitively as in SOQL.

    The record type is compared by DeveloperName: `record_type_alias` (or its synonym `record_type_sql`) is
    the SQL expression giving the Account's RecordType DeveloperName, from a join the caller provides
    (e.g. 'rt.developer_name'); it is only needed when `record_types` is set."""
    include = settings.accounts.include
    parts: list[str] = []
    params: list[Any] = []
    if include.record_types:
        expr = record_type_alias or record_type_sql
        if not expr:
            raise ValueError("accounts.include.record_types is set: pass record_type_alias, the SQL expression "
                             "of the Account's RecordType DeveloperName")
        parts.append(_text_in_sql(f"({expr})", include.record_types))
        params.extend(include.record_types)
    if include.types:
        parts.append(_text_in_sql(_column_sql(alias, 'Type'), include.types))
        params.extend(include.types)
    if include.conditions:
        sql, more = condition_sql(include.conditions, alias=alias, today=today)
        parts.append(sql)
        params.extend(more)
    if not parts:
        return "TRUE", []
    return "(" + " AND ".join(parts) + ")", params
