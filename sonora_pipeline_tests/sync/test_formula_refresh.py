"""Formula freshness: a formula's value changes without SystemModstamp moving, so incremental windows
leave it stale; the formula-only refresh fixes it without moving the sync cursor or touching anything else."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import duckdb

from sonora_pipeline.mirror.commit import commit_formula_refresh
from sonora_pipeline.mirror.spool import Spool
from sonora_pipeline.mirror.warehouse import write_connection
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import describe_schema, sync_object
from sonora_pipeline.sync.formulas import refresh_all_formulas, refresh_formulas
from sonora_pipeline_tests.sync.helpers import client_for, differences, log

OBJECTS = ("Account", "Opportunity", "User")
SETTINGS = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60)


def _soql(org, soql):
    return client_for(org).query_pages(soql, include_deleted=False)


def _records(org, soql):
    return [r for page in _soql(org, soql) for r in page]


def _sync(org, db, *, window=None, settings=SETTINGS):
    client = client_for(org)
    for name in OBJECTS:
        sync_object(client, db, name, settings, window=window, partition_key=None, run_id="t", log=log)


def _settle(org):
    org.advance_clock(SETTINGS.lag_seconds + 3)


def _today(org):
    start = org.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _mirror(db, sql, params=()):
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _account_with_opportunities(org):
    """An Account with a contract end date and live opportunities, and an active user who does not own it."""
    acct, owner = org.store.conn.execute(
        'SELECT a."Id", a."OwnerId" FROM "Account" a WHERE NOT a."IsDeleted" AND a."Contract_End_Date__c" IS NOT NULL '
        'AND (SELECT count(*) FROM "Opportunity" o WHERE o."AccountId" = a."Id" AND NOT o."IsDeleted") >= 2 '
        'ORDER BY a."Id" LIMIT 1').fetchone()
    other = org.store.conn.execute('SELECT "Id" FROM "User" WHERE "IsActive" AND "Id" != ? ORDER BY "Id" LIMIT 1',
                                   [owner]).fetchone()[0]
    return acct, owner, other


def test_the_local_org_computes_formulas_when_read(org):
    """Reassigning an Account changes its Opportunities' owner formula, and a new day changes the days to
    renewal, with neither record's SystemModstamp moving."""
    acct, _, other = _account_with_opportunities(org)
    other_name = org.store.get("User", other)["Name"]
    opps = f"SELECT Id, SystemModstamp, Account_Owner_Name__c FROM Opportunity WHERE AccountId = '{acct}'"
    before = _records(org, opps)
    org.update("Account", acct, {"OwnerId": other})
    after = _records(org, opps)
    assert {r["Account_Owner_Name__c"] for r in after} == {other_name} != {r["Account_Owner_Name__c"] for r in before}
    assert [r["SystemModstamp"] for r in after] == [r["SystemModstamp"] for r in before]

    account = f"SELECT SystemModstamp, Contract_End_Date__c, Days_To_Renewal__c FROM Account WHERE Id = '{acct}'"
    today = _records(org, account)[0]
    end = datetime.fromisoformat(today["Contract_End_Date__c"]).date()
    assert today["Days_To_Renewal__c"] == (end - org.clock.now().date()).days
    org.advance_clock(86_400)
    tomorrow = _records(org, account)[0]
    assert tomorrow["Days_To_Renewal__c"] == today["Days_To_Renewal__c"] - 1
    assert tomorrow["SystemModstamp"] == today["SystemModstamp"]
    described = {f["name"]: f for f in client_for(org).describe("Opportunity")["fields"]}
    assert described["Account_Owner_Name__c"]["calculated"] is True


