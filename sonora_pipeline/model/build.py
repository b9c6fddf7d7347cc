"""Building one model table: validate the settings against the mirror, run its SQL, document its columns.

Documenting is part of the build's transaction: `CREATE OR REPLACE` drops a table's comments, so every
build writes them again (from docs.py, mapped fields with their Salesforce label from the mirror).

The settings are checked against the mirror's columns (what the last sync saw in describe) before any
table is touched, so an unknown field, a wrong type or an unreadable field stops the build with the
settings file's line and the fix, and nothing is written. Each build is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb

from sonora_pipeline.mirror.commit import rollback
from sonora_pipeline.mirror.lake import retry_conflicts
from sonora_pipeline.mirror.names import RAW_SCHEMA, quote_identifier, quote_literal, table_name_for
from sonora_pipeline.model import scores, statements
from sonora_pipeline.model.docs import TABLES, describe_columns, label_objects
from sonora_pipeline.model.rules import columns_from_mirror, validate_against_schema
from sonora_pipeline.model.statements import MODEL_SCHEMA, Statement
from sonora_pipeline.salesforce.datetimes import naive_utc


class MirrorMissing(Exception):
    """The raw tables the model reads are not there yet."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    needs: tuple[str, ...]            # raw mirror tables read
    after: tuple[str, ...]            # model tables read
    # (settings, today, {object: mirror columns}, now) -> statements; now is the build's naive UTC time
    statement: Callable[[Any, date, dict[str, set[str]], datetime], list[Statement]]
    optional: tuple[str, ...] = ()   # raw mirror tables read when present (columns NULL when absent)
    creates: tuple[str, ...] = ()    # other model tables its statements create (documented with it)


def _cols(columns: dict[str, dict[str, str]], object_name: str) -> set[str]:
    return set(columns.get(object_name, {}))


SPECS: dict[str, TableSpec] = {spec.name: spec for spec in [
    TableSpec("customers", ("account", "opportunity"), (),
              lambda s, d, c, n: [statements.customers(s, d, c["Account"], c["User"])], optional=("user",)),
    TableSpec("people", ("contact",), ("customers",), lambda s, d, c, n: [statements.people(s, c["Contact"])]),
    TableSpec("people_edges", (), ("people",), lambda s, d, c, n: [statements.people_edges()]),
    TableSpec("opportunities", ("opportunity",), ("customers",),
              lambda s, d, c, n: [statements.opportunities(c["User"])], optional=("user",)),
    TableSpec("cases", ("case",), ("customers",), lambda s, d, c, n: [statements.cases(c["User"])], optional=("user",)),
    TableSpec("case_comments", ("case_comment",), ("cases",), lambda s, d, c, n: [statements.case_comments()]),
    TableSpec("touchpoints", ("task", "event"), ("people", "customers", "opportunities", "cases"),
              lambda s, d, c, n: [statements.touchpoints(n, c["Task"], c["Event"])]),
    TableSpec("engagement_signals", (), ("touchpoints", "cases", "opportunities", "people", "customers"),
              lambda s, d, c, n: [statements.engagement_signals(d, n)]),
    TableSpec("health_scores", ("account", "contact"), ("engagement_signals", "customers"),
              lambda s, d, c, n: [Statement(scores.HISTORY_DDL),
                                  scores.health_scores(s, d, c["Account"], c["Contact"], n)],
              creates=("health_score_history",)),
    TableSpec("health_score_history", (), ("health_scores",),
              lambda s, d, c, n: [Statement(scores.HISTORY_DDL), scores.append_history()]),
    TableSpec("ecsat", (), ("cases", "health_scores"), lambda s, d, c, n: [scores.ecsat(s, d, c["Contact"])]),
    TableSpec("renewals", ("account",), ("customers", "engagement_signals", "health_scores"),
              lambda s, d, c, n: [scores.renewals(s, d, c["Account"])]),
]}
BUILD_ORDER = list(SPECS)


def _existing_tables(conn: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = ?",
                                       [schema]).fetchall()}


def mirror_labels(conn: duckdb.DuckDBPyConnection, objects: set[str]) -> dict[tuple[str, str], str]:
    """{(Salesforce object, field API name lower-cased): the mirror column's comment (its describe label)}."""
    mirror = {table_name_for(name): name for name in objects}
    if not mirror:
        return {}
    rows = conn.execute("SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = ? "
                        "AND database_name = current_database() AND list_contains(?, table_name)",
                        [RAW_SCHEMA, list(mirror)]).fetchall()
    return {(mirror[t], c.lower()): text or "" for t, c, text in rows}


def document(conn: duckdb.DuckDBPyConnection, table: str, settings: Any = None) -> None:
    """Comment `sonora.<table>` and each of its columns, in one round trip. Written whole every time (the
    table was just replaced, or its comments are a few): reading the comments back costs more than writing."""
    try:
        columns = [r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)",
                                              [f"{MODEL_SCHEMA}.{table}"]).fetchall()]
    except duckdb.CatalogException:
        return
    objects = label_objects(table)
    comments = describe_columns(table, settings, mirror_labels(conn, objects) if objects else None)
    target = f"{MODEL_SCHEMA}.{quote_identifier(table)}"
    sql = [f"COMMENT ON TABLE {target} IS {quote_literal(TABLES[table])}"] if TABLES.get(table) else []
    sql += [f"COMMENT ON COLUMN {target}.{quote_identifier(column)} IS {quote_literal(comments[column])}"
            for column in columns if comments.get(column)]
    if sql:
        conn.execute(";\n".join(sql))


def build_time(today: date, now: datetime | None) -> datetime:
    """The build's time as naive UTC: `now` (converted when it carries a zone), or the clock's when `today`
    is the clock's day. `now` must fall on `today`."""
    if now is None:
        return scores.utc_now(today)
    if now.tzinfo is not None:
        now = naive_utc(now)
    if now.date() != today:
        raise ValueError(f"now ({now.isoformat()} UTC) is not on today ({today.isoformat()})")
    return now


@retry_conflicts  # on a shared DuckLake warehouse, a build that lost a commit race runs again whole
def build_table(conn: duckdb.DuckDBPyConnection, table: str, settings: Any, today: date,
                now: datetime | None = None) -> int:
    """Rebuild one model table; returns its row count. `now` (default: the clock) is the build's time,
    which the health score history is stamped with (injectable for tests and backfills)."""
    spec = SPECS[table]
    now = build_time(today, now)
    raw = _existing_tables(conn, RAW_SCHEMA)
    missing = [t for t in spec.needs if t not in raw]
    if missing:
        raise MirrorMissing(f"sonora.{table} needs the mirror tables {', '.join('salesforce.' + t for t in missing)}, "
                            "which are not there yet. Fix: sync the Salesforce objects first "
                            "(`sonora-pipeline sync`, or materialize the salesforce assets).")
    columns = columns_from_mirror(conn)
    validate_against_schema(settings, columns)
    object_columns = {name: _cols(columns, name) for name in ("Account", "Contact", "Opportunity", "User", "Task", "Event")}
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MODEL_SCHEMA}")
        for statement in spec.statement(settings, today, object_columns, now):
            conn.execute(statement.sql, statement.params)
        for built in (table, *spec.creates):
            document(conn, built, settings)
        rows = conn.execute(f"SELECT count(*) FROM {MODEL_SCHEMA}.{table}").fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return rows


def build_all(conn: duckdb.DuckDBPyConnection, settings: Any, today: date,
              now: datetime | None = None) -> dict[str, int]:
    now = build_time(today, now)
    return {table: build_table(conn, table, settings, today, now) for table in BUILD_ORDER}
