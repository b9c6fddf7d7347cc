"""The customer model, table by table: SQL over the mirror (`salesforce.*`) into schema `sonora`.

Every table is rebuilt from the mirror with `CREATE OR REPLACE`, so a changed mapping, filter or contract
rule takes effect on the next build without re-importing anything from Salesforce. Values from the
settings are always bound as parameters; identifiers come from the validated settings only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sonora_pipeline.model.rules import account_inclusion_sql, condition_sql

SCHEMA = "sonora"
RAW = "salesforce"
KEY_PREFIX_KINDS = {"001": "account", "006": "opportunity", "500": "case", "003": "contact", "00Q": "lead"}


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Statement:
    sql: str
    params: list[Any] = field(default_factory=list)


def live(alias: str) -> str:
    """Rows that exist in Salesforce today: not in the recycle bin, not purged."""
    return f'NOT coalesce({alias}."IsDeleted", false) AND {alias}._sonora_purged_at IS NULL'


USER_TABLE = "user"  # salesforce."user" (quoted: `user` is reserved), mirrored from the org's User object


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
            f'LEFT JOIN {RAW}.{q(USER_TABLE)} u ON u."Id" = {owner_id_sql}')


def _mapped(mapping: dict[str, str], alias: str, available: set[str]) -> str:
    cols = [f"{alias}.{q(src)} AS {q(dst)}" for src, dst in mapping.items() if src in available]
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
    record_type_join = (f'LEFT JOIN {RAW}._record_types rt ON rt.object_name = \'Account\' '
                        f'AND rt.record_type_id = a."RecordTypeId"' if "RecordTypeId" in account_columns
                        else "LEFT JOIN (SELECT NULL AS developer_name) rt ON false")
    owner, owner_join = owner_columns('a."OwnerId"', user_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.customers AS
        WITH won AS (
            SELECT "AccountId" AS account_id, max("CloseDate") AS last_won_on
            FROM {RAW}.opportunity o WHERE {live('o')} AND o."IsWon" GROUP BY 1
        )
        SELECT
            a."Id" AS external_id, a."Name" AS name, a."Type" AS type, a."Industry" AS industry,
            rt.developer_name AS record_type, a."OwnerId" AS owner_id, {owner}, a."ParentId" AS parent_id,
            a."BillingCountry" AS billing_country, a."CreatedDate" AS created_at, won.last_won_on,
            {paying} AS is_paying{mapped}
        FROM {RAW}.account a
        {record_type_join}
        {owner_join}
        LEFT JOIN won ON won.account_id = a."Id"
        WHERE {live('a')} AND ({inclusion})
    """
    return Statement(sql, [*paying_params, *inclusion_params])


