"""One write-back run: plan, check the targets, read the org back, then send and record each outcome.

The order is what keeps the customer's org safe: nothing is asked of the org when nothing changed (the plan
reads DuckDB only); a bad target field stops the run before any write (`targets.py`); values go to the org
only after a fresh read shows the account alive, not already holding them, and not changed by someone else
since the mirror's copy (our own writes never count as a conflict); a dry run stops before sending. Each
batch (sObject Collections, 200 per call, or one Bulk API 2.0 ingest job above `bulk_threshold`) is in the
ledger as `sending` before it goes out and its outcomes right after, so a run killed at any point is
finished by the next one without writing a value twice (`ledger.py`). A collections call whose outcome is
unknown is not resent blindly: its accounts are read again and only what is missing is resent, once.

The write-back has no sensor or automation condition: it changes the customer's org, so it runs only when launched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sonora_pipeline.mirror.state import OrgIdentity, check_org
from sonora_pipeline.mirror.warehouse import Location, read_connection, write_connection
from sonora_pipeline.salesforce.client import SalesforceClient
from sonora_pipeline.salesforce.connection import safe_url
from sonora_pipeline.salesforce.rest import MAX_COLLECTION_RECORDS
from sonora_pipeline.salesforce.transport import WriteOutcomeUnknown
from sonora_pipeline.settings import Settings
from sonora_pipeline.writeback.ledger import LedgerRow, LedgerWriter
from sonora_pipeline.writeback.plan import Plan, Planned, compute_plan
from sonora_pipeline.writeback.readback import OrgRecord, read_org, same_value, timestamp_or_none
from sonora_pipeline.writeback.report import Change, WritebackReport
from sonora_pipeline.writeback.targets import TARGET_OBJECT, Target, check_targets

log = logging.getLogger(__name__)


def run_writeback(client: SalesforceClient | Callable[[], SalesforceClient], db_path: Location, settings: Settings, *,
                  run_id: str, dry_run: bool | None = None, log: Any = log) -> WritebackReport:
    """One write-back run. `client` may be a factory, called only once the plan shows there is something to
    write (a run with nothing to write needs no token); `dry_run` None means the settings' `writeback.dry_run`."""
    started = time.perf_counter()
    dry_run = settings.writeback.dry_run if dry_run is None else dry_run
    if not settings.writeback.enabled:
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
        WritebackRun(client=client, db_path=db_path, settings=settings, plan=plan,
                     ledger=LedgerWriter(db_path, run_id), report=report, dry_run=dry_run, log=log).execute()
    finally:
        report.api_calls = client.api_calls - calls_before
        report.seconds = time.perf_counter() - started
    return report


