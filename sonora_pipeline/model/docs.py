"""What every table and column of the customer model means: the comments analysts see in DuckDB
(`duckdb_columns().comment`) and the column schemas shown in the Dagster UI.

`COLUMNS` lists every column a table is built with. A text starting with "=" says where it is written once:
"=shared" (`SHARED`, columns that mean the same in every table) or "=<table>" (the same column of that model
table). Columns that come from Salesforce fields the settings name (mapped custom fields, the contract end
date, ARR, NPS) are described by `describe_columns` from the field's label in the mirror and its API name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TABLES: dict[str, str] = {
    "customers": "One row per included, not-deleted Salesforce Account (external_id = Account Id), with mapped custom fields and is_paying.",
    "people": "Contacts (not deleted) with their customer; customer_id is NULL when the account is not an included customer.",
    "people_edges": "Reports-to edges of the people graph (person -> manager).",
    "opportunities": "Opportunities (not deleted) with status open/won/lost and their customer.",
    "cases": "Cases (not deleted) with time to close and their customer.",
    "case_comments": "Comments of the cases above.",
    "touchpoints": "Tasks and events as one stream (archived ones included), resolved to person and customer; each done (occurred_at), planned or overdue (planned_at) as of the build.",
    "engagement_signals": "Per customer: last and next touch, completed touches and meetings in 30/90 days, active people, overdue tasks, open cases by priority, pipeline.",
    "renewals": "Paying customers whose contract ends within the renewal horizon, with what a renewal playbook needs.",
    "health_scores": "Per customer: the health score (0-100), its band and trend, and each measure beside it.",
    "health_score_history": "Health scores over time: a row when a customer's score or band changes, or its first build of a UTC day.",
    "ecsat": "Per customer: the estimated CSAT (0-100) from support outcomes of the last 180 days, with its components.",
    "writeback_ledger": "Write-back to Salesforce: one row per (account, field) attempt, with its result; the latest "
                        "success of an (account, field) is what was last pushed.",
}

SHARED: dict[str, str] = {
    "customer_id": "Customer: its Salesforce Account Id (customers.external_id); NULL when the account is not an "
                   "included customer",
    "has_customer": "customer_id is known",
    "account_id": "Account Id as in Salesforce (also when that account is not an included customer)",
    "owner_name": "Owner's name (salesforce.\"user\".Name; NULL: User not mirrored, or the owner is a queue)",
    "owner_email": "Owner's email (salesforce.\"user\".Email; NULL: User not mirrored or Email not readable, or the "
                   "owner is a queue)",
    "created_at": "Created in Salesforce (CreatedDate, UTC)",
}

COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "external_id": "Salesforce Account Id (the customer's external id in Sonora)",
        "name": "Account name", "type": "Account type (picklist)", "industry": "Account industry",
        "record_type": "Record type developer name", "owner_id": "Account owner (User Id)",
        "owner_name": "=shared", "owner_email": "=shared",
        "parent_id": "Parent account Id", "billing_country": "Billing country", "created_at": "Account created (UTC)",
        "last_won_on": "Close date of the latest won opportunity",
        "is_paying": "Meets the active contract criteria of the settings (contracts:)",
    },
    "people": {
        "person_id": "Salesforce Contact Id", "customer_id": "=shared",
        "account_id": "The contact's Account Id as in Salesforce", "has_customer": "=shared",
        "first_name": "First name", "last_name": "Last name",
        "name": "Full name", "title": "Job title", "email": "Email", "phone": "Phone", "department": "Department",
        "owner_id": "Contact owner (User Id)", "reports_to_id": "Manager (Contact Id)", "created_at": "=shared",
    },
    "people_edges": {
        "person_id": "Contact Id", "manager_id": "Contact Id the person reports to",
        "customer_id": "The person's customer (people.customer_id; NULL: account not included)",
        "manager_known": "The manager is a known person", "same_customer": "Person and manager share a customer",
    },
    "opportunities": {
        "opportunity_id": "Salesforce Opportunity Id", "customer_id": "=shared", "account_id": "=shared",
        "name": "Opportunity name", "stage": "Stage name", "amount": "Amount", "close_date": "Close date",
        "owner_id": "Owner (User Id)", "owner_name": "=shared", "owner_email": "=shared",
        "probability": "Probability (%)", "type": "Opportunity type (picklist)",
        "status": "open, won or lost", "created_at": "=shared",
    },
    "cases": {
        "case_id": "Salesforce Case Id", "customer_id": "=shared", "account_id": "=shared",
        "person_id": "The case's contact (Contact Id)", "case_number": "Case number",
        "subject": "Subject", "status": "Status", "priority": "Priority", "origin": "Origin (picklist: Web, Phone, ...)",
        "type": "Case type (picklist)", "is_closed": "Closed", "is_escalated": "Escalated",
        "owner_id": "Owner (User Id, or a queue's Id)", "owner_name": "=shared", "owner_email": "=shared",
        "created_at": "=shared", "closed_at": "Closed (ClosedDate, UTC)",
        "hours_to_close": "Hours from creation to close (closed cases)",
    },
    "case_comments": {"comment_id": "Salesforce CaseComment Id", "case_id": "Case", "customer_id": "=shared",
                      "body": "Comment text", "is_published": "Published (visible to the customer)",
                      "created_by_id": "Author (User Id)", "created_at": "=shared"},
    "touchpoints": {
        "touchpoint_id": "Task or Event Id", "kind": "task or event", "subtype": "TaskSubtype / EventSubtype",
        "subject": "Subject", "status": "Task status picklist value as in Salesforce (NULL for events)",
        "priority": "Task priority (NULL for events)", "who_id": "WhoId: the Contact or Lead it involves",
        "what_id": "WhatId: the record it is about (account, opportunity, case, ...)",
        "owner_id": "Assigned to (User Id)", "duration_minutes": "Event duration in minutes (NULL for tasks)",
        "state": "As of the build: done (a closed task; an event that has ended), planned (an open task due today or later or with no due date; an event not yet ended) or overdue (an open task whose due date has passed: not a touch, a follow-up to chase)",
        "occurred_at": "When it happened (UTC), done rows only (NULL when planned or overdue): a task's CompletedDateTime, else its due date if not ahead, else its last change; an event's start",
        "occurred_on": "Date of occurred_at (NULL when planned or overdue)",
        "planned_at": "When it is planned (UTC), planned and overdue rows only (NULL when done): a task's due date (midnight; NULL without one), an event's start",
        "is_closed": "Task: closed (IsClosed). Event: has ended by the build's time",
        "person_id": "The contact it involved",
        "what_kind": "What it is about: account, opportunity, case, other", "customer_id": "Customer it counts for",
        "has_customer": "customer_id is known", "is_archived": "Archived activity (older than a year in Salesforce)",
    },
    "engagement_signals": {
        "customer_id": "=shared",
        "last_touch_at": "Latest completed touchpoint (state done, occurred_at at or before the build's time; never in the future)",
        "next_touch_at": "Earliest planned touchpoint (state planned: planned_at of an open task due today or later, or of an event not yet ended); NULL: nothing planned",
        "touches_30d": "Completed touchpoints in the last 30 days (up to the build's time)",
        "touches_90d": "Completed touchpoints in the last 90 days (up to the build's time)",
        "meetings_30d": "Events that have ended, started in the last 30 days",
        "meetings_90d": "Events that have ended, started in the last 90 days",
        "active_people_90d": "Distinct people in completed touchpoints of the last 90 days",
        "touches_ever": "Completed touchpoints up to the build's time",
        "overdue_tasks": "Open tasks whose due date has passed (state overdue)",
        "people": "People (contacts) of the customer",
        "open_cases_high": "Open high-priority cases", "open_cases_medium": "Open medium-priority cases",
        "open_cases_low": "Open low-priority cases", "open_cases_total": "Open cases of any priority",
        "open_opportunities": "Open opportunities", "pipeline_open_amount": "Sum of open opportunity amounts",
        "won_amount_365d": "Sum of amounts won in the last 365 days",
        "cases_ever": "Cases ever (not deleted)", "opportunities_ever": "Opportunities ever (not deleted)",
    },
    "renewals": {
        "customer_id": "=shared", "name": "=customers",
        "owner_id": "=customers", "owner_name": "=shared", "owner_email": "=shared",
        "contract_end_date": "Contract end date", "days_to_renewal": "Days until the contract ends",
        "arr": "Annual recurring revenue", "pipeline_open_amount": "=engagement_signals",
        "open_opportunities": "=engagement_signals", "health_score": "Current health score (health_scores.score)",
        "health_band": "Current health band (health_scores.band)", "open_cases_total": "=engagement_signals",
        "open_cases_high": "=engagement_signals", "last_touch_at": "=engagement_signals",
        "touches_90d": "=engagement_signals", "next_touch_at": "=engagement_signals",
        "overdue_tasks": "=engagement_signals",
    },
    "health_scores": {
        "customer_id": "=shared", "score": "Health score 0-100 (NULL: no data at all)", "band": "green, yellow, red or unknown",
        "engagement": "Engagement measure 0-100 (NULL: no data)", "support": "Support measure 0-100 (NULL: no cases ever)",
        "commercial": "Commercial measure 0-100 (NULL: not paying, nothing won)", "sentiment": "10 x average NPS (NULL: no NPS)",
        "weight_used": "Sum of the weights of the measures that had data",
        "previous_score": "Score 24 hours before this build: the latest health_score_history row at least 24 hours older (NULL: no history that old)",
        "previous_computed_at": "When previous_score was computed",
        "trend": "score - previous_score (change over at least 24 hours)",
        "is_paying": "=customers", "contract_end_date": "Contract end date", "computed_at": "When this score was computed (UTC)", "weights": "The weights used (JSON)", "formula": "How the score is computed",
    },
    "health_score_history": {
        "customer_id": "=shared", "computed_at": "When the score was computed (UTC)", "score": "Health score 0-100",
        "band": "green, yellow, red or unknown", "engagement": "=health_scores", "support": "=health_scores",
        "commercial": "=health_scores", "sentiment": "=health_scores", "weights": "=health_scores",
    },
    "ecsat": {
        "customer_id": "=shared",
        "cases_closed_180d": "Cases closed in the last 180 days", "within_sla_share": "Share closed within ecsat.sla_hours",
        "escalated_share": "Share escalated",
        "median_hours_to_close": "Median hours to close of those cases", "sentiment": "=health_scores",
        "ecsat": "Estimated CSAT 0-100 (NULL: no closed cases)",
        "formula": "How eCSAT is computed",
    },
    "writeback_ledger": {
        "account_id": "Salesforce Account Id written to", "field": "Account field API name written",
        "value": "The value, as text (NULL: the field is cleared)", "computed_at": "When the model computed the value (UTC)",
        "attempted_at": "When the write was attempted (UTC)",
        "result": "sending (batch sent, outcome not yet recorded), success, error, skipped_conflict or dry_run",
        "status_code": "Salesforce status code of an error", "message": "Salesforce's message, or why it was skipped",
        "run_id": "Dagster run (or CLI run) that wrote it",
    },
}

# Mapped custom fields: model table -> (Salesforce object, `mapping` section).
MAPPED = {"customers": ("Account", "account"), "people": ("Contact", "contact")}
# Columns whose values come from a field the settings name: column -> (Salesforce object, setting).
FROM_SETTING = {
    "contract_end_date": ("Account", "renewals.contract_end_field"),
    "arr": ("Account", "renewals.arr_field"),
    "sentiment": ("Contact", "health.nps_field"),
}


def label_objects(table: str) -> set[str]:
    """The Salesforce objects whose field labels `table`'s comments quote (none: they are all static)."""
    objects = {obj for column, (obj, _) in FROM_SETTING.items() if column in COLUMNS.get(table, {})}
    return objects | ({MAPPED[table][0]} if table in MAPPED else set())