def people(settings: Any, contact_columns: set[str]) -> Statement:
    mapped = _mapped(settings.mapping.contact, "c", contact_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.people AS
        SELECT
            c."Id" AS person_id, cu.external_id AS customer_id, c."AccountId" AS account_id,
            cu.external_id IS NOT NULL AS has_customer,
            c."FirstName" AS first_name, c."LastName" AS last_name, c."Name" AS name, c."Title" AS title,
            c."Email" AS email, c."Phone" AS phone, c."Department" AS department, c."OwnerId" AS owner_id,
            c."ReportsToId" AS reports_to_id, c."CreatedDate" AS created_at{mapped}
        FROM {RAW}.contact c
        LEFT JOIN {SCHEMA}.customers cu ON cu.external_id = c."AccountId"
        WHERE {live('c')}
    """
    return Statement(sql)


def people_edges() -> Statement:
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.people_edges AS
        SELECT p.person_id, p.reports_to_id AS manager_id, p.customer_id,
               m.person_id IS NOT NULL AS manager_known,
               m.customer_id IS NOT DISTINCT FROM p.customer_id AS same_customer
        FROM {SCHEMA}.people p
        LEFT JOIN {SCHEMA}.people m ON m.person_id = p.reports_to_id
        WHERE p.reports_to_id IS NOT NULL
    """
    return Statement(sql)


def opportunities(user_columns: set[str] = frozenset()) -> Statement:
    owner, owner_join = owner_columns('o."OwnerId"', user_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.opportunities AS
        SELECT
            o."Id" AS opportunity_id, cu.external_id AS customer_id, o."AccountId" AS account_id,
            o."Name" AS name, o."StageName" AS stage, o."Amount" AS amount, o."CloseDate" AS close_date,
            o."OwnerId" AS owner_id, {owner}, o."Probability" AS probability, o."Type" AS type,
            CASE WHEN o."IsWon" THEN 'won' WHEN o."IsClosed" THEN 'lost' ELSE 'open' END AS status,
            o."CreatedDate" AS created_at
        FROM {RAW}.opportunity o
        LEFT JOIN {SCHEMA}.customers cu ON cu.external_id = o."AccountId"
        {owner_join}
        WHERE {live('o')}
    """
    return Statement(sql)


def cases(user_columns: set[str] = frozenset()) -> Statement:
    owner, owner_join = owner_columns('c."OwnerId"', user_columns)
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.cases AS
        SELECT
            c."Id" AS case_id, cu.external_id AS customer_id, c."AccountId" AS account_id,
            c."ContactId" AS person_id, c."CaseNumber" AS case_number, c."Subject" AS subject,
            c."Status" AS status, c."Priority" AS priority, c."Origin" AS origin, c."Type" AS type,
            c."IsClosed" AS is_closed, c."IsEscalated" AS is_escalated, c."OwnerId" AS owner_id, {owner},
            c."CreatedDate" AS created_at, c."ClosedDate" AS closed_at,
            CASE WHEN c."IsClosed" AND c."ClosedDate" IS NOT NULL
                 THEN round(date_diff('second', c."CreatedDate", c."ClosedDate") / 3600.0, 2) END AS hours_to_close
        FROM {RAW}."case" c
        LEFT JOIN {SCHEMA}.customers cu ON cu.external_id = c."AccountId"
        {owner_join}
        WHERE {live('c')}
    """
    return Statement(sql)


def case_comments() -> Statement:
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.case_comments AS
        SELECT cc."Id" AS comment_id, cc."ParentId" AS case_id, ca.customer_id, cc."CommentBody" AS body,
               cc."IsPublished" AS is_published, cc."CreatedById" AS created_by_id, cc."CreatedDate" AS created_at
        FROM {RAW}.case_comment cc
        JOIN {SCHEMA}.cases ca ON ca.case_id = cc."ParentId"
        WHERE {live('cc')}
    """
    return Statement(sql)


def _what_kind(column: str) -> str:
    cases_sql = " ".join(f"WHEN left({column}, 3) = '{prefix}' THEN '{kind}'" for prefix, kind in KEY_PREFIX_KINDS.items())
    return f"CASE WHEN {column} IS NULL THEN NULL {cases_sql} ELSE 'other' END"


def touchpoints(today: date) -> Statement:
    """Tasks and events as one typed stream; archived activities included (they are history too)."""
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.touchpoints AS
        WITH activities AS (
            SELECT t."Id" AS touchpoint_id, 'task' AS kind, t."TaskSubtype" AS subtype,
                   coalesce(t."CompletedDateTime", CAST(t."ActivityDate" AS TIMESTAMP), t."CreatedDate") AS occurred_at,
                   t."Subject" AS subject, t."Status" AS status, t."Priority" AS priority, t."IsClosed" AS is_closed,
                   t."IsArchived" AS is_archived, t."WhoId" AS who_id, t."WhatId" AS what_id,
                   t."AccountId" AS account_id, t."OwnerId" AS owner_id, CAST(NULL AS BIGINT) AS duration_minutes
            FROM {RAW}.task t WHERE {live('t')}
            UNION ALL
            SELECT e."Id", 'event', e."EventSubtype",
                   coalesce(e."StartDateTime", e."ActivityDateTime", CAST(e."ActivityDate" AS TIMESTAMP), e."CreatedDate"),
                   e."Subject", NULL, NULL, coalesce(e."EndDateTime", e."StartDateTime") < CAST(? AS TIMESTAMP),
                   e."IsArchived", e."WhoId", e."WhatId", e."AccountId", e."OwnerId", e."DurationInMinutes"
            FROM {RAW}.event e WHERE {live('e')}
        )
        SELECT a.touchpoint_id, a.kind, a.subtype, a.occurred_at, CAST(a.occurred_at AS DATE) AS occurred_on,
               a.subject, a.status, a.priority, a.is_closed, a.is_archived,
               a.who_id, p.person_id, a.what_id, {_what_kind('a.what_id')} AS what_kind,
               coalesce(cu.external_id, op.customer_id, ca.customer_id, p.customer_id) AS customer_id,
               coalesce(cu.external_id, op.customer_id, ca.customer_id, p.customer_id) IS NOT NULL AS has_customer,
               a.owner_id, a.duration_minutes
        FROM activities a
        LEFT JOIN {SCHEMA}.people p ON p.person_id = a.who_id
        LEFT JOIN {SCHEMA}.customers cu ON cu.external_id = coalesce(a.account_id,
            CASE WHEN left(a.what_id, 3) = '001' THEN a.what_id END)
        LEFT JOIN {SCHEMA}.opportunities op ON op.opportunity_id = a.what_id
        LEFT JOIN {SCHEMA}.cases ca ON ca.case_id = a.what_id
    """
    return Statement(sql, [today])


def engagement_signals(today: date) -> Statement:
    sql = f"""
        CREATE OR REPLACE TABLE {SCHEMA}.engagement_signals AS
        WITH t AS (
            SELECT customer_id,
                   max(occurred_at) FILTER (WHERE occurred_at <= CAST(? AS DATE) + 1) AS last_touch_at,
                   count(*) FILTER (WHERE occurred_on > CAST(? AS DATE) - 30 AND occurred_on <= CAST(? AS DATE)) AS touches_30d,
                   count(*) FILTER (WHERE occurred_on > CAST(? AS DATE) - 90 AND occurred_on <= CAST(? AS DATE)) AS touches_90d,
                   count(*) FILTER (WHERE kind = 'event' AND occurred_on > CAST(? AS DATE) - 30 AND occurred_on <= CAST(? AS DATE)) AS meetings_30d,
                   count(*) FILTER (WHERE kind = 'event' AND occurred_on > CAST(? AS DATE) - 90 AND occurred_on <= CAST(? AS DATE)) AS meetings_90d,
                   count(DISTINCT person_id) FILTER (WHERE occurred_on > CAST(? AS DATE) - 90 AND occurred_on <= CAST(? AS DATE)) AS active_people_90d,
                   count(*) AS touches_ever
            FROM {SCHEMA}.touchpoints WHERE customer_id IS NOT NULL GROUP BY 1
        ), c AS (
            SELECT customer_id,
                   count(*) FILTER (WHERE NOT is_closed AND priority = 'High') AS open_cases_high,
                   count(*) FILTER (WHERE NOT is_closed AND priority = 'Medium') AS open_cases_medium,
                   count(*) FILTER (WHERE NOT is_closed AND priority = 'Low') AS open_cases_low,
                   count(*) FILTER (WHERE NOT is_closed) AS open_cases_total,
                   count(*) AS cases_ever
            FROM {SCHEMA}.cases WHERE customer_id IS NOT NULL GROUP BY 1
        ), o AS (
            SELECT customer_id,
                   count(*) FILTER (WHERE status = 'open') AS open_opportunities,
                   coalesce(sum(amount) FILTER (WHERE status = 'open'), 0) AS pipeline_open_amount,
                   coalesce(sum(amount) FILTER (WHERE status = 'won' AND close_date > CAST(? AS DATE) - 365), 0) AS won_amount_365d,
                   count(*) AS opportunities_ever
            FROM {SCHEMA}.opportunities WHERE customer_id IS NOT NULL GROUP BY 1
        ), p AS (
            SELECT customer_id, count(*) AS people FROM {SCHEMA}.people WHERE customer_id IS NOT NULL GROUP BY 1
        )
        SELECT cu.external_id AS customer_id, t.last_touch_at,
               coalesce(t.touches_30d, 0) AS touches_30d, coalesce(t.touches_90d, 0) AS touches_90d,
               coalesce(t.meetings_30d, 0) AS meetings_30d, coalesce(t.meetings_90d, 0) AS meetings_90d,
               coalesce(t.active_people_90d, 0) AS active_people_90d, coalesce(p.people, 0) AS people,
               coalesce(c.open_cases_high, 0) AS open_cases_high, coalesce(c.open_cases_medium, 0) AS open_cases_medium,
               coalesce(c.open_cases_low, 0) AS open_cases_low, coalesce(c.open_cases_total, 0) AS open_cases_total,
               coalesce(o.open_opportunities, 0) AS open_opportunities,
               coalesce(o.pipeline_open_amount, 0) AS pipeline_open_amount,
               coalesce(o.won_amount_365d, 0) AS won_amount_365d,
               coalesce(t.touches_ever, 0) AS touches_ever, coalesce(c.cases_ever, 0) AS cases_ever,
               coalesce(o.opportunities_ever, 0) AS opportunities_ever
        FROM {SCHEMA}.customers cu
        LEFT JOIN t ON t.customer_id = cu.external_id
        LEFT JOIN c ON c.customer_id = cu.external_id
        LEFT JOIN o ON o.customer_id = cu.external_id
        LEFT JOIN p ON p.customer_id = cu.external_id
    """
    return Statement(sql, [today] * 12)
