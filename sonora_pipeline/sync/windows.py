"""Which rows a run reads: the SOQL filters for a sync window or for the initial import.

A window [start, end) on `SystemModstamp` is read as [start - overlap, min(end, now - lag)):
- the lag keeps the newest rows out until they are surely visible (Salesforce commits can become visible
  to queries a little after their SystemModstamp; every peer that skipped this lost rows);
- the overlap re-reads the tail of the previous window for the same reason;
- both ends are half-open and every row is upserted by Id, so overlaps and ties on SystemModstamp are
  harmless: a row is never skipped because another row shares its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sonora_pipeline.salesforce.datetimes import naive_utc
from sonora_pipeline.salesforce.soql import soql_datetime, soql_string_list
from sonora_pipeline.settings import SyncSettings


@dataclass(frozen=True)
class ReadPlan:
    """What one run reads: one or more WHERE clauses (their union), and the SystemModstamp range covered."""

    kind: str  # "window" | "initial"
    filters: tuple[str, ...]
    read_from: datetime | None
    read_to: datetime

    @property
    def empty(self) -> bool:
        return self.read_from is not None and self.read_to <= self.read_from


def window_plan(start: datetime, end: datetime, now: datetime, settings: SyncSettings) -> ReadPlan:
    read_from = naive_utc(start) - timedelta(seconds=settings.overlap_seconds)
    read_to = min(naive_utc(end), naive_utc(now) - timedelta(seconds=settings.lag_seconds))
    clause = (f"SystemModstamp >= {soql_datetime(read_from)} AND SystemModstamp < {soql_datetime(read_to)}")
    return ReadPlan("window", (clause,), read_from, read_to)


def _active_filters(object_name: str, settings: SyncSettings) -> tuple[str, ...]:
    types = soql_string_list(settings.active_account_types)
    open_opp_accounts = "(SELECT AccountId FROM Opportunity WHERE IsClosed = false)"
    typed_accounts = f"(SELECT Id FROM Account WHERE Type IN ({types}))"
    filters: list[str] = []
    if object_name == "Account":
        if types:
            filters.append(f"Type IN ({types})")
        filters.append(f"Id IN {open_opp_accounts}")
    elif object_name == "Opportunity":
        filters.append("IsClosed = false")
        if types:
            filters.append(f"AccountId IN {typed_accounts}")
    elif object_name == "CaseComment":
        if types:
            filters.append(f"Parent.Account.Type IN ({types})")
        filters.append("ParentId IN (SELECT Id FROM Case WHERE IsClosed = false)")
    elif object_name in ("Contact", "Case", "Task", "Event"):
        if types:
            filters.append(f"AccountId IN {typed_accounts}")
        filters.append(f"AccountId IN {open_opp_accounts}")
    else:
        # User: every user (owners of old records are often deactivated, and users are few);
        # custom objects: everything (no generic notion of "active").
        return ()
    return tuple(filters)


def initial_plan(object_name: str, now: datetime, settings: SyncSettings) -> ReadPlan:
    """The first import of an object, by the configured mode; it ends where incremental windows start."""
    read_to = naive_utc(now) - timedelta(seconds=settings.lag_seconds)
    upper = f"SystemModstamp < {soql_datetime(read_to)}"
    mode = settings.initial_import
    if mode == "all":
        return ReadPlan("initial", (upper,), None, read_to)
    since = settings.initial_since()
    if since is not None:
        start = datetime(since.year, since.month, since.day)
        return ReadPlan("initial", (f"SystemModstamp >= {soql_datetime(start)} AND {upper}",), start, read_to)
    filters = _active_filters(object_name, settings)
    if not filters:
        return ReadPlan("initial", (upper,), None, read_to)
    return ReadPlan("initial", tuple(f"({f}) AND {upper}" for f in filters), None, read_to)
