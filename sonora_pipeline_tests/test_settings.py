"""The settings file: every section's defaults, a message with the file's line, the path and the fix for each
kind of mistake (all of them reported together), the checks against the mirror's columns, and conditions as
SQL and SOQL that no value can change the meaning of."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import duckdb
import pytest

from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.generator import generate_org
from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import compile_query
from sonora_pipeline.localorg.store import OrgStore
from sonora_pipeline.model.rules import (
    RESERVED_COLUMNS, account_inclusion_sql, columns_from_mirror, condition_sql, validate_against_schema,
)
from sonora_pipeline.settings import (
    OPERATORS, Condition, Settings, SettingsError, SyncSettings, load_settings, model_required_fields,
    validate_settings,
)
from sonora_pipeline.salesforce.describe import DUCKDB_TYPES

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "test-settings.yaml"
TODAY = dt.date(2025, 6, 1)
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
OPS = "= != < <= > >= in not_in like is_null is_not_null"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sonora.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    return str(info.value)


def schema_error_of(tmp_path: Path, text: str, columns=None) -> str:
    settings = load_settings(write(tmp_path, text))
    with pytest.raises(SettingsError) as info:
        validate_against_schema(settings, columns or mirror_columns())
    return str(info.value)


def mirror_columns() -> dict[str, dict[str, str]]:
    """What the mirror of the local org looks like: every readable field, typed as the sync types it."""
    catalog = build_standard_catalog()
    out: dict[str, dict[str, str]] = {}
    for name in ("Account", "Contact", "Opportunity", "Case", "Task", "Event"):
        obj = catalog.object(name)
        cols = {f.name: DUCKDB_TYPES.get(f.type, "VARCHAR") for f in catalog.readable_fields(obj)
                if not f.is_compound}
        cols.update({"_sonora_synced_at": "TIMESTAMP", "_sonora_deleted_at": "TIMESTAMP",
                     "_sonora_purged_at": "TIMESTAMP"})
        out[name] = cols
    return out


# -- defaults and the existing sync section ----------------------------------------------------------------------

def test_defaults_without_a_settings_file(monkeypatch):
    monkeypatch.delenv("SONORA_CONFIG", raising=False)
    settings = load_settings()
    assert settings == Settings()
    assert settings.source is None
    # Nothing a fresh Developer Edition org lacks: no custom field is mapped, tested or required.
    assert settings.mapping.account == {} and settings.mapping.contact == {}
    assert settings.contracts.match == "any"
    assert settings.contracts.account_conditions == []
    assert settings.contracts.won_opportunity_within_days == 365  # the won-opportunity rule stays
    assert settings.renewals.horizon_days == 120
    assert settings.renewals.contract_end_field is None and settings.renewals.arr_field is None
    assert settings.health.nps_field is None
    assert settings.writeback.enabled is False and settings.writeback.mappings == []
    assert model_required_fields(settings) == {"Account": [], "Contact": []}
    assert settings.health.weights.model_dump() == {"engagement": 0.35, "support": 0.25, "commercial": 0.25,
                                                    "sentiment": 0.15}
    assert (settings.health.bands.green, settings.health.bands.yellow) == (70, 40)
    assert settings.ecsat.sla_hours == 48
    assert settings.accounts.include.record_types == settings.accounts.include.types == []
    assert settings.accounts.include.conditions == []


def test_the_existing_sync_section_works_exactly_as_before():
    settings = load_settings(FIXTURE)
    assert settings.sync == SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60,
                                         bulk_threshold=500, quota_pause_seconds=0.5,
                                         custom_objects=["Subscription__c"])
    assert settings.sync.objects[-1] == "Subscription__c"
    assert settings.renewals.horizon_days == 120  # the new sections default
    built = SyncSettings(initial_import="since:2025-06-01", lag_seconds=5)
    assert built.initial_since() == dt.date(2025, 6, 1)
    again = SyncSettings.model_validate({**built.model_dump(), "initial_import": "all"})
    assert again.initial_import == "all" and again.lag_seconds == 5
    with pytest.raises(ValueError):
        SyncSettings(custom_objects=["Invoice"])


def test_the_example_file_is_valid_and_says_the_defaults():
    settings = load_settings(REPO / "sonora.example.yaml")
    assert settings.model_dump() == Settings().model_dump()
    text = (REPO / "sonora.example.yaml").read_text("utf-8")
    for section in ("sync:", "accounts:", "mapping:", "contracts:", "renewals:", "health:", "ecsat:"):
        assert f"\n{section}" in text


DEMO_SETTINGS = REPO / "sonora_pipeline" / "localorg" / "demo-settings.yaml"


def test_the_demo_org_has_its_own_settings_and_the_suite_says_the_same():
    demo = load_settings(DEMO_SETTINGS)
    assert demo.mapping.account == {"ARR__c": "arr", "Contract_End_Date__c": "contract_end_date",
                                    "Tier__c": "tier"}
    assert demo.mapping.contact == {"Persona__c": "persona", "NPS_Score__c": "nps"}
    assert demo.contracts.account_conditions == [Condition(field="Contract_End_Date__c", op=">=", value="today")]
    assert (demo.renewals.contract_end_field, demo.renewals.arr_field) == ("Contract_End_Date__c", "ARR__c")
    assert demo.health.nps_field == "NPS_Score__c"
    assert [m.field for m in demo.writeback.mappings] == ["Sonora_Health_Score__c", "Sonora_eCSAT__c",
                                                          "Sonora_Health_Band__c"]
    assert not demo.writeback.enabled
    assert model_required_fields(demo) == {"Account": ["ARR__c", "Contract_End_Date__c", "Tier__c"],
                                           "Contact": ["NPS_Score__c", "Persona__c"]}
    suite = load_settings(FIXTURE)
    for section in ("accounts", "mapping", "contracts", "renewals", "health", "ecsat", "writeback"):
        assert getattr(suite, section) == getattr(demo, section), section


def test_write_back_enabled_with_nothing_to_write_says_what_to_add(tmp_path):
    message = error_of(tmp_path, """
        writeback:
          enabled: true
        """)
    # Not written in the file: the message says it is the default, under the section that is there.
    assert "line 1, column 1 (writeback.mappings, a default: not set under writeback)" in message
    assert "no mapping" in message and "health_scores.score" in message and "enabled: false" in message


def test_a_full_file_is_read(tmp_path):
    settings = load_settings(write(tmp_path, """
        accounts:
          include:
            record_types: [Customer]
            types: ["Customer - Direct"]
            conditions:
              - {field: Industry, op: "!=", value: Government}
              - field: NumberOfEmployees
                op: ">="
                value: 10
              - {field: Type, op: in, value: [A, B]}
              - {field: Tier__c, op: is_not_null}
        mapping:
          account: {ARR__c: annual_revenue}
        contracts:
          match: all
          account_conditions: []
          won_opportunity_within_days: 90
        renewals: {horizon_days: 90}
        health:
          weights: {engagement: 1, support: 0, commercial: 0, sentiment: 0}
          bands: {green: 80, yellow: 50}
        ecsat: {sla_hours: 24}
        """))
    include = settings.accounts.include
    assert include.record_types == ["Customer"] and include.types == ["Customer - Direct"]
    assert include.conditions[1] == Condition(field="NumberOfEmployees", op=">=", value=10)
    assert include.conditions[2].values() == ["A", "B"] and include.conditions[3].values() == []
    assert settings.mapping.account == {"ARR__c": "annual_revenue"}
    assert settings.mapping.contact == {}  # the default: nothing mapped
    assert settings.contracts.match == "all" and settings.contracts.account_conditions == []
    assert settings.health.weights.engagement == 1 and settings.health.bands.green == 80
    assert settings.source is not None and settings.source.path == tmp_path / "sonora.yaml"
    validate_against_schema(settings, mirror_columns())


def test_unquoted_operators_and_empty_sections(tmp_path):
    settings = load_settings(write(tmp_path, """
        accounts:
          include:
            conditions:
              - {field: Industry, op: =, value: Retail}
              - field: Industry
                op: !=
                value: Government
        renewals:
        """))
    assert [c.op for c in settings.accounts.include.conditions] == ["=", "!="]
    assert settings.renewals.horizon_days == 120


def test_settings_models_are_frozen():
    settings = Settings()
    with pytest.raises(Exception):
        settings.renewals.horizon_days = 5  # type: ignore[misc]


# -- one message per mistake: file, line, column, path, fix --------------------------------------------------------

def test_unknown_top_level_key(tmp_path):
    message = error_of(tmp_path, """
        sync:
          lag_seconds: 5
        acounts:
          include: {}
        """)
    assert (f"{tmp_path / 'sonora.yaml'} line 3, column 1 (acounts): unknown setting 'acounts' "
            "(did you mean 'accounts'?)") in message
    assert "sync, accounts, mapping, contracts, renewals, health, ecsat" in message


def test_unknown_nested_key_with_did_you_mean(tmp_path):
    message = error_of(tmp_path, """
        health:
          weights:
            engagment: 0.5
        """)
    assert ("line 3, column 5 (health.weights.engagment): unknown setting 'engagment' (did you mean "
            "'engagement'?); the settings under health.weights are: engagement, support, commercial, "
            "sentiment") in message


def test_wrong_type_for_horizon_days(tmp_path):
    message = error_of(tmp_path, """
        renewals:
          horizon_days: soon
        """)
    assert ("line 2, column 17 (renewals.horizon_days): 'soon' is not a whole number; write a number without "
            "quotes (e.g. horizon_days: 120)") in message


def test_out_of_range_number(tmp_path):
    message = error_of(tmp_path, "ecsat:\n  sla_hours: 0\n")
    assert "line 2, column 14 (ecsat.sla_hours): 0 is out of range: it must be above 0" in message


def test_bad_operator(tmp_path):
    message = error_of(tmp_path, """
        accounts:
          include:
            conditions:
              - {field: Industry, op: "!=", value: Government}
              - {field: Industry, op: "=>", value: Retail}
        """)
    assert (f"{tmp_path / 'sonora.yaml'} line 5, column 31 (accounts.include.conditions[1].op): unknown "
            f"operator '=>'; use one of {OPS}") in message


def test_in_with_a_scalar(tmp_path):
    message = error_of(tmp_path, """
        accounts:
          include:
            conditions:
              - field: Type
                op: in
                value: Customer
        """)
    assert ("line 6, column 16 (accounts.include.conditions[0].value): 'in' needs a list of values, e.g. "
            "value: [Customer, B]") in message


def test_is_null_with_a_value(tmp_path):
    message = error_of(tmp_path, """
        contracts:
          account_conditions:
            - {field: Contract_End_Date__c, op: is_null, value: 2025-01-01}
        """)
    assert ("line 3, column 57 (contracts.account_conditions[0].value): 'is_null' takes no value; remove "
            "'value: 2025-01-01'") in message


def test_comparison_without_a_value(tmp_path):
    message = error_of(tmp_path, """
        contracts:
          account_conditions:
            - {field: Contract_End_Date__c, op: ">="}
        """)
    assert ("line 3, column 7 (contracts.account_conditions[0]): '>=' needs a value; add 'value: ...' (to match "
            "empty fields use op: is_null)") in message


def test_a_field_that_is_not_an_api_name(tmp_path):
    message = error_of(tmp_path, """
        accounts:
          include:
            conditions: [{field: "Account.Industry", op: "=", value: x}]
        """)
    assert ("line 3, column 26 (accounts.include.conditions[0].field): 'Account.Industry' is not a Salesforce "
            "field API name") in message
    assert "no relationship paths" in message


def test_duplicate_mapping_target(tmp_path):
    message = error_of(tmp_path, """
        mapping:
          account:
            ARR__c: arr
            AnnualRevenue: arr
        """)
    assert ("line 4, column 20 (mapping.account.AnnualRevenue): column 'arr' is already the target of ARR__c; "
            "each field needs its own column (e.g. arr_2)") in message


def test_mapping_target_that_is_a_model_column(tmp_path):
    assert {"external_id", "name", "is_paying", "customer_id", "email", "title"} <= RESERVED_COLUMNS
    message = error_of(tmp_path, """
        mapping:
          contact:
            Persona__c: email
        """)
    assert ("line 3, column 17 (mapping.contact.Persona__c): column 'email' is one of the model's own columns; "
            "choose another name for Persona__c (e.g. email_sf)") in message


def test_mapping_target_that_is_not_an_identifier(tmp_path):
    message = error_of(tmp_path, """
        mapping:
          account:
            Tier__c: Customer Tier
        """)
    assert ("line 3, column 14 (mapping.account.Tier__c): 'Customer Tier' is not a valid column name: use "
            "lower-case letters, digits and _, starting with a letter (e.g. customer_tier)") in message


def test_weights_all_zero(tmp_path):
    message = error_of(tmp_path, """
        health:
          weights: {engagement: 0, support: 0, commercial: 0, sentiment: 0}
        """)
    assert ("line 2, column 12 (health.weights): all weights are 0; give at least one measure a weight above 0 "
            "(e.g. engagement: 0.35)") in message


def test_negative_weight(tmp_path):
    message = error_of(tmp_path, "health:\n  weights:\n    support: -1\n")
    assert "line 3, column 14 (health.weights.support): -1 is out of range: it must be at least 0" in message


def test_bands_inverted(tmp_path):
    message = error_of(tmp_path, """
        health:
          bands:
            green: 40
            yellow: 70
        """)
    assert ("line 3, column 12 (health.bands.green): green (40) must be above yellow (70); e.g. green: 70, "
            "yellow: 40") in message


def test_contracts_without_any_rule(tmp_path):
    message = error_of(tmp_path, """
        contracts:
          account_conditions: []
          won_opportunity_within_days: null
        """)
    assert ("line 2, column 3 (contracts): no rule is set, so no customer would ever be paying; set "
            "account_conditions or won_opportunity_within_days") in message


def test_yaml_syntax_error_names_its_line(tmp_path):
    message = error_of(tmp_path, """
        renewals:
          horizon_days: 120
        health:
          bands: {green: 70, yellow: 40
        ecsat:
          sla_hours: 48
        """)
    assert message.startswith(f"{tmp_path / 'sonora.yaml'} line 5, column 6: not valid YAML: ")
    assert "started at line 4, column 10" in message
    assert "correct the YAML syntax there" in message


def test_unquoted_greater_than_gets_a_quoting_hint(tmp_path):
    message = error_of(tmp_path, """
        contracts:
          account_conditions:
            - field: Contract_End_Date__c
              op: >=
              value: today
        """)
    assert "line 4, column" in message and "not valid YAML" in message
    assert "put the value in quotes" in message and 'op: ">="' in message


def test_a_document_that_is_not_a_mapping(tmp_path):
    message = error_of(tmp_path, """
        - sync
        - accounts
        """)
    assert message == (f"{tmp_path / 'sonora.yaml'} line 1, column 1: the settings must be a mapping of sections "
                       "(sync:, accounts:, mapping:, contracts:, renewals:, health:, ecsat:), not a list; see "
                       "sonora.example.yaml")


def test_a_section_that_is_not_a_mapping(tmp_path):
    message = error_of(tmp_path, "renewals: 120\n")
    assert "line 1, column 11 (renewals): 120 is not a section; write its settings indented below it" in message


def test_duplicate_keys_are_reported(tmp_path):
    message = error_of(tmp_path, """
        renewals:
          horizon_days: 90
          horizon_days: 120
        """)
    assert ("line 3, column 3 (renewals.horizon_days): duplicate setting 'horizon_days', also set at line 2; "
            "keep only one") in message


def test_a_time_where_a_date_is_expected(tmp_path):
    message = error_of(tmp_path, """
        contracts:
          account_conditions:
            - {field: Contract_End_Date__c, op: ">=", value: 2025-01-01T10:00:00}
        """)
    assert ("line 3, column 54 (contracts.account_conditions[0].value): 2025-01-01T10:00:00 has a time; only "
            "dates are supported: write YYYY-MM-DD (e.g. 2025-01-01) or today") in message


def test_every_problem_is_reported_together_in_file_order(tmp_path):
    path = write(tmp_path, """
        sync:
          initial_import: sometimes
          lag_secondz: 5
        renewals:
          horizon_days: soon
        health:
          bands: {green: 10, yellow: 20}
        """)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    err = info.value
    assert len(err.problems) == 4
    assert str(err).splitlines()[0] == f"Settings file {path} has 4 problems:"
    lines = [p.split(" (")[0].rsplit(" line ", 1)[1] for p in err.problems]
    assert lines == ["2, column 19", "3, column 3", "5, column 17", "7, column 18"]
    assert "(sync.initial_import): must be 'active', 'all' or 'since:YYYY-MM-DD'" in err.problems[0]
    assert "unknown setting 'lag_secondz' (did you mean 'lag_seconds'?)" in err.problems[1]


def test_settings_built_in_code_name_the_path():
    with pytest.raises(SettingsError) as info:
        validate_settings({"accounts": {"include": {"conditions": [{"field": "Type", "op": "like"}]}}})
    assert str(info.value) == ("settings (accounts.include.conditions[0]): 'like' needs a value; add "
                               "'value: ...' (to match empty fields use op: is_null)")


def test_a_missing_file_is_named():
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(Path("/nonexistent/sonora.yaml"))


# -- against the mirror's columns -------------------------------------------------------------------------------

def test_default_settings_fit_a_realistic_mirror():
    validate_against_schema(Settings(), mirror_columns())


def test_today_on_a_text_field(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions:
              - {field: Industry, op: "=", value: today}
        """)
    assert ("line 4, column 43 (accounts.include.conditions[0].value): 'today' only works on date fields, and "
            "Account.Industry is a text field (VARCHAR); write text") in message