@dataclass
class WritebackRun:
    """The part of a run that talks to the org, once the plan has something to write. Its steps share the
    client, the plan, the ledger and what the read-back found, so none of them passes those around."""

    client: SalesforceClient
    db_path: Location
    settings: Settings
    plan: Plan
    ledger: LedgerWriter
    report: WritebackReport
    dry_run: bool
    log: Any
    targets: dict[str, Target] = field(default_factory=dict)       # mapping field -> the validated Account field
    org: dict[str, OrgRecord] = field(default_factory=dict)        # the read-back, by Account Id
    to_send: dict[str, list[Planned]] = field(default_factory=dict)  # Account Id -> its values to write

    def execute(self) -> None:
        wb = self.settings.writeback
        self.targets = check_targets(self.client, self.settings, self.plan.changes, self.plan.column_types)
        self._check_same_org()
        self._let_unfinished_sends_land()
        ids = self.plan.accounts
        self.report.read_method = "bulk" if len(ids) > wb.bulk_threshold else "rest"
        self.org = read_org(self.client, ids, self._field_names(), use_bulk=self.report.read_method == "bulk")
        self.log.info("Write-back: targets valid; read %d of %d Accounts back from the org (%s)", len(self.org),
                      len(ids), self.report.read_method)
        settled = self._decide()
        if self.dry_run or self.to_send:
            self.report.method = "bulk" if len(self.to_send) > wb.bulk_threshold else "collections"
        if self.dry_run:
            settled += self._dry_run_rows()
        self._record(settled)
        if self.dry_run or not self.to_send:
            return
        if self.report.method == "bulk":
            self._send_bulk()
        else:
            self._send_collections()
        self.log.info("Write-back: %s via %s, %d API calls", dict(self.report.counts), self.report.method,
                      self.client.api_calls)

    def _field_names(self) -> list[str]:
        return [t.name for t in self.targets.values()]

    def _org_value(self, p: Planned, org: dict[str, OrgRecord] | None = None) -> Any:
        current = (self.org if org is None else org).get(p.account_id)
        return current.values.get(self.targets[p.field].name) if current is not None else None

    def _check_same_org(self) -> None:
        """Model values of one org's Accounts are never pushed to another org."""
        org_id = self.client.tokens.org_id
        if org_id is not None:
            with read_connection(self.db_path) as conn:
                check_org(conn, OrgIdentity(org_id, safe_url(self.client.connection.instance_url)),
                          database=str(self.db_path))

    def _let_unfinished_sends_land(self) -> None:
        """A run that died while sending left `sending` rows. Salesforce finishes a request whose client died, so
        reading those accounts back at once could miss values still being applied and send them a second time:
        wait until the last such send is `settle_seconds` old, then the read-back sees what landed."""
        sent_at = self.plan.last_unfinished_send
        if sent_at is None:
            return
        wait = self.settings.writeback.settle_seconds - (datetime.now(UTC).replace(tzinfo=None)
                                                        - sent_at).total_seconds()
        if wait > 0:
            self.log.info("Write-back: an earlier run stopped while sending values at %s UTC; waiting %.1f s for "
                          "Salesforce to finish those requests before reading the accounts back", sent_at, wait)
            time.sleep(wait)

    def _decide(self) -> list[LedgerRow]:
        """Per account, from the read-back: deleted (an error, not sent), already holding the value (a success,
        not sent), changed by someone else since the mirror's copy (skipped and reported), or to send. Fills
        `to_send`; returns the ledger rows of the values settled without sending."""
        settled: list[LedgerRow] = []
        our_user = self.client.tokens.user_id
        by_account: dict[str, list[Planned]] = {}
        for p in self.plan.changes:
            by_account.setdefault(p.account_id, []).append(p)
        for account_id, items in by_account.items():
            current = self.org.get(account_id)
            if current is None or current.deleted:
                settled += [_row(p, "error", "ENTITY_IS_DELETED",
                                 "deleted in Salesforce; not written (the next sync marks it deleted)") for p in items]
                continue
            pending = []
            for p in items:
                if not same_value(self.targets[p.field], self._org_value(p), p.wire):
                    pending.append(p)
                elif not self.dry_run:
                    settled.append(_row(p, "success", None, "already in Salesforce; nothing sent"))
            if not pending:
                continue
            mirror_at = timestamp_or_none(pending[0].mirror_modified_at)
            if current.modified_at != mirror_at and (our_user is None or current.modified_by != our_user):
                message = (f"changed in Salesforce by {current.modified_by} at {current.modified_at} after the "
                           f"mirror's copy ({mirror_at}) the value was computed from; not written, the next sync "
                           "and model build decide again")
                for p in pending:
                    settled.append(_row(p, "skipped_conflict", None, message))
                    self.report.changes.append(Change(p.account_id, p.field, self._org_value(p), p.wire,
                                                      "skipped_conflict", None, message))
                continue
            self.to_send[account_id] = pending
        return settled

    def _dry_run_rows(self) -> list[LedgerRow]:
        rows = []
        for items in self.to_send.values():
            for p in items:
                old = self._org_value(p)
                rows.append(_row(p, "dry_run", None, f"would write {p.wire!r} (now {old!r})"))
                self.report.changes.append(Change(p.account_id, p.field, old, p.wire, "dry_run"))
        return rows

    # -- recording ------------------------------------------------------------------------------------------------

    def _record(self, rows: list[LedgerRow]) -> None:
        self.ledger.append(rows)
        self.report.counts.update(r.result for r in rows if r.result != "sending")

    def _record_sending(self, accounts: Iterable[str]) -> None:
        """Before a batch goes out: if this run dies before recording the outcome, the next run knows to wait."""
        self._record([_row(p, "sending", None, "sent; the outcome was not recorded (the run stopped)")
                      for a in accounts for p in self.to_send[a]])

    def _outcome_rows(self, items: list[Planned], success: bool, code: str | None,
                      message: str | None) -> list[LedgerRow]:
        result = "success" if success else "error"
        for p in items:
            self.report.changes.append(Change(p.account_id, p.field, self._org_value(p), p.wire, result, code,
                                              message))
        return [_row(p, result, code, message) for p in items]

    # -- sending --------------------------------------------------------------------------------------------------

    def _send_collections(self) -> None:
        accounts = list(self.to_send)
        batches = -(-len(accounts) // MAX_COLLECTION_RECORDS)
        for n, start in enumerate(range(0, len(accounts), MAX_COLLECTION_RECORDS), start=1):
            batch = accounts[start:start + MAX_COLLECTION_RECORDS]
            self._record_sending(batch)
            rows = self._collections_batch(batch)
            self.report.batches += 1
            self._record(rows)
            self.log.info("Write-back: batch %d of %d sent and recorded (%d Accounts)", n, batches, len(batch))

    def _collections_batch(self, batch: list[str], *, resend: bool = True) -> list[LedgerRow]:
        records = [self._payload(a) for a in batch]
        try:
            results = self.client.update_records(records, all_or_none=False)
        except WriteOutcomeUnknown as exc:
            if not resend:
                return [row for a in batch
                        for row in self._outcome_rows(self.to_send[a], False, "WRITE_OUTCOME_UNKNOWN", str(exc))]
            return self._confirm_then_resend(batch, exc)
        rows = []
        for a, result in zip(batch, results):
            rows += self._outcome_rows(self.to_send[a], result.success, result.status_code, result.message)
        return rows

    def _confirm_then_resend(self, batch: list[str], exc: Exception) -> list[LedgerRow]:
        """Maybe applied, maybe not: read the batch again, keep what landed, resend only the rest (once)."""
        self.log.warning("Write-back: outcome of a batch of %d unknown (%s); re-reading them before resending",
                         len(batch), exc)
        fresh = read_org(self.client, batch, self._field_names(), use_bulk=False)
        rows, again = [], []
        for a in batch:
            if a in fresh and all(same_value(self.targets[p.field], self._org_value(p, fresh), p.wire)
                                  for p in self.to_send[a]):
                rows += self._outcome_rows(self.to_send[a], True, None,
                                           "confirmed by re-reading after an unknown outcome")
            else:
                again.append(a)
        if again:
            rows += self._collections_batch(again, resend=False)
        return rows

    def _payload(self, account_id: str) -> dict[str, Any]:
        record = {"attributes": {"type": TARGET_OBJECT}, "id": account_id}
        for p in self.to_send[account_id]:
            record[self.targets[p.field].name] = p.wire  # None -> JSON null: clears the field
        return record

    def _send_bulk(self) -> None:
        self._record_sending(self.to_send)
        rows_out = []
        for account_id, items in self.to_send.items():
            row: dict[str, Any] = {"Id": account_id}
            for p in items:
                row[self.targets[p.field].name] = p.wire
            rows_out.append(row)
        successes, failures = self.client.bulk_update(TARGET_OBJECT, rows_out)
        self.log.info("Write-back: Bulk ingest job done: %d rows succeeded, %d failed", len(successes),
                      len(failures))
        self.report.batches += 1
        done: dict[str, tuple[bool, str | None, str | None]] = {}
        for s in successes:
            done[s.get("sf__Id") or s.get("Id") or ""] = (True, None, None)
        for f in failures:
            error = f.get("sf__Error") or ""
            code, _, _ = error.partition(":")
            done[f.get("sf__Id") or f.get("Id") or ""] = (False, code or "UNKNOWN", error)
        rows = []
        for account_id, items in self.to_send.items():
            success, code, message = done.get(account_id, (False, "UNPROCESSED", "not in the job's results"))
            rows += self._outcome_rows(items, success, code, message)
        self._record(rows)


def _row(p: Planned, result: str, code: str | None, message: str | None) -> LedgerRow:
    return LedgerRow(p.account_id, p.field, p.value, p.computed_at, result, code, message)
