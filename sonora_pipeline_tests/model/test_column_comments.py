"""Every table and column analysts can query is documented: a DuckDB comment on each table and column of
schemas `sonora` and `salesforce` (mirror, state tables, model, write-back ledger), and the same text in the
Dagster column schemas, after the project's own flows ran against the local org: the object assets synced it,
the model assets built it with the suite's settings (which map custom fields), and a write-back was planned."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pytest

from sonora_pipeline.defs.model.assets import MODEL_ASSETS, model_key
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.assets import OBJECT_ASSETS, asset_key_for
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.model.build import build_all
from sonora_pipeline.settings import model_required_fields
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline.writeback.plan import compute_plan
from sonora_pipeline_tests.conftest import running_org
from sonora_pipeline_tests.model.helpers import query
from sonora_pipeline_tests.suite_settings import suite_settings, suite_settings_with
from sonora_pipeline_tests.sync.helpers import client_for, log

SCHEMAS = ("sonora", "salesforce")


def resources_for(org: LocalOrg, db) -> dict:
    c = org.credentials
    return {"salesforce": SalesforceResource(instance_url=c.instance_url, consumer_key=c.consumer_key,
                                             consumer_secret=c.consumer_secret, ca_bundle=c.ca_bundle),
            "warehouse": WarehouseResource(path=str(db)), "settings": SettingsResource()}


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    """A local org synced by the object assets, the model built by the model assets, a write-back planned.
    Yields (org, db, {asset key: materialization metadata})."""
    assert SETTINGS.mapping.account, "the suite's settings map custom fields (fixtures/test-settings.yaml)"
    with running_org(tmp_path_factory.mktemp("comments-org"), records=400, seed=5) as org:
        org.advance_clock(SETTINGS.sync.lag_seconds + 3)
        db = tmp_path_factory.mktemp("comments") / "w.duckdb"
        metadata, checks = {}, {}
        with dg.instance_for_test() as instance:
            for assets, partition in ((OBJECT_ASSETS, org.clock.now().strftime("%Y-%m-%d")), (MODEL_ASSETS, None)):
                result = dg.materialize(assets, resources=resources_for(org, db), instance=instance,
                                        partition_key=partition)
                assert result.success
                metadata.update({e.asset_key: e.materialization.metadata
                                 for e in result.get_asset_materialization_events()})
                checks.update({(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()})
        with duckdb.connect(str(db)) as conn:
            compute_plan(conn, suite_settings_with(writeback={"enabled": True}))  # creates the ledger
        yield org, db, metadata, checks


def undocumented(db) -> list[str]:
    """Every table and table.column of the two schemas without a comment."""
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE list_contains(?, schema_name) "
            "AND coalesce(trim(comment), '') = '' ORDER BY 1", [list(SCHEMAS)]).fetchall()
        columns = conn.execute(
            "SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
            "WHERE list_contains(?, schema_name) AND coalesce(trim(comment), '') = '' "
            "ORDER BY schema_name, table_name, column_index", [list(SCHEMAS)]).fetchall()
    return [r[0] for r in tables + columns]


def comments(db, schema: str, table: str) -> dict[str, str]:
    return dict(query(db, "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
                          "ORDER BY column_index", [schema, table]))


def test_every_table_and_column_of_both_schemas_has_a_comment(flows):
    org, db, _, _ = flows
    tables = {tuple(r) for r in query(db, "SELECT schema_name, table_name FROM duckdb_tables() "
                                          "WHERE list_contains(?, schema_name)", [list(SCHEMAS)])}
    # The flows made what the check is about: model, history, ledger, mirror (a custom object too), state.
    assert {("sonora", "health_score_history"), ("sonora", "renewals"), ("sonora", "writeback_ledger"),
            ("salesforce", "subscription__c"), ("salesforce", "user"), ("salesforce", "_sync_state"),
            ("salesforce", "_sync_windows"), ("salesforce", "_org"), ("salesforce", "_record_types")} <= tables
    missing = undocumented(db)
    assert not missing, f"{len(missing)} without a comment: " + ", ".join(missing)


def test_mapped_and_settings_named_fields_carry_their_salesforce_label(flows):
    org, db, _, _ = flows
    settings = suite_settings()
    account, contact = org.catalog.object("Account"), org.catalog.object("Contact")
    customers, people = comments(db, "sonora", "customers"), comments(db, "sonora", "people")
    for field, column in settings.mapping.account.items():
        assert customers[column] == f"{account.field_named(field).label} (Account.{field}, mapped)"
    for field, column in settings.mapping.contact.items():
        assert people[column] == f"{contact.field_named(field).label} (Contact.{field}, mapped)"
    end_field = settings.renewals.contract_end_field
    end = f"{account.field_named(end_field).label} (Account.{end_field}, renewals.contract_end_field)"
    assert end in comments(db, "sonora", "renewals")["contract_end_date"]
    assert end in comments(db, "sonora", "health_scores")["contract_end_date"]
    # A column repeated across tables says the same everywhere.
    ids = {t: c["customer_id"] for t in ("opportunities", "cases", "health_scores", "health_score_history", "renewals")
           if (c := comments(db, "sonora", t))}
    assert len(set(ids.values())) == 1, ids


def test_dagster_column_schemas_show_the_same_text(flows):
    org, db, metadata, _ = flows
    label = org.catalog.object("Account").field_named("Tier__c").label
    for asset in MODEL_ASSETS:
        key = asset.key
        table = key.path[-1]
        built = comments(db, "sonora", table)
        materialized = {c.name: c.description for c in metadata[key]["dagster/column_schema"].schema.columns}
        assert materialized == built, table
        defined = {c.name: c.description for c in asset.specs_by_key[key].metadata["dagster/column_schema"].columns}
        assert set(defined) == set(built), table
        assert all(defined.values()), table
    customers = {c.name: c.description for c in metadata[model_key("customers")]["dagster/column_schema"].schema.columns}
    assert customers["tier"] == f"{label} (Account.Tier__c, mapped)"
    definition = MODEL_ASSETS[0].specs_by_key[model_key("customers")].metadata["dagster/column_schema"]
    assert {c.name: c.description for c in definition.columns}["tier"] == "Account.Tier__c (mapped)"
    for asset in OBJECT_ASSETS:
        key = asset.key
        schema = {c.name: c.description for c in metadata[key]["dagster/column_schema"].schema.columns}
        assert schema == comments(db, "salesforce", key.path[-1]), key
    assert "no IsDeleted in Salesforce" in {
        c.name: c.description for c in metadata[asset_key_for("User")]["dagster/column_schema"].schema.columns
    }["IsDeleted"]


def test_comments_come_back_after_rebuilds_retyping_and_blanking(flows, tmp_path):
    """A copy of the warehouse as an older version would have left it: comments blank, a number column
    DOUBLE. The next sync commit and model build restore every comment (and the column's exact type)."""
    org, db, _, _ = flows
    copy = tmp_path / "older.duckdb"
    shutil.copyfile(db, copy)
    settings = suite_settings()
    with duckdb.connect(str(copy)) as conn:
        arr_type = conn.execute("SELECT data_type FROM duckdb_columns() WHERE table_name = 'account' "
                                "AND column_name = 'ARR__c'").fetchone()[0]
        assert arr_type.startswith("DECIMAL")
        conn.execute('ALTER TABLE salesforce.account ALTER COLUMN "ARR__c" TYPE DOUBLE')
        for schema, table, column in conn.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                "WHERE list_contains(['sonora', 'salesforce'], schema_name)").fetchall():
            conn.execute(f'COMMENT ON COLUMN {schema}."{table}"."{column}" IS NULL')
        for schema, table in conn.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                          "WHERE list_contains(['sonora', 'salesforce'], schema_name)").fetchall():
            conn.execute(f'COMMENT ON TABLE {schema}."{table}" IS NULL')
    assert len(undocumented(copy)) > 500
    sync = settings.sync.model_copy(update={"required_fields": model_required_fields(settings)})
    client = client_for(org)
    for name in sync.objects:
        sync_object(client, copy, name, sync, window=None, partition_key=None, run_id="again", log=log)
    with duckdb.connect(str(copy)) as conn:
        for _ in range(2):  # a rebuild replaces every model table: its comments are written again
            build_all(conn, settings, org.clock.now().date())
        compute_plan(conn, suite_settings_with(writeback={"enabled": True}))
    assert undocumented(copy) == []
    assert query(copy, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'account' "
                       "AND column_name = 'ARR__c'") == [(arr_type,)]
    assert comments(copy, "salesforce", "account") == comments(db, "salesforce", "account")
    assert comments(copy, "sonora", "customers") == comments(db, "sonora", "customers")


def test_the_model_checks_run_in_their_tables_builds_and_pass(flows):
    """Each check runs in its table's build step, on the table just built, and is recorded against it."""
    _, db, _, checks = flows
    expected = {(model_key(t), name) for t, names in {
        "customers": ["customer_ids_unique"], "people": ["people_point_at_customers"],
        "touchpoints": ["touchpoints_point_at_customers"], "health_scores": ["health_scores_in_range"],
        "ecsat": ["ecsat_in_range"]}.items() for name in names}
    assert set(checks) == expected
    assert [key for key, evaluation in checks.items() if not evaluation.passed] == []
    with duckdb.connect(str(db), read_only=True) as conn:
        customers, people = conn.execute("SELECT (SELECT count(*) FROM sonora.customers), "
                                         "(SELECT count(*) FROM sonora.people)").fetchone()
    assert customers > 0 and people > 0
    unique = checks[(model_key("customers"), "customer_ids_unique")].metadata
    assert unique["rows"].value == customers and unique["duplicates"].value == 0
    assert checks[(model_key("people"), "people_point_at_customers")].metadata["rows"].value == people