def test_a_field_that_is_not_in_the_mirror(tmp_path):
    message = schema_error_of(tmp_path, """
        contracts:
          account_conditions:
            - {field: Foo__c, op: "=", value: x}
        """)
    assert (f"{tmp_path / 'sonora.yaml'} line 3, column 15 (contracts.account_conditions[0].field): "
            "Account.Foo__c is not in the mirror: it does not exist, or the run-as user cannot read it "
            "(Setup > Object Manager > Account > Fields & Relationships > Foo__c > Set Field-Level Security)"
            ) in message


def test_a_misspelled_field_gets_a_suggestion(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions: [{field: Industri, op: is_not_null}]
        """)
    assert "Account.Industri is not in the mirror" in message and "(did you mean 'Industry'?)" in message


def test_text_on_a_number_field(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions:
              - {field: ARR__c, op: ">", value: "100k"}
        """)
    assert ("line 4, column 41 (accounts.include.conditions[0].value): '100k' (text) does not fit: "
            "Account.ARR__c is a number field (DOUBLE); write a number without quotes (e.g. value: 100000)"
            ) in message


def test_a_number_in_a_list_for_a_text_field(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions:
              - {field: Tier__c, op: in, value: [Gold, 2]}
        """)
    assert ("line 4, column 48 (accounts.include.conditions[0].value[1]): 2 (a number) does not fit: "
            "Account.Tier__c is a text field (VARCHAR); write text (in quotes when it looks like a number")\
        in message


def test_yes_no_on_a_text_field_explains_yaml(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions: [{field: Tier__c, op: "=", value: no}]
        """)
    assert "false (true/false) does not fit: Account.Tier__c is a text field (VARCHAR)" in message
    assert 'quote the text (e.g. value: "no")' in message