def test_incremental_sync_leaves_formulas_stale_and_the_refresh_fixes_them(org, tmp_path):
    db = tmp_path / "m.duckdb"
    _settle(org)
    _sync(org, db)
    assert all(differences(org, db, name) == [] for name in OBJECTS)
    acct, owner, other = _account_with_opportunities(org)
    renamed = org.store.conn.execute(  # an owner of other accounts, renamed: their opportunities change too
        'SELECT "OwnerId" FROM "Account" WHERE NOT "IsDeleted" AND "OwnerId" NOT IN (?, ?) AND "Id" IN '
        '(SELECT "AccountId" FROM "Opportunity" WHERE NOT "IsDeleted") ORDER BY "OwnerId" LIMIT 1',
        [owner, other]).fetchone()[0]
    org.advance_clock(86_400)  # a new day: every Days_To_Renewal__c moves by one
    org.update("Account", acct, {"OwnerId": other})
    org.update("User", renamed, {"FirstName": "Renamed", "LastName": "Owner"})
    _settle(org)
    _sync(org, db, window=_today(org))

    # The incremental windows read the Account and the User that changed, not the Opportunities or the other
    # Accounts, whose formula values changed without their SystemModstamp moving.
    stale_opps = [p for p in differences(org, db, "Opportunity") if ".Account_Owner_Name__c:" in p]
    stale_accounts = [p for p in differences(org, db, "Account") if ".Days_To_Renewal__c:" in p]
    assert stale_opps and stale_accounts
    fields = {re.match(r"\w+ \w+\.(\w+):", p).group(1)
              for p in differences(org, db, "Opportunity") + differences(org, db, "Account")}
    assert fields == {"Account_Owner_Name__c", "Days_To_Renewal__c"}
    assert not any(acct in p for p in stale_accounts)  # the reassigned Account itself was re-read
    assert _mirror(db, 'SELECT DISTINCT "Account_Owner_Name__c" FROM salesforce.opportunity WHERE "AccountId" = ?',
                   [acct]) != [(org.store.get("User", other)["Name"],)]
    state_before = _mirror(db, "SELECT * FROM salesforce._sync_state ORDER BY object_name")
    others_before = _mirror(db, 'SELECT * EXCLUDE ("Account_Owner_Name__c") FROM salesforce.opportunity ORDER BY "Id"')
    opps_in_mirror = len(others_before)

    client = client_for(org)
    calls = client.api_calls
    results = {r.object_name: r for r in refresh_all_formulas(client, db, OBJECTS, run_id="refresh", log=log)}

    assert all(differences(org, db, name) == [] for name in OBJECTS)
    assert results["Opportunity"].formula_fields == ["Account_Owner_Name__c"]
    assert set(results["Account"].formula_fields) == {"ARR_Band__c", "Days_To_Renewal__c"}
    assert results["Opportunity"].rows_changed >= len(stale_opps) > 0
    assert results["Account"].rows_changed >= len(stale_accounts)
    assert results["User"].formula_fields == [] and results["User"].skipped == "no formula field"
    assert results["User"].api_calls == 1  # its describe
    # describe + Bulk job (create, poll, one result page) for each object with formulas
    assert sum(r.api_calls for r in results.values()) == client.api_calls - calls <= 1 + 2 * 5
    # Only the formula columns moved; the cursor did not; no row was added.
    state_after = _mirror(db, "SELECT * EXCLUDE (api_calls_total) FROM salesforce._sync_state ORDER BY object_name")
    assert state_after == [row[:6] + row[7:] for row in state_before]
    assert _mirror(db, 'SELECT * EXCLUDE ("Account_Owner_Name__c") FROM salesforce.opportunity ORDER BY "Id"'
                   ) == others_before
    assert len(others_before) == opps_in_mirror
    logged = _mirror(db, "SELECT object_name, rows_upserted, api_calls FROM salesforce._sync_windows "
                         "WHERE kind = 'formula_refresh' ORDER BY object_name")
    assert [(name, changed) for name, changed, _ in logged] == [
        ("Account", results["Account"].rows_changed), ("Opportunity", results["Opportunity"].rows_changed)]
    assert all(calls > 0 for _, _, calls in logged)
    # A second refresh reads again and changes nothing.
    again = refresh_formulas(client_for(org), db, "Opportunity", run_id="again", log=log)
    assert again.rows_changed == 0 and again.rows_read == results["Opportunity"].rows_read


