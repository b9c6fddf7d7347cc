"""Orgs unlike the demo, and values at the edges of what Salesforce stores.

- Varieties of the local org (standard fields only, nulls written as `""`, standard fields the run-as user
  cannot read) are synced through the real `sonora-pipeline sync --lookback all` with default settings
  (nothing mapped that a fresh org lacks) and compared with the org field by field, every object.
- Numbers are exact: 18 digits of currency arrive in the mirror as the same Decimal, by Bulk and by REST,
  and a warehouse made when number columns were DOUBLE is retyped to DECIMAL on the next sync.
(Column types from describe and the null forms on load, without an org: unit/test_describe.py.)
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import duckdb
import pytest

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.sync.helpers import OBJECTS, client_for, differences, log, sync_command

# Default settings but for the sync's pace and path: the defaults name no custom field, so any org's standard
# schema satisfies them.
FRESH_ORG_SETTINGS = """\
sync: {initial_import: all, lag_seconds: 5, bulk_threshold: %(bulk_threshold)d}
"""
HIDDEN = {"Account": ["AnnualRevenue", "Rating"], "Contact": ["Birthdate"]}
VARIETIES = {
    # bulk_threshold 1: every object is read through Bulk CSV, so every null crosses the wire as "".
    "custom-fields-nulls-quoted": (dict(csv_nulls="quoted"), 1),
    # the default threshold: a small org is read through REST. (Standard fields only, with "" nulls and no
    # settings file at all, is the next test.)
    "hidden-standard-fields": (dict(hidden_fields=HIDDEN), 5000),
}


def _mirrored_objects(org: LocalOrg, db) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'salesforce'").fetchall()}
    return [o.name for o in org.catalog.objects() if table_name_for(o.name) in tables]


def _columns(db, object_name: str) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return dict(conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'salesforce' "
            "AND table_name = ?", [table_name_for(object_name)]).fetchall())


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("variety", list(VARIETIES))
def test_each_org_variety_syncs_with_default_settings_and_equals_the_org(tmp_path, variety, local_org_factory):
    options, bulk_threshold = VARIETIES[variety]
    org = local_org_factory(records=400, seed=5, **options)
    org.advance_clock(10)
    db = tmp_path / "m.duckdb"
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(FRESH_ORG_SETTINGS % {"bulk_threshold": bulk_threshold})
    command, env = sync_command(org, db, settings_file)
    done = _run(command, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    mirrored = _mirrored_objects(org, db)
    assert set(OBJECTS) <= set(mirrored), mirrored
    for name in mirrored:
        assert differences(org, db, name) == [], name
    if not options.get("custom_fields", True):
        assert "Subscription__c" not in mirrored
        for name in mirrored:
            assert not [c for c in _columns(db, name) if c.endswith("__c")], name
    for object_name, hidden in options.get("hidden_fields", {}).items():
        columns = {c.lower() for c in _columns(db, object_name)}
        assert not {h.lower() for h in hidden} & columns, f"{object_name} mirrors a field the user cannot read"



def test_a_fresh_org_syncs_and_models_with_no_settings_file(tmp_path, local_org_factory):
    """The issue's first-hour path on an org like a new customer's: standard fields only, Bulk nulls written as
    `""`, and no settings file at all (SONORA_CONFIG unset): `sync --lookback all` then `model` succeed and the
    mirror equals the org. 24,000 records put Contact and Task over the default Bulk threshold (5,000), so
    `""` nulls cross the wire in Bulk CSV, while the smaller objects go through REST."""
    org = local_org_factory(records=24_000, seed=9, custom_fields=False, csv_nulls="quoted")
    org.advance_clock(300)  # past the default lag (120 s): every record is due
    db = tmp_path / "m.duckdb"
    command, env = sync_command(org, db, tmp_path / "unused.yaml")
    env.pop("SONORA_CONFIG")
    done = _run(command, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as conn:
        methods = dict(conn.execute("SELECT object_name, string_agg(DISTINCT method, '+') FROM salesforce._sync_windows "
                                    "WHERE kind = 'initial' GROUP BY 1").fetchall())
    assert methods["Contact"] == "bulk" and methods["Account"] == "rest", methods
    mirrored = _mirrored_objects(org, db)
    assert set(OBJECTS) <= set(mirrored) and "Subscription__c" not in mirrored, mirrored
    for name in mirrored:
        assert differences(org, db, name) == [], name
        assert not [c for c in _columns(db, name) if c.endswith("__c")], name
    model = _run([sys.executable, "-m", "sonora_pipeline.cli", "model"], env)
    assert model.returncode == 0, model.stdout[-3000:] + model.stderr[-3000:]
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM sonora.customers").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM sonora.health_scores WHERE score IS NOT NULL").fetchone()[0] > 0


EDGE_REVENUES = (Decimal("999999999999999999"), Decimal("123456789012345678"), Decimal("-999999999999999999"))
EDGE_AMOUNT = Decimal("9999999999999999.99")  # Opportunity.Amount: precision 18, scale 2


def _edge_records(org: LocalOrg) -> tuple[list[str], str]:
    accounts = [org.create("Account", {"Name": f"Edge {i}", "AnnualRevenue": str(v)})
                for i, v in enumerate(EDGE_REVENUES)]
    opportunity = org.create("Opportunity", {"Name": "Edge deal", "StageName": "Prospecting",
                                             "CloseDate": "2030-01-01", "AccountId": accounts[0],
                                             "Amount": EDGE_AMOUNT})
    return accounts, opportunity


def _mirror_value(db, object_name: str, record_id: str, field: str):
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f'SELECT "{field}" FROM salesforce."{table_name_for(object_name)}" WHERE "Id" = ?',
                            [record_id]).fetchone()[0]


@pytest.mark.parametrize("bulk_threshold", [1, 1_000_000], ids=["bulk", "rest"])
def test_eighteen_digit_numbers_arrive_exactly(org, tmp_path, bulk_threshold):
    accounts, opportunity = _edge_records(org)
    for rid, value in zip(accounts, EDGE_REVENUES):
        assert org.store.get("Account", rid)["AnnualRevenue"] == value  # the org keeps them exactly too
    with pytest.raises(Exception, match="NUMBER_OUTSIDE_VALID_RANGE|valid range"):
        org.create("Account", {"Name": "Too big", "AnnualRevenue": "1000000000000000000"})
    settings = SyncSettings(initial_import="all", bulk_threshold=bulk_threshold, lag_seconds=5)
    org.advance_clock(10)
    db = tmp_path / "m.duckdb"
    client = client_for(org)
    for name in ("Account", "Opportunity"):
        result = sync_object(client, db, name, settings, window=None, partition_key=None, run_id="t", log=log)
        assert result.method == ("bulk" if bulk_threshold == 1 else "rest")
    assert _columns(db, "Account")["AnnualRevenue"] == "DECIMAL(18,0)"
    assert _columns(db, "Opportunity")["Amount"] == "DECIMAL(18,2)"
    for rid, value in zip(accounts, EDGE_REVENUES):
        got = _mirror_value(db, "Account", rid, "AnnualRevenue")
        assert isinstance(got, Decimal) and got == value, (got, value)
    assert _mirror_value(db, "Opportunity", opportunity, "Amount") == EDGE_AMOUNT
    for name in ("Account", "Opportunity"):
        assert differences(org, db, name) == []


def test_the_org_writes_exact_numbers_in_both_apis(org):
    """REST JSON and Bulk CSV carry every digit (Java's layout: E-notation from 10^7); the client decodes
    REST numbers as Decimal, so nothing passes through a float."""
    accounts, _ = _edge_records(org)
    client = client_for(org)
    ids = ", ".join(f"'{rid}'" for rid in accounts)
    soql = f"SELECT Id, AnnualRevenue FROM Account WHERE Id IN ({ids})"
    rest = {r["Id"]: r["AnnualRevenue"] for page in client.query_pages(soql) for r in page}
    assert {rid: Decimal(v) for rid, v in rest.items()} == dict(zip(accounts, EDGE_REVENUES))
    csv_text = b"".join(page.csv for page in client.bulk_query_pages(soql)).decode()
    assert '"9.99999999999999999E17"' in csv_text and '"1.23456789012345678E17"' in csv_text


def test_an_old_warehouse_with_double_number_columns_becomes_exact(org, tmp_path):
    accounts, opportunity = _edge_records(org)
    settings = SyncSettings(initial_import="all", bulk_threshold=1, lag_seconds=5)
    org.advance_clock(10)
    db = tmp_path / "m.duckdb"
    client = client_for(org)

    def sync(name: str, days_ago: int = 0) -> None:
        org.advance_clock(10)
        end = org.clock.now() - timedelta(days=days_ago, seconds=5)
        sync_object(client, db, name, settings, window=(end - timedelta(days=1), end), partition_key=None,
                    run_id="t", log=log)

    for name in ("Account", "Opportunity"):
        sync(name)
    with duckdb.connect(str(db)) as conn:  # as a warehouse made before number fields were DECIMAL
        for name in ("account", "opportunity", "contact"):
            for (column,) in conn.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'salesforce' AND table_name = ? "
                    "AND data_type LIKE 'DECIMAL%'", [name]).fetchall():
                conn.execute(f'ALTER TABLE salesforce.{name} ALTER COLUMN "{column}" TYPE DOUBLE')
    # The DOUBLE rounded 999999999999999999 to 1e18, which no DECIMAL(18,0) holds, and the Amount too.
    assert _mirror_value(db, "Account", accounts[0], "AnnualRevenue") == 1e18

    sync("Account", days_ago=3)  # a window without them: the columns are retyped, the rounded values stay
    columns = _columns(db, "Account")
    assert columns["AnnualRevenue"] == "DECIMAL(38,0)"  # exact from now on, wide enough for the rounded rows
    assert columns["ShippingLatitude"] == "DECIMAL(18,15)"  # every value fits: the describe's type at once
    assert [d for d in differences(org, db, "Account") if "AnnualRevenue" not in d] == []

    for rid, value in zip(accounts, EDGE_REVENUES):  # the rounded records change, and are read again
        org.update("Account", rid, {"AnnualRevenue": str(value)})
    org.update("Opportunity", opportunity, {"Amount": EDGE_AMOUNT})
    for name in ("Account", "Opportunity"):
        sync(name)
    assert _columns(db, "Account")["AnnualRevenue"] == "DECIMAL(18,0)"
    assert _columns(db, "Opportunity")["Amount"] == "DECIMAL(18,2)"
    for rid, value in zip(accounts, EDGE_REVENUES):
        assert _mirror_value(db, "Account", rid, "AnnualRevenue") == value
    assert _mirror_value(db, "Opportunity", opportunity, "Amount") == EDGE_AMOUNT
    for name in ("Account", "Opportunity"):
        assert differences(org, db, name) == []