def test_like_on_a_number_field(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions:
              - {field: NumberOfEmployees, op: like, value: "1%"}
        """)
    assert ("line 4, column 40 (accounts.include.conditions[0].op): 'like' only works on text fields, and "
            "Account.NumberOfEmployees is a number field (BIGINT); use = != < <= > >= in or not_in") in message


def test_order_comparison_on_a_boolean_field(tmp_path):
    message = schema_error_of(tmp_path, """
        accounts:
          include:
            conditions: [{field: IsDeleted, op: ">", value: false}]
        """)
    assert "(accounts.include.conditions[0].op): Account.IsDeleted is a true/false field (BOOLEAN): use = or !=" \
        in message


def test_a_mapping_source_that_is_not_in_the_mirror(tmp_path):
    message = schema_error_of(tmp_path, """
        mapping:
          contact:
            Persona__c: persona
            Churn_Risk__c: churn_risk
        """)
    assert ("line 4, column 5 (mapping.contact.Churn_Risk__c): Contact.Churn_Risk__c is not in the mirror: it "
            "does not exist, or the run-as user cannot read it (Setup > Object Manager > Contact > Fields & "
            "Relationships > Churn_Risk__c > Set Field-Level Security)") in message


def test_the_defaults_fit_a_mirror_without_custom_fields(tmp_path):
    columns = {name: {c: t for c, t in cols.items() if not c.endswith("__c")}
               for name, cols in mirror_columns().items()}
    assert "ARR__c" in mirror_columns()["Account"] and "ARR__c" not in columns["Account"]
    validate_against_schema(Settings(), columns)
    validate_against_schema(load_settings(write(tmp_path, "renewals:\n  horizon_days: 90\n")), columns)
    message = schema_error_of(tmp_path, "renewals:\n  arr_field: ARR__c\n", columns)
    assert "line 2, column 14 (renewals.arr_field): Account.ARR__c is not in the mirror" in message


def test_renewal_field_of_the_wrong_type(tmp_path):
    message = schema_error_of(tmp_path, "renewals:\n  contract_end_field: Tier__c\n")
    assert ("line 2, column 23 (renewals.contract_end_field): Account.Tier__c is a text field (VARCHAR), but "
            "renewals.contract_end_field needs a date field") in message


def test_code_built_settings_are_checked_too():
    settings = Settings.model_validate({"accounts": {"include": {"conditions": [
        {"field": "Nope__c", "op": "is_null"}]}}})
    with pytest.raises(SettingsError) as info:
        validate_against_schema(settings, mirror_columns())
    assert str(info.value).startswith("settings (accounts.include.conditions[0].field): Account.Nope__c is not in")


def test_objects_without_a_mirror_table_are_left_to_the_caller():
    columns = mirror_columns()
    del columns["Contact"]
    validate_against_schema(Settings(), columns)


def test_columns_from_a_synced_mirror(org, tmp_path):
    from sonora_pipeline.sync.engine import sync_object
    from sonora_pipeline_tests.sync.helpers import client_for, log

    sync = SyncSettings(initial_import="all", lag_seconds=5)
    org.advance_clock(8)
    db = tmp_path / "mirror.duckdb"
    client = client_for(org)
    for name in ("Account", "Contact", "Opportunity"):
        sync_object(client, db, name, sync, window=None, partition_key=None, run_id="test", log=log)
    conn = duckdb.connect(str(db))
    try:
        columns = columns_from_mirror(conn)
        assert {"Account", "Contact", "Opportunity"} <= set(columns)
        assert not any(name.startswith("_") for name in columns)
        assert columns["Account"]["ARR__c"] == "DECIMAL(16,2)" and columns["Account"]["Contract_End_Date__c"] == "DATE"
        assert columns["Account"]["IsDeleted"] == "BOOLEAN" and columns["Contact"]["Persona__c"] == "VARCHAR"
        assert columns["Account"]["NumberOfEmployees"] == "BIGINT"
        assert columns["Account"]["CreatedDate"].startswith("TIMESTAMP")
        demo = load_settings(DEMO_SETTINGS)
        validate_against_schema(Settings(), columns)
        validate_against_schema(demo, columns)
        # the demo org's rules run on the mirror
        sql, params = condition_sql(demo.contracts.account_conditions, alias="a", today=TODAY)
        conn.execute(f"SELECT count(*) FROM salesforce.account a WHERE {sql}", params).fetchone()
    finally:
        conn.close()


# -- conditions as SQL and SOQL: values can never change the query -----------------------------------------------

NASTY = [
    "O'Brien", "it''s", 'say "hi"', "back\\slash", "trailing\\", "\\'", "' OR 1=1 --", "'; DROP TABLE t; --",
    "\" OR \"\"=\"", "Zürich – 東京 🎉", "line1\nline2", "cr\r\nlf", "tab\there", "100%", "50% off_now", "%", "_",
    "\\%", "?", "$1", "%s", ")", "NULL", "",
]
DECOYS = ["O", "Brien", "OBrien", "x", "100", "100x", "50% off now", "line1", "line2", "back", "slash", "tab here",
          "Zurich", "anything", "1", "\\", "%%", "__"]


def _literal_like(value: str) -> str:
    """A settings like-pattern matching exactly `value`."""
    return "".join("\\" + ch if ch in "%_\\" else ch for ch in value)


@pytest.fixture(scope="module")
def table():
    conn = duckdb.connect(":memory:")
    conn.execute('CREATE TABLE t (id INTEGER, "Name" VARCHAR, n DOUBLE)')
    values = NASTY + DECOYS + [None]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [[i, v, float(i)] for i, v in enumerate(values)])
    yield conn, dict(enumerate(values))
    conn.close()


def _sql_ids(conn, conditions) -> set[int]:
    sql, params = condition_sql(conditions, alias="x", today=TODAY)
    return {r[0] for r in conn.execute(f"SELECT id FROM t AS x WHERE {sql}", params).fetchall()}


@pytest.mark.parametrize("value", NASTY)
def test_sql_values_match_only_themselves(table, value):
    conn, rows = table
    exact = {i for i, v in rows.items() if v == value}
    assert exact
    assert _sql_ids(conn, [Condition(field="Name", op="=", value=value)]) == exact
    assert _sql_ids(conn, [Condition(field="Name", op="in", value=[value, "no such value"])]) == exact
    assert _sql_ids(conn, [Condition(field="Name", op="like", value=_literal_like(value))]) == exact
    assert _sql_ids(conn, [Condition(field="Name", op="!=", value=value)]) == set(rows) - exact  # NULL included
    assert _sql_ids(conn, [Condition(field="Name", op="not_in", value=[value])]) == set(rows) - exact
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == len(rows)


def test_sql_shape_and_parameters(table):
    conn, rows = table
    assert condition_sql([], alias="x", today=TODAY) == ("TRUE", [])
    conditions = [Condition(field="Name", op="=", value="' OR 1=1 --"), Condition(field="n", op=">=", value=2)]
    sql, params = condition_sql(conditions, alias="x", today=TODAY)
    assert sql == '(COALESCE(lower(x."Name") = lower(?), FALSE) AND COALESCE(x."n" >= ?, FALSE))'  # text as SOQL
    assert params == ["' OR 1=1 --", 2]
    assert "OR 1=1" not in sql
    # like wildcards: % any text, _ one character, \ literal
    assert _sql_ids(conn, [Condition(field="Name", op="like", value="100%")]) == {
        i for i, v in rows.items() if v is not None and v.startswith("100")}
    assert _sql_ids(conn, [Condition(field="Name", op="like", value="_")]) == {
        i for i, v in rows.items() if v is not None and len(v) == 1}
    assert _sql_ids(conn, [Condition(field="Name", op="is_null")]) == {i for i, v in rows.items() if v is None}
    assert _sql_ids(conn, [Condition(field="Name", op="is_not_null"), Condition(field="n", op="<", value=3)]) == \
        {0, 1, 2}


def test_sql_today_and_dates():
    conn = duckdb.connect(":memory:")
    conn.execute('CREATE TABLE t (id INTEGER, "End__c" DATE, "At__c" TIMESTAMP, "Flag__c" BOOLEAN)')
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [
        [1, dt.date(2025, 5, 31), dt.datetime(2025, 5, 31, 23, 0), True],
        [2, dt.date(2025, 6, 1), dt.datetime(2025, 6, 1, 0, 0), False],
        [3, dt.date(2025, 7, 1), dt.datetime(2025, 7, 1, 8, 0), None],
        [4, None, None, None],
    ])
    assert _sql_ids(conn, [Condition(field="End__c", op=">=", value="today")]) == {2, 3}
    assert _sql_ids(conn, [Condition(field="At__c", op=">=", value="today")]) == {2, 3}
    assert _sql_ids(conn, [Condition(field="End__c", op="<", value=dt.date(2025, 6, 2))]) == {1, 2}
    assert _sql_ids(conn, [Condition(field="Flag__c", op="=", value=True)]) == {1}
    assert _sql_ids(conn, [Condition(field="Flag__c", op="!=", value=True)]) == {2, 3, 4}


def test_account_inclusion_sql():
    conn = duckdb.connect(":memory:")
    conn.execute('CREATE TABLE account ("Id" VARCHAR, "Type" VARCHAR, "Industry" VARCHAR, "RecordTypeId" VARCHAR)')
    conn.execute("CREATE TABLE rt (id VARCHAR, developer_name VARCHAR)")
    conn.executemany("INSERT INTO account VALUES (?, ?, ?, ?)", [
        ["a1", "Customer", "Retail", "r1"], ["a2", "Customer", "Government", "r1"],
        ["a3", "Prospect", "Retail", "r1"], ["a4", "Customer", None, "r2"], ["a5", "Customer", "Retail", None],
    ])
    conn.executemany("INSERT INTO rt VALUES (?, ?)", [["r1", "Customer"], ["r2", "Partner"]])
    settings = validate_settings({"accounts": {"include": {
        "record_types": ["Customer"], "types": ["Customer"],
        "conditions": [{"field": "Industry", "op": "!=", "value": "Government"}]}}})
    sql, params = account_inclusion_sql(settings, alias="a", record_type_alias="r.developer_name", today=TODAY)
    got = conn.execute(f"SELECT a.\"Id\" FROM account a LEFT JOIN rt r ON r.id = a.\"RecordTypeId\" WHERE {sql} "
                       "ORDER BY 1", params).fetchall()
    assert got == [("a1",)]
    assert account_inclusion_sql(Settings(), alias="a", today=TODAY) == ("TRUE", [])
    with pytest.raises(ValueError, match="record_type_alias"):
        account_inclusion_sql(settings, alias="a", today=TODAY)


@pytest.fixture(scope="module")
def generated():
    store = OrgStore(build_standard_catalog(), OrgClock(NOW))
    generate_org(store, 1200, seed=7, now=NOW)
    return store


def _soql_ids(store: OrgStore, where: str) -> set[str]:
    compiled = compile_query(f"SELECT Id FROM Account WHERE {where}", store.catalog, include_deleted=False, now=NOW)
    cur = store.cursor()
    try:
        return {r[0] for r in cur.execute(compiled.sql, compiled.params).fetchall()}
    finally:
        cur.close()


# Each condition beside the SOQL an admin would write for it (TODAY is 2025-06-01).
@pytest.mark.parametrize("conditions, soql", [
    ([{"field": "Industry", "op": "!=", "value": "Government"}], "Industry != 'Government'"),
    ([{"field": "Type", "op": "in", "value": ["Customer - Direct", "Customer - Channel"]}],
     "Type IN ('Customer - Direct', 'Customer - Channel')"),
    ([{"field": "Type", "op": "not_in", "value": ["Prospect"]}], "Type NOT IN ('Prospect')"),
    ([{"field": "Contract_End_Date__c", "op": ">=", "value": "today"}], "Contract_End_Date__c >= TODAY"),
    ([{"field": "Contract_End_Date__c", "op": "<", "value": dt.date(2025, 3, 1)}], "Contract_End_Date__c < 2025-03-01"),
    ([{"field": "ARR__c", "op": ">", "value": 50000}, {"field": "Tier__c", "op": "is_not_null"}],
     "ARR__c > 50000 AND Tier__c != null"),
    ([{"field": "NumberOfEmployees", "op": "<=", "value": 100}], "NumberOfEmployees <= 100"),
    ([{"field": "Name", "op": "like", "value": "%Inc%"}], "Name LIKE '%Inc%'"),
    ([{"field": "Industry", "op": "is_null"}], "Industry = null"),
    ([{"field": "CreatedDate", "op": ">=", "value": dt.date(2024, 6, 1)}], "CreatedDate >= 2024-06-01T00:00:00Z"),
], ids=lambda c: " and ".join(f"{x['field']} {x['op']}" for x in c) if isinstance(c, list) else "")
def test_sql_and_soql_select_the_same_accounts(generated, conditions, soql):
    conds = [Condition.model_validate(c) for c in conditions]
    sql, params = condition_sql(conds, alias="a", today=TODAY)
    cur = generated.cursor()
    try:
        by_sql = {r[0] for r in cur.execute(
            f'SELECT "Id" FROM "Account" AS a WHERE NOT "IsDeleted" AND {sql}', params).fetchall()}
    finally:
        cur.close()
    by_soql = _soql_ids(generated, soql)
    assert by_sql == by_soql
    assert 0 < len(by_sql) or conditions[0]["op"] == "is_null"


def test_operators_constant():
    assert " ".join(OPERATORS) == OPS
