"""The write-back against the local org over HTTPS: sync, build the model, push, read the org back.

Write requests are counted on the org's side, never by patching the client: a validation rule that records
every Account write reaching the org's store (it never rejects), the org's Bulk ingest jobs, and the org's API
usage counter. In the generated org the run-as user is also the admin user, so "someone else" edits are made
with another user's id (`org.store.update(..., user_id=...)`).
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.model.build import build_all
from sonora_pipeline.settings import Settings, SyncSettings, validate_settings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline.writeback.push import run_writeback
from sonora_pipeline.writeback.targets import TargetError
from sonora_pipeline_tests.suite_settings import suite_settings_with
from sonora_pipeline_tests.sync.helpers import client_for, log

TODAY = datetime.now(UTC).date()
SYNC = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60)
TARGETS = ("Sonora_Health_Score__c", "Sonora_eCSAT__c", "Sonora_Health_Band__c")


def settings(**writeback) -> Settings:
    """The suite's settings (the generated org's fields, its three Sonora_* write-back mappings), enabled."""
    return suite_settings_with(writeback={"enabled": True, **writeback})


class Writes:
    """Every Account write the org applies (a validation rule that only watches)."""

    def __init__(self, org: LocalOrg):
        self.ids: list[str] = []
        org.add_validation_rule("Account", "Sonora_Health_Score__c", self._see)

    def _see(self, value, row):
        self.ids.append(row["Id"])
        return None

    def __len__(self) -> int:
        return len(self.ids)


def sync(org: LocalOrg, db, *, window=None) -> None:
    org.advance_clock(SYNC.lag_seconds + 3)
    client = client_for(org)
    for name in SYNC.objects:
        sync_object(client, db, name, SYNC, window=window, partition_key=None, run_id="wb", log=log)


def resync(org: LocalOrg, db) -> None:
    now = org.clock.now()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    sync(org, db, window=(start, start + timedelta(days=3)))


def build(db, s: Settings) -> None:
    with duckdb.connect(str(db)) as conn:
        build_all(conn, s, TODAY)


def query(db, sql: str, params=None):
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def model_values(db) -> dict[str, tuple]:
    rows = query(db, """SELECT h.customer_id, h.score, e.ecsat, h.band FROM sonora.health_scores h
                        JOIN sonora.ecsat e USING (customer_id)""")
    bands = {"green": "Green", "yellow": "Yellow", "red": "Red"}
    return {r[0]: (r[1], r[2], bands.get(r[3])) for r in rows}


def org_values(org: LocalOrg) -> dict[str, tuple]:
    rows = org.store.conn.execute(
        'SELECT "Id", "Sonora_Health_Score__c", "Sonora_eCSAT__c", "Sonora_Health_Band__c", "IsDeleted" '
        'FROM "Account"').fetchall()
    as_float = lambda v: None if v is None else float(v)  # the org keeps exact decimals  # noqa: E731
    return {r[0]: (as_float(r[1]), as_float(r[2]), r[3]) for r in rows if not r[4]}


def used(org: LocalOrg) -> int:
    return org.quota.snapshot().used


def run(org, db, s, **kwargs):
    return run_writeback(client_for(org), db, s, run_id=kwargs.pop("run_id", "test"), log=kwargs.pop("log", log),
                         **kwargs)


READ_BACK = "Accounts back from the org ("  # logged after the read-back, before anything is sent


def batch_recorded(n: int) -> str:
    """Logged once the n-th collections batch (1-based) is sent and its outcomes are in the ledger."""
    return f"batch {n} of "


class OnLogLine:
    """The run's log, which also does `action` once, when the run logs a line containing `text`. A test makes
    something happen at a named point of a run (the org changing between the read-back and the first write, the
    process dying between batches) from the run's own progress lines, with no hook in the product."""

    def __init__(self, text: str, action):
        self.text, self.action, self.fired = text, action, False

    def _see(self, message: str, args: tuple) -> None:
        if not self.fired and self.text in (message % args if args else message):
            self.fired = True
            self.action()

    def info(self, message, *args):
        log.info(message, *args)
        self._see(message, args)

    def warning(self, message, *args):
        log.warning(message, *args)
        self._see(message, args)


