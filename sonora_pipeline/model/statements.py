"""The customer model, table by table: SQL over the mirror (`salesforce.*`) into schema `sonora`.

Every table is rebuilt from the mirror with `CREATE OR REPLACE`, so a changed mapping, filter or contract
rule takes effect on the next build without re-importing anything from Salesforce. Values from the
settings are always bound as parameters; identifiers come from the validated settings only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sonora_pipeline.mirror.names import RAW_SCHEMA, quote_identifier, table_name_for
from sonora_pipeline.model.rules import account_inclusion_sql, condition_sql

MODEL_SCHEMA = "sonora"
KEY_PREFIX_KINDS = {"001": "account", "006": "opportunity", "500": "case", "003": "contact", "00Q": "lead"}


@dataclass
class Statement:
    sql: str
    params: list[Any] = field(default_factory=list)


def live(alias: str) -> str:
    """Rows that exist in Salesforce today: not in the recycle bin, not purged."""
    return f'NOT coalesce({alias}."IsDeleted", false) AND {alias}._sonora_purged_at IS NULL'


USER_TABLE = table_name_for("User")  # salesforce."user" (quoted: `user` is reserved)


def owner_columns(owner_id_sql: str, user_columns: set[str]) -> tuple[str, str]:
    """(select list, join) giving `owner_name` and `owner_email` of the User whose Id is `owner_id_sql`.

    User may not be mirrored (older settings, or a run-as user without access), or its Email hidden by
    field-level security: then the column is NULL rather than the build failing, as for custom fields.
    An owner that is a queue (Case) has no User row, so its name is NULL too."""
    if "Id" not in user_columns:
        return "CAST(NULL AS VARCHAR) AS owner_name, CAST(NULL AS VARCHAR) AS owner_email", ""
    name = 'u."Name"' if "Name" in user_columns else "CAST(NULL AS VARCHAR)"
    email = 'u."Email"' if "Email" in user_columns else "CAST(NULL AS VARCHAR)"
    return (f"{name} AS owner_name, {email} AS owner_email",
            f'LEFT JOIN {RAW_SCHEMA}.{quote_identifier(USER_TABLE)} u ON u."Id" = {owner_id_sql}')


def _mapped(mapping: dict[str, str], alias: str, available: set[str]) -> str:
    cols = [f"{alias}.{quote_identifier(src)} AS {quote_identifier(dst)}" for src, dst in mapping.items() if src in available]
    return (",\n            " + ", ".join(cols)) if cols else ""


def _paying_sql(settings: Any, today: date) -> tuple[str, list[Any]]:
    """is_paying: the active contract criteria of the settings, as one boolean expression."""
    rules: list[str] = []
    params: list[Any] = []
    contracts = settings.contracts
    if contracts.account_conditions:
        sql, p = condition_sql(contracts.account_conditions, alias="a", today=today)
        rules.append(f"({sql})")
        params += p
    if contracts.won_opportunity_within_days is not None:
        rules.append("(won.last_won_on >= CAST(? AS DATE) - CAST(? AS INTEGER))")
        params += [today, contracts.won_opportunity_within_days]
    if not rules:
        return "false", []
    joiner = " AND " if contracts.match == "all" else " OR "
    return f"coalesce({joiner.join(rules)}, false)", params


def customers(settings: Any, today: date, account_columns: set[str], user_columns: set[str] = frozenset()) -> Statement:
    inclusion, inclusion_params = account_inclusion_sql(settings, alias="a", record_type_sql="rt.developer_name",
                                                        today=today)
    paying, paying_params = _paying_sql(settings, today)
    mapped = _mapped(settings.mapping.account, "a", account_columns)
    record_type_join = (f'LEFT JOIN {RAW_SCHEMA}._record_types rt ON rt.object_name = \'Account\' '
                        f'AND rt.record_type_id = a."RecordTypeId"' if "RecordTypeId" in account_columns
                        else "LEFT JOIN (SELECT NULL AS developer_name) rt ON false")
    owner, owner_join = owner_columns('a."OwnerId"', user_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.customers AS
        WITH won AS (
            SELECT "AccountId" AS account_id, max("CloseDate") AS last_won_on
            FROM {RAW_SCHEMA}.opportunity o WHERE {live('o')} AND o."IsWon" GROUP BY 1
        )
        SELECT
            a."Id" AS external_id, a."Name" AS name, a."Type" AS type, a."Industry" AS industry,
            rt.developer_name AS record_type, a."OwnerId" AS owner_id, {owner}, a."ParentId" AS parent_id,
            a."BillingCountry" AS billing_country, a."CreatedDate" AS created_at, won.last_won_on,
            {paying} AS is_paying{mapped}
        FROM {RAW_SCHEMA}.account a
        {record_type_join}
        {owner_join}
        LEFT JOIN won ON won.account_id = a."Id"
        WHERE {live('a')} AND ({inclusion})
    """
    return Statement(sql, [*paying_params, *inclusion_params])


