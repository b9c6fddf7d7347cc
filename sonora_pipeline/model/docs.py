"""What every table and column of the customer model means: the comments analysts see in DuckDB
(`duckdb_columns().comment`) and the column schemas shown in the Dagster UI."""

TABLES: dict[str, str] = {
    "customers": "One row per included, not-deleted Salesforce Account (external_id = Account Id), with mapped custom fields and is_paying.",
    "people": "Contacts (not deleted) with their customer; customer_id is NULL when the account is not an included customer.",
    "people_edges": "Reports-to edges of the people graph (person -> manager).",
    "opportunities": "Opportunities (not deleted) with status open/won/lost and their customer.",
    "cases": "Cases (not deleted) with time to close and their customer.",
    "case_comments": "Comments of the cases above.",
    "touchpoints": "Tasks and events as one stream (archived ones included), resolved to person and customer.",
    "engagement_signals": "Per customer: last touch, touches and meetings in 30/90 days, active people, open cases by priority, pipeline.",
    "renewals": "Paying customers whose contract ends within the renewal horizon, with what a renewal playbook needs.",
    "health_scores": "Per customer: the health score (0-100), its band and trend, and each measure beside it.",
    "health_score_history": "Health scores over time: a row when a customer's score or band changes, or its first build of a UTC day.",
    "ecsat": "Per customer: the estimated CSAT (0-100) from support outcomes of the last 180 days, with its components.",
}

COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "external_id": "Salesforce Account Id (the customer's external id in Sonora)",
        "name": "Account name", "type": "Account type (picklist)", "industry": "Account industry",
        "record_type": "Record type developer name", "owner_id": "Account owner (User Id)",
        "owner_name": "Owner's name (salesforce.\"user\".Name; NULL: User not mirrored, or the owner is a queue)", "owner_email": "Owner's email (salesforce.\"user\".Email; NULL: User not mirrored or Email not readable, or the owner is a queue)",
        "parent_id": "Parent account Id", "billing_country": "Billing country", "created_at": "Account created (UTC)",
        "last_won_on": "Close date of the latest won opportunity",
        "is_paying": "Meets the active contract criteria of the settings (contracts:)",
    },
    "people": {
        "person_id": "Salesforce Contact Id", "customer_id": "The person's customer (NULL: account not included)",
        "account_id": "The contact's Account Id as in Salesforce", "has_customer": "customer_id is known",
        "name": "Full name", "title": "Job title", "email": "Email", "reports_to_id": "Manager (Contact Id)",
    },
    "people_edges": {
        "person_id": "Contact Id", "manager_id": "Contact Id the person reports to",
        "manager_known": "The manager is a known person", "same_customer": "Person and manager share a customer",
    },
    "opportunities": {
        "opportunity_id": "Salesforce Opportunity Id", "customer_id": "Customer (NULL: account not included)",
        "stage": "Stage name", "amount": "Amount", "close_date": "Close date", "owner_id": "Owner (User Id)",
        "owner_name": "Owner's name (salesforce.\"user\".Name; NULL: User not mirrored, or the owner is a queue)", "owner_email": "Owner's email (salesforce.\"user\".Email; NULL: User not mirrored or Email not readable, or the owner is a queue)",
        "status": "open, won or lost",
    },
    "cases": {
        "case_id": "Salesforce Case Id", "customer_id": "Customer (NULL: account not included)",
        "subject": "Subject", "status": "Status", "priority": "Priority", "is_closed": "Closed",
        "owner_id": "Owner (User Id, or a queue's Id)", "owner_name": "Owner's name (salesforce.\"user\".Name; NULL: User not mirrored, or the owner is a queue)", "owner_email": "Owner's email (salesforce.\"user\".Email; NULL: User not mirrored or Email not readable, or the owner is a queue)",
        "hours_to_close": "Hours from creation to close (closed cases)",
    },
    "case_comments": {"comment_id": "Salesforce CaseComment Id", "case_id": "Case", "body": "Comment text"},
    "touchpoints": {
        "touchpoint_id": "Task or Event Id", "kind": "task or event", "subtype": "TaskSubtype / EventSubtype",
        "occurred_at": "When it happened (completion, start or due date)", "person_id": "The contact it involved",
        "what_kind": "What it is about: account, opportunity, case, other", "customer_id": "Customer it counts for",
        "has_customer": "customer_id is known", "is_archived": "Archived activity (older than a year in Salesforce)",
    },
    "engagement_signals": {
        "last_touch_at": "Latest touchpoint", "touches_30d": "Touchpoints in the last 30 days",
        "touches_90d": "Touchpoints in the last 90 days", "meetings_90d": "Events in the last 90 days",
        "active_people_90d": "Distinct people touched in the last 90 days",
        "open_cases_high": "Open high-priority cases", "pipeline_open_amount": "Sum of open opportunity amounts",
        "won_amount_365d": "Sum of amounts won in the last 365 days",
    },
    "renewals": {
        "contract_end_date": "Contract end (renewals.contract_end_field)", "days_to_renewal": "Days until the contract ends",
        "arr": "Annual recurring revenue (renewals.arr_field)", "health_score": "Current health score",
        "owner_id": "Account owner (User Id)", "owner_name": "Owner's name (salesforce.\"user\".Name; NULL: User not mirrored, or the owner is a queue)", "owner_email": "Owner's email (salesforce.\"user\".Email; NULL: User not mirrored or Email not readable, or the owner is a queue)",
    },
    "health_scores": {
        "score": "Health score 0-100 (NULL: no data at all)", "band": "green, yellow, red or unknown",
        "engagement": "Engagement measure 0-100 (NULL: no data)", "support": "Support measure 0-100 (NULL: no cases ever)",
        "commercial": "Commercial measure 0-100 (NULL: not paying, nothing won)", "sentiment": "10 x average NPS (NULL: no NPS)",
        "weight_used": "Sum of the weights of the measures that had data",
        "previous_score": "Score 24 hours before this build: the latest health_score_history row at least 24 hours older (NULL: no history that old)",
        "previous_computed_at": "When previous_score was computed",
        "trend": "score - previous_score (change over at least 24 hours)", "computed_at": "When this score was computed (UTC)", "weights": "The weights used (JSON)", "formula": "How the score is computed",
    },
    "health_score_history": {
        "computed_at": "When the score was computed (UTC)", "score": "Health score 0-100", "band": "green, yellow, red or unknown",
    },
    "ecsat": {
        "cases_closed_180d": "Cases closed in the last 180 days", "within_sla_share": "Share closed within ecsat.sla_hours",
        "escalated_share": "Share escalated", "ecsat": "Estimated CSAT 0-100 (NULL: no closed cases)",
        "formula": "How eCSAT is computed",
    },
}
