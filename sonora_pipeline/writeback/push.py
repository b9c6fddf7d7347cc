"""Sending the plan to Salesforce, and recording each outcome in the ledger.

One run (`run_writeback`):

1. Off switch: with `writeback.enabled: false` nothing else happens (no client, no API call): "disabled".
2. Plan (DuckDB only, no API call): model values of live customers that differ from the ledger's last
   successful value. Nothing changed: the run ends here, with 0 API calls.
3. Targets: one describe of Account; a bad target field stops the run before any write (`targets.py`).
4. If an earlier run died while sending (its `sending` rows are the latest of some planned values), wait until
   that send is `writeback.settle_seconds` old: Salesforce finishes requests whose client died.
   Fresh read of the planned Accounts from the org (one REST queryAll per 200 Ids, or one Bulk query of all
   Accounts when more than `bulk_threshold` are planned): IsDeleted, LastModifiedDate, LastModifiedById and
   the target fields' current values. Then per account:
   - gone or deleted in Salesforce: not written ('error', ENTITY_IS_DELETED);
   - the org already holds the value: recorded 'success' without sending (this is what makes a re-run after a
     crash between sending and recording write nothing twice);
   - modified since the mirror's copy (LastModifiedDate differs) by someone other than our run-as user:
     'skipped_conflict', reported; the next sync and model build bring the change in and the next run
     decides again. Our own writes (LastModifiedById = the token's user) never count as a conflict.
5. Dry run: 'dry_run' ledger rows and a table of account, field, old -> new; no write call.
6. Send: sObject Collections PATCH (200 records per call, allOrNone false) or, for more than
   `bulk_threshold` records, one Bulk API 2.0 ingest `update` job (CSV, `#N/A` for null). Before each batch
   its values go to the ledger as `sending`; after it, its outcomes go to the ledger (one short DuckDB transaction, no connection held while calling Salesforce)
   before the next batch is sent. A collections call whose outcome is unknown (5xx or a drop after sending)
   is not resent blindly: the batch's accounts are read again and only values still missing are resent once.

Our write moves the Account's SystemModstamp, so the sync sees it as a change and mirrors it (with our user
as LastModifiedById); the model rebuilds with the same values, which equal the ledger's last success, so the
next write-back computes no change for it. The write-back has no sensor or automation condition: it only
runs when launched.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from sonora_pipeline.mirror.state import OrgIdentity, check_org
from sonora_pipeline.mirror.warehouse import read_connection, write_connection
from sonora_pipeline.salesforce.connection import safe_url
from sonora_pipeline.salesforce.client import MAX_COLLECTION_RECORDS, SalesforceClient, WriteOutcomeUnknown
from sonora_pipeline.salesforce.soql import soql_string_list
from sonora_pipeline.settings import Settings
from sonora_pipeline.writeback.plan import LedgerRow, Plan, Planned, canonical, compute_plan, record
from sonora_pipeline.writeback.targets import Target, check_targets

OBJECT = "Account"
SYSTEM_FIELDS = ("Id", "IsDeleted", "LastModifiedDate", "LastModifiedById")
log = logging.getLogger(__name__)


@dataclass
class Change:
    """One value of the report: account, field, the org's value before (as read) and the new value."""

    account_id: str
    field: str
    old: Any
    new: Any
    result: str
    status_code: str | None = None
    message: str | None = None


@dataclass
class WritebackReport:
    status: str                      # disabled | nothing_to_write | written | dry_run
    method: str | None = None        # collections | bulk
    read_method: str | None = None   # rest | bulk (the conflict check's read)
    counts: Counter = field(default_factory=Counter)  # by result
    api_calls: int = 0
    unchanged: int = 0
    batches: int = 0
    seconds: float = 0.0
    changes: list[Change] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {"status": self.status, "method": self.method or "none", "read_method": self.read_method or "none",
                "api_calls": self.api_calls, "unchanged_values": self.unchanged, "batches": self.batches,
                **{f"result_{k}": int(self.counts.get(k, 0))
                   for k in ("success", "error", "skipped_conflict", "dry_run")}}