def test_the_refresh_adds_no_rows_and_leaves_deleted_rows_alone(org, tmp_path):
    db = tmp_path / "m.duckdb"
    active = SETTINGS.model_copy(update={"initial_import": "active"})
    _settle(org)
    _sync(org, db, settings=active)
    mirrored = _mirror(db, "SELECT count(*) FROM salesforce.opportunity")[0][0]
    assert mirrored < org.store.count("Opportunity", include_deleted=False)  # 'active' took a subset
    # A mirrored Opportunity is deleted (the mirror keeps its last known values), then its Account changes owner.
    rid, acct, known = _mirror(db, 'SELECT o."Id", o."AccountId", o."Account_Owner_Name__c" FROM salesforce.opportunity o '
                                   'WHERE NOT o."IsDeleted" AND (SELECT count(*) FROM salesforce.opportunity p WHERE '
                                   'p."AccountId" = o."AccountId" AND NOT p."IsDeleted") >= 2 ORDER BY o."Id" LIMIT 1')[0]
    org.delete("Opportunity", rid)
    _settle(org)
    _sync(org, db, window=_today(org), settings=active)
    owner = org.store.get("Account", acct)["OwnerId"]
    other = org.store.conn.execute('SELECT "Id" FROM "User" WHERE "IsActive" AND "Id" != ? ORDER BY "Id" LIMIT 1',
                                   [owner]).fetchone()[0]
    org.update("Account", acct, {"OwnerId": other})
    mirrored = _mirror(db, "SELECT count(*) FROM salesforce.opportunity")[0][0]
    result = refresh_formulas(client_for(org), db, "Opportunity", run_id="r", log=log)
    assert result.rows_read == org.store.count("Opportunity", include_deleted=False)
    assert _mirror(db, "SELECT count(*) FROM salesforce.opportunity")[0][0] == mirrored
    assert _mirror(db, 'SELECT "IsDeleted", "Account_Owner_Name__c" FROM salesforce.opportunity WHERE "Id" = ?',
                   [rid]) == [(True, known)]
    live = _mirror(db, 'SELECT DISTINCT "Account_Owner_Name__c" FROM salesforce.opportunity WHERE "AccountId" = ? '
                       'AND NOT "IsDeleted"', [acct])
    assert live == [(org.store.get("User", other)["Name"],)]  # its live siblings are refreshed


def test_a_row_a_sync_committed_after_the_refresh_began_reading_keeps_the_syncs_value(org, tmp_path):
    """The refresh never overwrites what a sync wrote after the refresh's read began (it may be newer)."""
    db = tmp_path / "m.duckdb"
    _settle(org)
    _sync(org, db)
    schema = describe_schema(client_for(org), "Opportunity")
    rid, stamp, value = _mirror(db, 'SELECT "Id", strftime("SystemModstamp", \'%Y-%m-%dT%H:%M:%S.%g\') || \'Z\', '
                                    '"Account_Owner_Name__c" FROM salesforce.opportunity WHERE NOT "IsDeleted" '
                                    'ORDER BY "Id" LIMIT 1')[0]
    narrow = type(schema)(schema.object_name, schema.label,
                          [f for f in schema.fields if f.name in ("Id", "SystemModstamp", "Account_Owner_Name__c")])

    def commit(read_started):
        spool = Spool.create(tmp_path / "spool", "Opportunity", narrow.field_names)
        try:
            spool.add_csv_page(f'"Id","SystemModstamp","Account_Owner_Name__c"\n"{rid}","{stamp}","Someone Else"\n'
                               .encode(), 1)
            with write_connection(db) as conn:
                return commit_formula_refresh(conn, narrow, spool, ["Account_Owner_Name__c"],
                                              read_started=read_started, api_calls=0, run_id="t")
        finally:
            spool.remove()

    assert commit(datetime(2000, 1, 1)) == 0  # every row was committed after that "read"
    assert _mirror(db, 'SELECT "Account_Owner_Name__c" FROM salesforce.opportunity WHERE "Id" = ?', [rid])[0][0] == value
    assert commit(datetime(2100, 1, 1)) == 1
    assert _mirror(db, 'SELECT "Account_Owner_Name__c" FROM salesforce.opportunity WHERE "Id" = ?',
                   [rid])[0][0] == "Someone Else"


