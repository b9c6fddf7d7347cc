"""How Salesforce things are named in DuckDB, and how a name or a text becomes SQL: one home, so the mirror,
the model, the write-back and the Dagster definitions all agree on `salesforce.case_comment`."""

from __future__ import annotations

from collections.abc import Iterable

RAW_SCHEMA = "salesforce"  # the mirror's schema: one table per Salesforce object
_TABLE_NAMES = {"CaseComment": "case_comment"}


def table_name_for(object_name: str) -> str:
    """Analyst-friendly table name: account, contact, case, case_comment, invoice__c."""
    return _TABLE_NAMES.get(object_name, object_name.lower())


def object_for_table(table: str, object_names: Iterable[str]) -> str | None:
    """The object of `object_names` mirrored as `table` (table names lose the object's case), or None."""
    return next((name for name in object_names if table_name_for(name) == table), None)


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes (an embedded quote doubled): any column or table name is safe."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A DuckDB string literal (an embedded quote doubled), for DDL that takes no parameters (COMMENT ON,
    read_csv's file list)."""
    return "'" + text.replace("'", "''") + "'"


def raw_table(object_name: str) -> str:
    """The mirror table of an object, schema-qualified and quoted: salesforce."case_comment"."""
    return f"{RAW_SCHEMA}.{quote_identifier(table_name_for(object_name))}"