def _written(table: str, column: str) -> str | None:
    """The text of a listed column, following "=" references to where it is written."""
    text = COLUMNS.get(table, {}).get(column)
    for _ in range(len(COLUMNS)):
        if text is None or not text.startswith("="):
            return text
        source = text[1:]
        text = SHARED.get(column) if source == "shared" else COLUMNS.get(source, {}).get(column)
    raise ValueError(f"docs of {table}.{column}: the '=' references go round in a circle")


def _setting(settings: Any, path: str) -> Any:
    for part in path.split("."):
        settings = getattr(settings, part, None)
    return settings


def _field_text(object_name: str, field: str, labels: Mapping[tuple[str, str], str] | None) -> tuple[str, bool]:
    """(label, known): the field's label in the mirror, when the mirror is known and has the field."""
    if labels is None:
        return "", True
    label = labels.get((object_name, field.lower()))
    return (label or "", label is not None)


def describe_columns(table: str, settings: Any = None,
                     labels: Mapping[tuple[str, str], str] | None = None) -> dict[str, str]:
    """{column: comment} for every column `table` is built with under `settings`.

    `labels` are the mirror's comments of Salesforce fields ({(object, field API name lower-cased): label});
    None where the mirror is not at hand (the Dagster definitions), which leaves the labels out."""
    out: dict[str, str] = {}
    for column in COLUMNS.get(table, {}):
        text = _written(table, column) or ""
        if column in FROM_SETTING and settings is not None:
            object_name, path = FROM_SETTING[column]
            field = _setting(settings, path)
            if not field:
                text += f" (NULL: {path} is not set)"
            else:
                label, known = _field_text(object_name, field, labels)
                text += (f"; from {label + ' ' if label else ''}({object_name}.{field}, {path})" if known
                         else f" (NULL: {object_name}.{field}, named by {path}, is not in the mirror)")
        out[column] = text
    if table in MAPPED and settings is not None:
        object_name, section = MAPPED[table]
        for field, column in (getattr(settings.mapping, section, None) or {}).items():
            label, _ = _field_text(object_name, field, labels)
            out[column] = f"{label} ({object_name}.{field}, mapped)" if label else f"{object_name}.{field} (mapped)"
    return out