def ledger(db, where: str = "true") -> list[tuple]:
    """Outcome rows (the `sending` rows written before each batch are left out)."""
    return query(db, f"SELECT account_id, field, value, result, status_code, message, run_id "
                     f"FROM sonora.writeback_ledger WHERE result <> 'sending' AND ({where}) ORDER BY attempted_at")


class SyncedTemplate:
    """An org mirrored and modelled once per module, handed to each test as a copy of its own: a forked org
    (the same org id, records and clock, its own HTTPS server, its own database from its first write) and a copy
    of the warehouse file. The sync and model build are real; they are just not repeated for every test (they
    were ~70% of this file's time). The template org is stopped once synced and never written again."""

    def __init__(self, directory, **options):
        self.org = LocalOrg(state_dir=directory / "template-org", **options).start()
        self.db = directory / "template.duckdb"
        try:
            sync(self.org, self.db)
            build(self.db, settings())
        finally:
            self.org.stop()

    def copy_for(self, tmp_path, name: str):
        """(org, db) for one test: the caller stops the org."""
        org = LocalOrg(records_of=self.org, org_id=self.org.org_id, now=self.org.clock.now(),
                       state_dir=tmp_path / f"{name}-org").start()
        db = tmp_path / f"{name}.duckdb"
        shutil.copyfile(self.db, db)
        wal = self.db.with_name(self.db.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, db.with_name(db.name + ".wal"))
        return org, db


@pytest.fixture(scope="module")
def ready_template(tmp_path_factory):
    return SyncedTemplate(tmp_path_factory.mktemp("ready"), records=400, seed=3)


@pytest.fixture(scope="module")
def wide_template(tmp_path_factory):
    return SyncedTemplate(tmp_path_factory.mktemp("wide"), records=600, seed=5, shape="accounts")


@pytest.fixture
def ready(ready_template, tmp_path):
    """An org of the test's own (400 records), mirrored and modelled; model values set on Account fields are
    none."""
    org, db = ready_template.copy_for(tmp_path, "m")
    yield org, db
    org.stop()


@pytest.fixture
def wide(wide_template, tmp_path):
    """An org of the test's own with ~580 Accounts (more than two collections batches), mirrored and modelled."""
    org, db = wide_template.copy_for(tmp_path, "w")
    yield org, db
    org.stop()


def assert_org_has_model_values(org, db, accounts=None):
    model, current = model_values(db), org_values(org)
    for aid in accounts or model:
        score, ecsat, band = model[aid]
        got = current[aid]
        assert got[0] == (None if score is None else round(score, 2)), aid
        assert got[1] == (None if ecsat is None else round(ecsat, 2)), aid
        assert got[2] == band, aid


# -- the core -------------------------------------------------------------------------------------------------