def test_the_dagster_job_refreshes_with_its_cost_as_metadata_and_the_schedule_runs_daily(org, tmp_path):
    import dagster as dg

    from sonora_pipeline.defs.salesforce.formula_refresh import (
        salesforce_formula_refresh_job,
        salesforce_formula_refresh_schedule,
    )
    from sonora_pipeline_tests.sync.test_dagster_sync import resources_for

    db = tmp_path / "m.duckdb"
    _settle(org)
    _sync(org, db)
    org.advance_clock(86_400)  # every Days_To_Renewal__c is a day off now
    assert any(".Days_To_Renewal__c:" in p for p in differences(org, db, "Account"))
    with dg.instance_for_test() as instance:
        result = salesforce_formula_refresh_job.execute_in_process(
            instance=instance, resources=resources_for(org, db))
        assert result.success
        output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
        meta = {k: v.value for k, v in output.event_specific_data.metadata.items()}
        observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert differences(org, db, "Account") == [] and differences(org, db, "Opportunity") == []
    assert meta["objects_with_formulas"] == "Account, Opportunity"
    assert meta["api_calls"] > 0 and meta["rows_read"] > 0 and meta["rows_changed"] > 0
    assert meta["api_calls_per_100k_records"] > 0
    observed = {e.asset_key.to_user_string() for e in observations}
    assert {"salesforce/account", "salesforce/opportunity"} <= observed
    assert salesforce_formula_refresh_schedule.cron_schedule == "45 0 * * *"
    assert salesforce_formula_refresh_schedule.execution_timezone == "UTC"
    assert salesforce_formula_refresh_schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # SONORA_AUTOMATION unset
    # Entered and left like the daemon does: a schedule context left open keeps Dagster's state storage pointing
    # at an instance that is gone, and later definition loads in this process fail.
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 3, 2, 0, 45)) as context:
        requests = salesforce_formula_refresh_schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].job_name in (None, "salesforce_formula_refresh_job")


def test_the_refresh_formulas_command(org, tmp_path):
    import subprocess

    from sonora_pipeline_tests.sync.helpers import sync_command

    db = tmp_path / "m.duckdb"
    settings_file = tmp_path / "sonora.yaml"
    settings_file.write_text("sync:\n  lag_seconds: 5\n")
    command, env = sync_command(org, db, settings_file)
    refresh = command[:3] + ["refresh-formulas"]
    missing = subprocess.run(refresh, env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "run `sonora-pipeline sync` first" in missing.stderr
    _settle(org)
    synced = subprocess.run(command + ["--objects", "Account,Opportunity"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert synced.returncode == 0, synced.stderr
    org.advance_clock(86_400)
    assert any(".Days_To_Renewal__c:" in p for p in differences(org, db, "Account"))
    done = subprocess.run(refresh, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^asset +changed +read +API calls +formula fields$", done.stdout, re.M), done.stdout
    assert re.search(r"^salesforce/account +[\d,]+ +[\d,]+ +\d+ +\S", done.stdout, re.M), done.stdout
    assert "Formula refresh:" in done.stdout and "(Account, Opportunity)" in done.stdout
    assert differences(org, db, "Account") == [] and differences(org, db, "Opportunity") == []