@dataclass
class OrgRecord:
    deleted: bool
    modified_at: datetime | None
    modified_by: str | None
    values: dict[str, Any]


# -- values --------------------------------------------------------------------------------------------------

def _naive_utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.replace(microsecond=(dt.microsecond // 1000) * 1000)


def same_value(target: Target, org_value: Any, wire: Any) -> bool:
    """Does the org's field already hold the value we would send (as the org would store it)?"""
    if org_value in (None, ""):
        return wire is None or (wire == "" and target.type in ("string", "textarea"))
    if wire is None:
        return False
    if target.type in ("double", "percent", "currency", "int", "long"):
        try:
            return round(float(org_value), target.scale) == round(float(wire), target.scale)
        except (TypeError, ValueError):
            return False
    if target.type == "boolean":
        return str(org_value).lower() == str(wire).lower()
    if target.type == "date":
        return str(org_value)[:10] == str(wire)[:10]
    if target.type == "datetime":
        return _naive_utc(org_value) == _naive_utc(wire)
    return str(org_value) == str(wire)


# -- the fresh read ------------------------------------------------------------------------------------------

def read_org(client: SalesforceClient, ids: list[str], fields: list[str], *, use_bulk: bool
             ) -> dict[str, OrgRecord]:
    """The org's current state of these Accounts (queryAll: deleted ones come back with IsDeleted)."""
    wanted = set(ids)
    select = ", ".join(list(SYSTEM_FIELDS) + [f for f in fields if f not in SYSTEM_FIELDS])
    out: dict[str, OrgRecord] = {}

    def keep(row: dict[str, Any]) -> None:
        rid = row.get("Id")
        if rid not in wanted:
            return
        deleted = row.get("IsDeleted")
        out[rid] = OrgRecord(deleted=deleted is True or str(deleted).lower() == "true",
                             modified_at=_naive_utc(row.get("LastModifiedDate")),
                             modified_by=row.get("LastModifiedById") or None,
                             values={f: (None if row.get(f) == "" else row.get(f)) for f in fields})

    if use_bulk:
        for page in client.bulk_query_pages(f"SELECT {select} FROM {OBJECT}", include_deleted=True,
                                            max_records=100_000):
            text = io.TextIOWrapper(io.BytesIO(page.csv), encoding="utf-8", newline="")
            for row in csv.DictReader(text):
                keep(row)
        return out
    for start in range(0, len(ids), MAX_COLLECTION_RECORDS):
        chunk = ids[start:start + MAX_COLLECTION_RECORDS]
        soql = f"SELECT {select} FROM {OBJECT} WHERE Id IN ({soql_string_list(chunk)})"
        for records in client.query_pages(soql, include_deleted=True):
            for row in records:
                keep(row)
    return out


# -- the run -------------------------------------------------------------------------------------------------

def run_writeback(client: SalesforceClient | Callable[[], SalesforceClient], db_path: Path, settings: Settings, *,
                  run_id: str, dry_run: bool | None = None, log: Any = log,
                  before_batch: Callable[[int], None] | None = None) -> WritebackReport:
    """One write-back run (see the module docstring). `client` may be a factory, called only when the run
    needs the org. `before_batch(n)` is called before the n-th write batch (0-based) is sent: a test seam."""
    started = time.perf_counter()
    wb = settings.writeback
    dry_run = wb.dry_run if dry_run is None else dry_run
    if not wb.enabled:
        log.info("Write-back is disabled (writeback.enabled: false): nothing read or written")
        return WritebackReport(status="disabled")
    with write_connection(db_path) as conn:
        plan = compute_plan(conn, settings)
    report = WritebackReport(status="dry_run" if dry_run else "written", unchanged=plan.unchanged)
    if not plan.changes:
        report.status = "dry_run" if dry_run else "nothing_to_write"
        log.info("Write-back: no value changed since the last push (%d unchanged); no API call", plan.unchanged)
        report.seconds = time.perf_counter() - started
        return report
    log.info("Write-back: %d values of %d Accounts changed since the last push (%d unchanged)", len(plan.changes),
             len(plan.accounts), plan.unchanged)
    client = client() if callable(client) and not isinstance(client, SalesforceClient) else client
    calls_before = client.api_calls
    try:
        _run(client, db_path, settings, plan, report, run_id=run_id, dry_run=dry_run, log=log,
             before_batch=before_batch)
    finally:
        report.api_calls = client.api_calls - calls_before
        report.seconds = time.perf_counter() - started
    return report


def _check_same_org(client: SalesforceClient, db_path: Path) -> None:
    org_id = client.tokens.org_id
    if org_id is not None:
        with read_connection(db_path) as conn:
            check_org(conn, OrgIdentity(org_id, safe_url(client.connection.instance_url)), database=str(db_path))


def _run(client: SalesforceClient, db_path: Path, settings: Settings, plan: Plan, report: WritebackReport, *,
         run_id: str, dry_run: bool, log: Any, before_batch: Callable[[int], None] | None) -> None:
    wb = settings.writeback
    targets = check_targets(client, settings, plan.changes, plan.column_types, OBJECT)
    _check_same_org(client, db_path)  # model values of one org's Accounts are never pushed to another org
    our_user = client.tokens.user_id
    ids = plan.accounts
    _let_unfinished_sends_land(plan, wb.settle_seconds, log)
    report.read_method = "bulk" if len(ids) > wb.bulk_threshold else "rest"
    org = read_org(client, ids, [t.name for t in targets.values()], use_bulk=report.read_method == "bulk")
    log.info("Write-back: targets valid; read %d of %d Accounts back from the org (%s)", len(org), len(ids),
             report.read_method)

    settled: list[LedgerRow] = []
    to_send: dict[str, list[Planned]] = {}
    by_account: dict[str, list[Planned]] = {}
    for p in plan.changes:
        by_account.setdefault(p.account_id, []).append(p)
    for account_id, items in by_account.items():
        current = org.get(account_id)
        if current is None or current.deleted:
            for p in items:
                settled.append(LedgerRow(p.account_id, p.field, p.value, p.computed_at, "error", "ENTITY_IS_DELETED",
                                         "deleted in Salesforce; not written (the next sync marks it deleted)"))
            continue
        pending = []
        for p in items:
            if same_value(targets[p.field], current.values.get(targets[p.field].name), p.wire):
                if not dry_run:
                    settled.append(LedgerRow(p.account_id, p.field, p.value, p.computed_at, "success", None,
                                             "already in Salesforce; nothing sent"))
            else:
                pending.append(p)
        if not pending:
            continue
        mirror_at = _naive_utc(pending[0].mirror_modified_at)
        if current.modified_at != mirror_at and (our_user is None or current.modified_by != our_user):
            message = (f"changed in Salesforce by {current.modified_by} at {current.modified_at} after the mirror's "
                       f"copy ({mirror_at}) the value was computed from; not written, the next sync and model "
                       "build decide again")
            for p in pending:
                settled.append(LedgerRow(p.account_id, p.field, p.value, p.computed_at, "skipped_conflict", None,
                                         message))
                report.changes.append(Change(p.account_id, p.field, current.values.get(targets[p.field].name),
                                             p.wire, "skipped_conflict", None, message))
            continue
        to_send[account_id] = pending

    if dry_run:
        for account_id, items in to_send.items():
            for p in items:
                old = org[account_id].values.get(targets[p.field].name)
                settled.append(LedgerRow(p.account_id, p.field, p.value, p.computed_at, "dry_run", None,
                                         f"would write {p.wire!r} (now {old!r})"))
                report.changes.append(Change(p.account_id, p.field, old, p.wire, "dry_run"))
        report.method = "bulk" if len(to_send) > wb.bulk_threshold else "collections"
        _record(db_path, settled, run_id, report)
        return
    _record(db_path, settled, run_id, report)
    if not to_send:
        return
    report.method = "bulk" if len(to_send) > wb.bulk_threshold else "collections"
    if report.method == "bulk":
        _send_bulk(client, db_path, to_send, targets, org, report, run_id=run_id, before_batch=before_batch,
                   log=log)
    else:
        _send_collections(client, db_path, to_send, targets, org, report, run_id=run_id,
                          before_batch=before_batch, log=log)
    log.info("Write-back: %s via %s, %d API calls", dict(report.counts), report.method, client.api_calls)


def _let_unfinished_sends_land(plan: Plan, settle_seconds: float, log: Any) -> None:
    """A run that died while sending left `sending` rows. Salesforce finishes a request whose client died, so
    reading those accounts back at once could miss values still being applied and send them a second time:
    wait until the last such send is `settle_seconds` old, then the read-back sees what landed."""
    if plan.last_unfinished_send is None:
        return
    age = (datetime.now(timezone.utc).replace(tzinfo=None) - plan.last_unfinished_send).total_seconds()
    wait = settle_seconds - age
    if wait > 0:
        log.info("Write-back: an earlier run stopped while sending values at %s UTC; waiting %.1f s for Salesforce "
                 "to finish those requests before reading the accounts back", plan.last_unfinished_send, wait)
        time.sleep(wait)


def _record(db_path: Path, rows: list[LedgerRow], run_id: str, report: WritebackReport) -> None:
    if not rows:
        return
    with write_connection(db_path) as conn:
        record(conn, rows, run_id=run_id)
    report.counts.update(r.result for r in rows if r.result != "sending")


def _record_sending(db_path: Path, accounts: Iterable[str], to_send: dict[str, list[Planned]], run_id: str,
                    report: WritebackReport) -> None:
    """Before a batch goes out: if this run dies before recording the outcome, the next run knows to wait."""
    _record(db_path, [LedgerRow(p.account_id, p.field, p.value, p.computed_at, "sending", None,
                                "sent; the outcome was not recorded (the run stopped)")
                      for a in accounts for p in to_send[a]], run_id, report)


def _payload(account_id: str, items: list[Planned], targets: dict[str, Target]) -> dict[str, Any]:
    record_ = {"attributes": {"type": OBJECT}, "id": account_id}
    for p in items:
        record_[targets[p.field].name] = p.wire  # None -> JSON null: clears the field
    return record_


def _outcome_rows(items: list[Planned], success: bool, code: str | None, message: str | None,
                  targets: dict[str, Target], org: dict[str, OrgRecord], report: WritebackReport) -> list[LedgerRow]:
    rows = []
    result = "success" if success else "error"
    for p in items:
        rows.append(LedgerRow(p.account_id, p.field, p.value, p.computed_at, result, code, message))
        old = org[p.account_id].values.get(targets[p.field].name) if p.account_id in org else None
        report.changes.append(Change(p.account_id, p.field, old, p.wire, result, code, message))
    return rows


def _send_collections(client: SalesforceClient, db_path: Path, to_send: dict[str, list[Planned]],
                      targets: dict[str, Target], org: dict[str, OrgRecord], report: WritebackReport, *,
                      run_id: str, before_batch: Callable[[int], None] | None, log: Any) -> None:
    accounts = list(to_send)
    for n, start in enumerate(range(0, len(accounts), MAX_COLLECTION_RECORDS)):
        batch = accounts[start:start + MAX_COLLECTION_RECORDS]
        if before_batch is not None:
            before_batch(n)
        _record_sending(db_path, batch, to_send, run_id, report)
        rows = _collections_batch(client, batch, to_send, targets, org, report, log=log)
        report.batches += 1
        _record(db_path, rows, run_id, report)


def _collections_batch(client: SalesforceClient, batch: list[str], to_send: dict[str, list[Planned]],
                       targets: dict[str, Target], org: dict[str, OrgRecord], report: WritebackReport, *,
                       log: Any, resend: bool = True) -> list[LedgerRow]:
    records = [_payload(a, to_send[a], targets) for a in batch]
    try:
        results = client.update_records(records, all_or_none=False)
    except WriteOutcomeUnknown as exc:
        if not resend:
            rows = []
            for a in batch:
                rows += _outcome_rows(to_send[a], False, "WRITE_OUTCOME_UNKNOWN", str(exc), targets, org, report)
            return rows
        # Maybe applied, maybe not: read the batch again, keep what landed, resend only the rest (once).
        log.warning("Write-back: outcome of a batch of %d unknown (%s); re-reading them before resending",
                    len(batch), exc)
        fresh = read_org(client, batch, [t.name for t in targets.values()], use_bulk=False)
        rows, again = [], []
        for a in batch:
            current = fresh.get(a)
            if current is not None and all(same_value(targets[p.field], current.values.get(targets[p.field].name),
                                                      p.wire) for p in to_send[a]):
                rows += _outcome_rows(to_send[a], True, None, "confirmed by re-reading after an unknown outcome",
                                      targets, org, report)
            else:
                again.append(a)
        if again:
            rows += _collections_batch(client, again, to_send, targets, org, report, log=log, resend=False)
        return rows
    rows = []
    for a, result in zip(batch, results):
        rows += _outcome_rows(to_send[a], result.success, result.status_code, result.message, targets, org, report)
    return rows


def _send_bulk(client: SalesforceClient, db_path: Path, to_send: dict[str, list[Planned]],
               targets: dict[str, Target], org: dict[str, OrgRecord], report: WritebackReport, *,
               run_id: str, before_batch: Callable[[int], None] | None, log: Any = log) -> None:
    if before_batch is not None:
        before_batch(0)
    _record_sending(db_path, to_send, to_send, run_id, report)
    rows_out = []
    for account_id, items in to_send.items():
        row: dict[str, Any] = {"Id": account_id}
        for p in items:
            row[targets[p.field].name] = p.wire
        rows_out.append(row)
    successes, failures = client.bulk_update(OBJECT, rows_out)
    log.info("Write-back: Bulk ingest job done: %d rows succeeded, %d failed", len(successes), len(failures))
    report.batches += 1
    done: dict[str, tuple[bool, str | None, str | None]] = {}
    for s in successes:
        done[s.get("sf__Id") or s.get("Id") or ""] = (True, None, None)
    for f in failures:
        rid = f.get("sf__Id") or f.get("Id") or ""
        error = f.get("sf__Error") or ""
        code, _, message = error.partition(":")
        done[rid] = (False, code or "UNKNOWN", error)
    rows = []
    for account_id, items in to_send.items():
        success, code, message = done.get(account_id, (False, "UNPROCESSED", "not in the job's results"))
        rows += _outcome_rows(items, success, code, message, targets, org, report)
    _record(db_path, rows, run_id, report)


def changes_table(changes: Iterable[Change], limit: int = 500) -> str:
    """Markdown table of account, field, old -> new, result (for run metadata)."""
    lines = ["| account | field | old | new | result | status |", "|---|---|---|---|---|---|"]
    count = 0
    for c in changes:
        count += 1
        if count <= limit:
            lines.append(f"| {c.account_id} | {c.field} | {canonical(c.old) if not isinstance(c.old, str) else c.old}"
                         f" | {canonical(c.new) if not isinstance(c.new, str) else c.new} | {c.result} | "
                         f"{c.status_code or ''} |")
    if count > limit:
        lines.append(f"| … {count - limit} more | | | | | |")
    return "\n".join(lines)