def test_values_land_and_an_unchanged_run_makes_no_call(ready):
    org, db = ready
    s = settings()
    writes = Writes(org)
    report = run(org, db, s)
    assert report.status == "written" and report.method == "collections" and report.read_method == "rest"
    planned = sum(1 for v in model_values(db).values() for x in v if x is not None)
    assert report.counts["success"] == planned > 0 and report.counts["error"] == 0
    assert_org_has_model_values(org, db)
    assert len(writes) == len(set(writes.ids)) == len({a for a, v in model_values(db).items() if any(v)})
    # describe + one query per 200 Ids + one PATCH per 200 records
    accounts = len(set(writes.ids))
    assert report.api_calls == 1 + 2 * -(-accounts // 200)

    before, calls = used(org), len(writes)
    again = run(org, db, s)
    assert again.status == "nothing_to_write" and again.api_calls == 0 and used(org) == before
    assert len(writes) == calls

    # The sync sees our writes as changes; after it and a model build, still nothing to write.
    resync(org, db)
    build(db, s)
    assert query(db, "SELECT count(*) FROM salesforce.account WHERE \"Sonora_Health_Score__c\" IS NOT NULL")[0][0] > 0
    before = used(org)
    third = run(org, db, s)
    assert third.status == "nothing_to_write" and third.api_calls == 0 and used(org) == before
    assert len(writes) == calls


def test_our_own_writes_are_not_conflicts_and_nulls_clear_fields(ready):
    org, db = ready
    run(org, db, settings())
    # New band thresholds, model rebuilt without a sync: the mirror still has the pre-write LastModifiedDate,
    # the org has ours. Bands mapped without 'red' are cleared (JSON null).
    s = suite_settings_with(health={"bands": {"green": 50, "yellow": 30}}, writeback={
        "enabled": True, "mappings": [{"column": "health_scores.band", "field": "Sonora_Health_Band__c",
                                       "values": {"green": "Green", "yellow": "Yellow"}}]})
    build(db, s)
    report = run(org, db, s, run_id="second")
    assert report.counts["skipped_conflict"] == 0 and report.counts["success"] > 0
    bands = dict(query(db, "SELECT customer_id, band FROM sonora.health_scores"))
    current = org_values(org)
    for aid, band in bands.items():
        assert current[aid][2] == {"green": "Green", "yellow": "Yellow"}.get(band), aid
    assert any(b == "red" for b in bands.values())


def test_write_back_off_sends_nothing(ready):
    org, db = ready
    writes = Writes(org)
    before = used(org)
    s = validate_settings({"writeback": {"enabled": False, "dry_run": False, "bulk_threshold": 1}})
    report = run(org, db, s)
    assert report.status == "disabled" and report.api_calls == 0
    assert used(org) == before and len(writes) == 0 and not org.bulk.ingest_jobs


def test_the_asset_reports_disabled_with_the_suite_settings(ready, tmp_path):
    """The Dagster asset with the suite's settings file (no writeback section): runs, reports, sends nothing."""
    import dagster as dg

    from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
    from sonora_pipeline.defs.settings import SettingsResource
    from sonora_pipeline.defs.writeback.assets import account_scores

    org, db = ready
    writes = Writes(org)
    before = used(org)
    c = org.credentials
    result = dg.materialize([account_scores], resources={
        "salesforce": SalesforceResource(instance_url=c.instance_url, consumer_key=c.consumer_key,
                                         consumer_secret=c.consumer_secret, ca_bundle=c.ca_bundle),
        "warehouse": WarehouseResource(path=str(db)), "settings": SettingsResource()})
    assert result.success
    meta = result.asset_materializations_for_node("writeback__account_scores")[0].metadata
    assert meta["status"].value == "disabled"
    assert used(org) == before and len(writes) == 0 and not org.bulk.ingest_jobs


def test_per_row_errors_are_recorded_and_the_rest_lands(ready):
    org, db = ready
    writes = Writes(org)
    accounts = sorted(model_values(db))
    blocked, deleted_early, deleted_late = accounts[0], accounts[1], accounts[2]
    org.add_validation_rule("Account", "Sonora_eCSAT__c",
                            lambda value, row: "Sonora eCSAT is locked" if row["Id"] == blocked else None)
    org.delete("Account", deleted_early)  # seen by the fresh read: never sent

    # deleted after the read-back, before the first write: the org itself answers ENTITY_IS_DELETED
    delete_late = OnLogLine(READ_BACK, lambda: org.delete("Account", deleted_late))
    report = run(org, db, settings(), log=delete_late)
    assert delete_late.fired
    rows = ledger(db)
    by_account = {}
    for a, _field, _value, result, code, _message, _ in rows:
        by_account.setdefault(a, set()).add((result, code))
    assert by_account[blocked] == {("error", "FIELD_CUSTOM_VALIDATION_EXCEPTION")}
    assert by_account[deleted_early] == {("error", "ENTITY_IS_DELETED")}
    assert by_account[deleted_late] == {("error", "ENTITY_IS_DELETED")}
    assert any("locked" in (r[5] or "") for r in rows if r[0] == blocked)
    others = [a for a in accounts if a not in (blocked, deleted_early, deleted_late)]
    assert all(by_account.get(a, {("success", None)}) == {("success", None)} for a in others)
    assert_org_has_model_values(org, db, others)
    assert report.counts["error"] > 0 and report.counts["success"] > 0

    # The failed row is retried on the next run once the rule is gone; the deleted ones stay errors.
    org.store.validation_rules.pop(("Account", "Sonora_eCSAT__c"))
    n = len(writes)
    again = run(org, db, settings(), run_id="retry")
    assert again.counts["success"] == sum(1 for x in model_values(db)[blocked] if x is not None)
    assert writes.ids[n:] == [blocked]


def test_a_field_revoked_mid_run_is_reported_per_row_then_retried(ready):
    org, db = ready

    revoke = OnLogLine(READ_BACK, lambda: org.revoke_field_access("Account", "Sonora_eCSAT__c"))
    report = run(org, db, settings(), log=revoke)
    assert revoke.fired
    errors = [r for r in ledger(db) if r[3] == "error"]
    assert errors and {r[4] for r in errors} == {"INVALID_FIELD"}
    assert report.counts["success"] > 0  # accounts without an eCSAT value to write landed
    # Still revoked: the next run stops at the target check, before any write.
    with pytest.raises(TargetError, match=r"Account\.Sonora_eCSAT__c does not exist or is not visible"):
        run(org, db, settings(), run_id="revoked")
    org.grant_field_access("Account", "Sonora_eCSAT__c")
    run(org, db, settings(), run_id="granted")
    assert_org_has_model_values(org, db)


@pytest.mark.parametrize("mapping, message", [
    ({"column": "customers.name", "field": "ARR_Band__c"},
     "Account.ARR_Band__c is a formula field (not updateable); choose a writable field"),
    ({"column": "health_scores.score", "field": "Sonora_Helth_Score__c"},
     "Account.Sonora_Helth_Score__c does not exist or is not visible to the run-as user"),
    ({"column": "health_scores.band", "field": "Sonora_Health_Band__c",
      "values": {"green": "Green", "yellow": "Amber", "red": "Red"}},
     "Account.Sonora_Health_Band__c does not allow the value(s) 'Amber' (allowed: Green, Yellow, Red)"),
    ({"column": "customers.name", "field": "Short_Note__c"},
     "Account.Short_Note__c holds at most 8 characters but customers.name has a value of"),
    ({"column": "health_scores.score", "field": "Sonora_Health_Band__c"},
     "Account.Sonora_Health_Band__c is a picklist field but health_scores.score is a number"),
], ids=["formula", "missing", "picklist", "too-long", "wrong-type"])
@pytest.mark.bad_input
def test_bad_targets_stop_before_any_write(ready, mapping, message):
    org, db = ready
    org.add_field("Account", "Short_Note__c", "string", "Short Note", length=8)
    writes = Writes(org)
    before = used(org)
    s = settings(mappings=[{"column": "health_scores.score", "field": "Sonora_Health_Score__c"}, mapping])
    with pytest.raises(TargetError) as raised:
        run(org, db, s)
    assert message in str(raised.value)
    assert "writeback.mappings[1].field" in str(raised.value)
    assert used(org) - before == 1  # the describe
    assert len(writes) == 0 and not org.bulk.ingest_jobs
    assert ledger(db) == []


def test_dry_run_writes_nothing_and_reports_the_plan(ready):
    org, db = ready
    writes = Writes(org)
    report = run(org, db, settings(dry_run=True))
    assert report.status == "dry_run" and len(writes) == 0 and not org.bulk.ingest_jobs
    planned = {(a, f): new for a, values in model_values(db).items()
               for f, new in zip(TARGETS, values) if new is not None}
    shown = {(c.account_id, c.field): c.new for c in report.changes}
    assert set(shown) == set(planned)
    assert all(c.old is None and c.result == "dry_run" for c in report.changes)
    assert {r[3] for r in ledger(db)} == {"dry_run"}
    # Run config overrides the setting, and a dry run does not count as pushed.
    real = run(org, db, settings(dry_run=True), dry_run=False, run_id="real")
    assert real.counts["success"] == len(planned)
    assert_org_has_model_values(org, db)


def test_someone_elses_change_is_skipped_and_reported(ready):
    org, db = ready
    other_user = next(u for u in org.generated.user_ids if u != org.generated.run_as_user_id)
    target = sorted(model_values(db))[5]
    org.advance_clock(2)
    org.store.update("Account", target, {"Description": "edited by a colleague"}, user_id=other_user)
    report = run(org, db, settings())
    assert report.counts["skipped_conflict"] > 0
    skipped = {r[0] for r in ledger(db) if r[3] == "skipped_conflict"}
    assert skipped == {target}
    assert org_values(org)[target] == (None, None, None)
    assert any(c.account_id == target and c.result == "skipped_conflict" and other_user in c.message
               for c in report.changes)
    # After the sync brings the colleague's change in, the value is written.
    resync(org, db)
    build(db, settings())
    again = run(org, db, settings(), run_id="after-sync")
    assert again.counts["skipped_conflict"] == 0
    assert_org_has_model_values(org, db, [target])


# -- crashes and large sets -----------------------------------------------------------------------------------

@pytest.mark.fault
def test_a_run_killed_half_way_then_rerun_writes_each_value_once(wide):
    org, db = wide
    writes = Writes(org)
    expected = {a for a, v in model_values(db).items() if any(x is not None for x in v)}
    assert len(expected) > 200  # two collections batches at least

    def die():
        raise KeyboardInterrupt("killed after the first batch")

    with pytest.raises(KeyboardInterrupt):
        run(org, db, settings(), log=OnLogLine(batch_recorded(1), die), run_id="killed")
    assert len(writes) == 200
    first = set(writes.ids)
    sent = query(db, "SELECT DISTINCT account_id FROM sonora.writeback_ledger WHERE result = 'sending'")
    assert {a for (a,) in sent} == first  # recorded before the batch went out
    # Worst case: the crash came between sending the first batch and recording it.
    with duckdb.connect(str(db)) as conn:
        conn.execute("DELETE FROM sonora.writeback_ledger WHERE run_id = 'killed'")
    report = run(org, db, settings(), run_id="rerun")
    assert Counter(writes.ids) == Counter({a: 1 for a in expected})
    assert report.counts["error"] == 0 and report.batches == -(-(len(expected) - len(first)) // 200)
    assert all(m == "already in Salesforce; nothing sent" for a, f, v, r, c, m, _ in ledger(db) if a in first)
    assert_org_has_model_values(org, db)
    assert run(org, db, settings(), run_id="third").api_calls == 0


def test_an_unknown_outcome_is_checked_before_resending(ready):
    """A 503 on the PATCH (the org may or may not have applied it): re-read, resend only what is missing."""
    org, db = ready
    writes = Writes(org)
    org.set_faults(next_errors=1, path_contains="/composite/sobjects")
    report = run(org, db, settings())
    assert report.counts["error"] == 0
    assert Counter(writes.ids) == Counter(set(writes.ids))
    assert_org_has_model_values(org, db)


def test_a_large_set_goes_through_bulk_ingest_with_nulls(wide):
    org, db = wide
    writes = Writes(org)
    report = run(org, db, settings(bulk_threshold=100))
    assert report.method == "bulk" and report.read_method == "bulk" and report.counts["error"] == 0
    jobs = list(org.bulk.ingest_jobs.values())
    assert [j.operation for j in jobs] == ["update"] and jobs[0].object == "Account"
    assert_org_has_model_values(org, db)
    assert Counter(writes.ids) == Counter(set(writes.ids))
    assert report.api_calls <= 15
    # Clearing: a band no longer mapped is sent as #N/A and the field becomes null.
    s = settings(bulk_threshold=100, mappings=[{"column": "health_scores.band", "field": "Sonora_Health_Band__c",
                                                "values": {"yellow": "Yellow"}}])
    cleared = run(org, db, s, run_id="clear")
    assert cleared.method == "bulk" and cleared.counts["error"] == 0
    assert b"#N/A" in org.bulk.ingest_jobs[list(org.bulk.ingest_jobs)[-1]].data
    bands = dict(query(db, "SELECT customer_id, band FROM sonora.health_scores"))
    current = org_values(org)
    assert all(current[a][2] == ("Yellow" if b == "yellow" else None) for a, b in bands.items())