def people(settings: Any, contact_columns: set[str]) -> Statement:
    mapped = _mapped(settings.mapping.contact, "c", contact_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.people AS
        SELECT
            c."Id" AS person_id, cu.external_id AS customer_id, c."AccountId" AS account_id,
            cu.external_id IS NOT NULL AS has_customer,
            c."FirstName" AS first_name, c."LastName" AS last_name, c."Name" AS name, c."Title" AS title,
            c."Email" AS email, c."Phone" AS phone, c."Department" AS department, c."OwnerId" AS owner_id,
            c."ReportsToId" AS reports_to_id, c."CreatedDate" AS created_at{mapped}
        FROM {RAW_SCHEMA}.contact c
        LEFT JOIN {MODEL_SCHEMA}.customers cu ON cu.external_id = c."AccountId"
        WHERE {live('c')}
    """
    return Statement(sql)


def people_edges() -> Statement:
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.people_edges AS
        SELECT p.person_id, p.reports_to_id AS manager_id, p.customer_id,
               m.person_id IS NOT NULL AS manager_known,
               m.customer_id IS NOT DISTINCT FROM p.customer_id AS same_customer
        FROM {MODEL_SCHEMA}.people p
        LEFT JOIN {MODEL_SCHEMA}.people m ON m.person_id = p.reports_to_id
        WHERE p.reports_to_id IS NOT NULL
    """
    return Statement(sql)


def opportunities(user_columns: set[str] = frozenset()) -> Statement:
    owner, owner_join = owner_columns('o."OwnerId"', user_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.opportunities AS
        SELECT
            o."Id" AS opportunity_id, cu.external_id AS customer_id, o."AccountId" AS account_id,
            o."Name" AS name, o."StageName" AS stage, o."Amount" AS amount, o."CloseDate" AS close_date,
            o."OwnerId" AS owner_id, {owner}, o."Probability" AS probability, o."Type" AS type,
            CASE WHEN o."IsWon" THEN 'won' WHEN o."IsClosed" THEN 'lost' ELSE 'open' END AS status,
            o."CreatedDate" AS created_at
        FROM {RAW_SCHEMA}.opportunity o
        LEFT JOIN {MODEL_SCHEMA}.customers cu ON cu.external_id = o."AccountId"
        {owner_join}
        WHERE {live('o')}
    """
    return Statement(sql)


def cases(user_columns: set[str] = frozenset()) -> Statement:
    owner, owner_join = owner_columns('c."OwnerId"', user_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.cases AS
        SELECT
            c."Id" AS case_id, cu.external_id AS customer_id, c."AccountId" AS account_id,
            c."ContactId" AS person_id, c."CaseNumber" AS case_number, c."Subject" AS subject,
            c."Status" AS status, c."Priority" AS priority, c."Origin" AS origin, c."Type" AS type,
            c."IsClosed" AS is_closed, c."IsEscalated" AS is_escalated, c."OwnerId" AS owner_id, {owner},
            c."CreatedDate" AS created_at, c."ClosedDate" AS closed_at,
            CASE WHEN c."IsClosed" AND c."ClosedDate" IS NOT NULL
                 THEN round(date_diff('second', c."CreatedDate", c."ClosedDate") / 3600.0, 2) END AS hours_to_close
        FROM {RAW_SCHEMA}."case" c
        LEFT JOIN {MODEL_SCHEMA}.customers cu ON cu.external_id = c."AccountId"
        {owner_join}
        WHERE {live('c')}
    """
    return Statement(sql)


def case_comments() -> Statement:
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.case_comments AS
        SELECT cc."Id" AS comment_id, cc."ParentId" AS case_id, ca.customer_id, cc."CommentBody" AS body,
               cc."IsPublished" AS is_published, cc."CreatedById" AS created_by_id, cc."CreatedDate" AS created_at
        FROM {RAW_SCHEMA}.case_comment cc
        JOIN {MODEL_SCHEMA}.cases ca ON ca.case_id = cc."ParentId"
        WHERE {live('cc')}
    """
    return Statement(sql)


def _what_kind(column: str) -> str:
    cases_sql = " ".join(f"WHEN left({column}, 3) = '{prefix}' THEN '{kind}'" for prefix, kind in KEY_PREFIX_KINDS.items())
    return f"CASE WHEN {column} IS NULL THEN NULL {cases_sql} ELSE 'other' END"


def _field(alias: str, name: str, available: set[str], sql_type: str) -> str:
    """A mirror column, or a typed NULL when the org does not have it or it is not readable (field-level
    security, an older API version): the build goes on, as for custom fields."""
    return f"{alias}.{quote_identifier(name)}" if name in available else f"CAST(NULL AS {sql_type})"


def touchpoints(now: datetime, task_columns: set[str], event_columns: set[str]) -> Statement:
    """Tasks and events as one typed stream; archived activities included (they are history too).

    Each row is done (it happened: `occurred_at`), planned (it has not happened yet: `planned_at`) or
    overdue (an open task whose due date has passed: it did not happen, and a CSM should see it), as of the
    build's `now`. Planned and overdue rows have no `occurred_at` (engagement counts done rows up to `now`,
    so nothing counted as a touch is in the future). A task is done when closed (IsClosed; else CompletedDateTime set; else Status 'Completed'); an
    event is done once it has ended (EndDateTime; else start + DurationInMinutes; all-day: the end of its
    last day)."""
    t = lambda name, sql_type: _field("t", name, task_columns, sql_type)  # noqa: E731
    e = lambda name, sql_type: _field("e", name, event_columns, sql_type)  # noqa: E731
    task_closed = (f"coalesce({t('IsClosed', 'BOOLEAN')}, CASE WHEN {t('CompletedDateTime', 'TIMESTAMP')} IS NOT NULL "
                   f"THEN true END, {t('Status', 'VARCHAR')} = 'Completed', false)")
    due = t("ActivityDate", "DATE")
    # When a closed task happened: its completion, else its due date unless that is still ahead (closed
    # early), else its last change (closing it is one), else its creation.
    task_done_at = (f"coalesce({t('CompletedDateTime', 'TIMESTAMP')}, CASE WHEN {due} <= CAST(b.now AS DATE) "
                    f"THEN CAST({due} AS TIMESTAMP) END, least({t('LastModifiedDate', 'TIMESTAMP')}, b.now), "
                    f"{t('CreatedDate', 'TIMESTAMP')})")
    start = (f"coalesce({e('StartDateTime', 'TIMESTAMP')}, {e('ActivityDateTime', 'TIMESTAMP')}, "
             f"CAST({e('ActivityDate', 'DATE')} AS TIMESTAMP), {e('CreatedDate', 'TIMESTAMP')})")
    # All-day events end with their last day, whether the org stores EndDateTime as that day's midnight
    # (Salesforce) or the next one; others at EndDateTime, else start + duration.
    end = (f"CASE WHEN coalesce({e('IsAllDayEvent', 'BOOLEAN')}, false) THEN "
           f"CAST(coalesce({e('EndDate', 'DATE')}, CAST({e('EndDateTime', 'TIMESTAMP')} AS DATE), "
           f"CAST({start} AS DATE)) AS TIMESTAMP) + INTERVAL 1 DAY "
           f"ELSE coalesce({e('EndDateTime', 'TIMESTAMP')}, "
           f"{start} + to_minutes(CAST(coalesce({e('DurationInMinutes', 'BIGINT')}, 0) AS BIGINT))) END")
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.touchpoints AS
        WITH b AS (SELECT CAST(? AS TIMESTAMP) AS now),
        tasks AS (
            SELECT t."Id" AS touchpoint_id, 'task' AS kind, {t('TaskSubtype', 'VARCHAR')} AS subtype,
                   {task_closed} AS is_closed, {task_done_at} AS done_at, CAST({due} AS TIMESTAMP) AS planned_for,
                   {t('Subject', 'VARCHAR')} AS subject, {t('Status', 'VARCHAR')} AS status,
                   {t('Priority', 'VARCHAR')} AS priority, {t('IsArchived', 'BOOLEAN')} AS is_archived,
                   {t('WhoId', 'VARCHAR')} AS who_id, {t('WhatId', 'VARCHAR')} AS what_id,
                   {t('AccountId', 'VARCHAR')} AS account_id, {t('OwnerId', 'VARCHAR')} AS owner_id,
                   CAST(NULL AS BIGINT) AS duration_minutes, b.now
            FROM {RAW_SCHEMA}.task t, b WHERE {live('t')}
        ), events AS (
            SELECT e."Id" AS touchpoint_id, 'event' AS kind, {e('EventSubtype', 'VARCHAR')} AS subtype,
                   ({end}) <= b.now AS is_closed, {start} AS done_at, {start} AS planned_for,
                   {e('Subject', 'VARCHAR')} AS subject, CAST(NULL AS VARCHAR) AS status,
                   CAST(NULL AS VARCHAR) AS priority, {e('IsArchived', 'BOOLEAN')} AS is_archived,
                   {e('WhoId', 'VARCHAR')} AS who_id, {e('WhatId', 'VARCHAR')} AS what_id,
                   {e('AccountId', 'VARCHAR')} AS account_id, {e('OwnerId', 'VARCHAR')} AS owner_id,
                   CAST({e('DurationInMinutes', 'BIGINT')} AS BIGINT) AS duration_minutes, b.now
            FROM {RAW_SCHEMA}.event e, b WHERE {live('e')}
        ), activities AS (
            SELECT *, CASE WHEN is_closed THEN 'done'
                           WHEN kind = 'task' AND planned_for < CAST(CAST(now AS DATE) AS TIMESTAMP) THEN 'overdue'
                           ELSE 'planned' END AS state
            FROM (SELECT * FROM tasks UNION ALL BY NAME SELECT * FROM events)
        )
        SELECT a.touchpoint_id, a.kind, a.subtype, a.state,
               CASE WHEN a.state = 'done' THEN a.done_at END AS occurred_at,
               CAST(CASE WHEN a.state = 'done' THEN a.done_at END AS DATE) AS occurred_on,
               CASE WHEN a.state <> 'done' THEN a.planned_for END AS planned_at,
               a.subject, a.status, a.priority, a.is_closed, a.is_archived,
               a.who_id, p.person_id, a.what_id, {_what_kind('a.what_id')} AS what_kind,
               coalesce(cu.external_id, op.customer_id, ca.customer_id, p.customer_id) AS customer_id,
               coalesce(cu.external_id, op.customer_id, ca.customer_id, p.customer_id) IS NOT NULL AS has_customer,
               a.owner_id, a.duration_minutes
        FROM activities a
        LEFT JOIN {MODEL_SCHEMA}.people p ON p.person_id = a.who_id
        LEFT JOIN {MODEL_SCHEMA}.customers cu ON cu.external_id = coalesce(a.account_id,
            CASE WHEN left(a.what_id, 3) = '001' THEN a.what_id END)
        LEFT JOIN {MODEL_SCHEMA}.opportunities op ON op.opportunity_id = a.what_id
        LEFT JOIN {MODEL_SCHEMA}.cases ca ON ca.case_id = a.what_id
    """
    return Statement(sql, [now])


def engagement_signals(today: date, now: datetime) -> Statement:
    """Engagement counts completed activity up to the build's `now` only (state 'done', occurred_at <= now);
    planned activity gives `next_touch_at`, open tasks past their due date `overdue_tasks`."""
    sql = f"""
        CREATE OR REPLACE TABLE {MODEL_SCHEMA}.engagement_signals AS
        WITH b AS (SELECT CAST(? AS TIMESTAMP) AS now, CAST(? AS DATE) AS today),
        tp AS (
            SELECT tp.*, tp.state = 'done' AND tp.occurred_at <= b.now AS counted, b.today
            FROM {MODEL_SCHEMA}.touchpoints tp, b WHERE tp.customer_id IS NOT NULL
        ), t AS (
            SELECT customer_id,
                   max(occurred_at) FILTER (WHERE counted) AS last_touch_at,
                   count(*) FILTER (WHERE counted AND occurred_on > today - 30) AS touches_30d,
                   count(*) FILTER (WHERE counted AND occurred_on > today - 90) AS touches_90d,
                   count(*) FILTER (WHERE counted AND kind = 'event' AND occurred_on > today - 30) AS meetings_30d,
                   count(*) FILTER (WHERE counted AND kind = 'event' AND occurred_on > today - 90) AS meetings_90d,
                   count(DISTINCT person_id) FILTER (WHERE counted AND occurred_on > today - 90) AS active_people_90d,
                   count(*) FILTER (WHERE counted) AS touches_ever,
                   min(planned_at) FILTER (WHERE state = 'planned') AS next_touch_at,
                   count(*) FILTER (WHERE state = 'overdue') AS overdue_tasks
            FROM tp GROUP BY 1
        ), c AS (
            SELECT customer_id,
                   count(*) FILTER (WHERE NOT is_closed AND priority = 'High') AS open_cases_high,
                   count(*) FILTER (WHERE NOT is_closed AND priority = 'Medium') AS open_cases_medium,
                   count(*) FILTER (WHERE NOT is_closed AND priority = 'Low') AS open_cases_low,
                   count(*) FILTER (WHERE NOT is_closed) AS open_cases_total,
                   count(*) AS cases_ever
            FROM {MODEL_SCHEMA}.cases WHERE customer_id IS NOT NULL GROUP BY 1
        ), o AS (
            SELECT customer_id,
                   count(*) FILTER (WHERE status = 'open') AS open_opportunities,
                   coalesce(sum(amount) FILTER (WHERE status = 'open'), 0) AS pipeline_open_amount,
                   coalesce(sum(amount) FILTER (WHERE status = 'won' AND close_date > b.today - 365), 0) AS won_amount_365d,
                   count(*) AS opportunities_ever
            FROM {MODEL_SCHEMA}.opportunities, b WHERE customer_id IS NOT NULL GROUP BY 1
        ), p AS (
            SELECT customer_id, count(*) AS people FROM {MODEL_SCHEMA}.people WHERE customer_id IS NOT NULL GROUP BY 1
        )
        SELECT cu.external_id AS customer_id, t.last_touch_at, t.next_touch_at,
               coalesce(t.touches_30d, 0) AS touches_30d, coalesce(t.touches_90d, 0) AS touches_90d,
               coalesce(t.meetings_30d, 0) AS meetings_30d, coalesce(t.meetings_90d, 0) AS meetings_90d,
               coalesce(t.active_people_90d, 0) AS active_people_90d, coalesce(t.overdue_tasks, 0) AS overdue_tasks,
               coalesce(p.people, 0) AS people,
               coalesce(c.open_cases_high, 0) AS open_cases_high, coalesce(c.open_cases_medium, 0) AS open_cases_medium,
               coalesce(c.open_cases_low, 0) AS open_cases_low, coalesce(c.open_cases_total, 0) AS open_cases_total,
               coalesce(o.open_opportunities, 0) AS open_opportunities,
               coalesce(o.pipeline_open_amount, 0) AS pipeline_open_amount,
               coalesce(o.won_amount_365d, 0) AS won_amount_365d,
               coalesce(t.touches_ever, 0) AS touches_ever, coalesce(c.cases_ever, 0) AS cases_ever,
               coalesce(o.opportunities_ever, 0) AS opportunities_ever
        FROM {MODEL_SCHEMA}.customers cu
        LEFT JOIN t ON t.customer_id = cu.external_id
        LEFT JOIN c ON c.customer_id = cu.external_id
        LEFT JOIN o ON o.customer_id = cu.external_id
        LEFT JOIN p ON p.customer_id = cu.external_id
    """
    return Statement(sql, [now, today])
