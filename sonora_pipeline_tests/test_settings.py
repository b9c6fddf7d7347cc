"""The settings file: every section's defaults, a message with the file's line, the path and the fix for each
kind of mistake (all of them reported together), the checks against the mirror's columns, and conditions as
SQL and SOQL that no value can change the meaning of."""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.generator import generate_org
from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import compile_query
from sonora_pipeline.localorg.store import OrgStore
from sonora_pipeline.model.rules import (
    account_inclusion_sql,
    columns_from_mirror,
    condition_sql,
    validate_against_schema,
)
from sonora_pipeline.salesforce.describe import DUCKDB_TYPES
from sonora_pipeline.settings import (
    OPERATORS,
    RESERVED_COLUMNS,
    Condition,
    Settings,
    SettingsError,
    SyncSettings,
    load_settings,
    model_required_fields,
    validate_settings,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "test-settings.yaml"
TODAY = dt.date(2025, 6, 1)
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
OPS = "= != < <= > >= in not_in like is_null is_not_null"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sonora.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
    return path


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
    with pytest.raises(ValidationError, match="frozen"):
        settings.renewals.horizon_days = 5  # type: ignore[misc]


# -- one message per mistake: file, line, column, path, fix --------------------------------------------------------

@dataclass(frozen=True)
class Mistake:
    """A settings file with one mistake, and the one problem it must give: `where` (line, column and the
    setting's path) and `says` (what is wrong and the fix) follow the file's name exactly; `also` lists further
    parts of the message; `whole`: `says` is the entire rest of the message."""

    yaml: str
    where: str
    says: str
    also: tuple[str, ...] = ()
    whole: bool = False


FIELD_NAME_FIX = ("is not a Salesforce field API name; write the field's API name as in Setup > Object Manager > "
                  "Fields & Relationships, e.g. Industry or ARR__c (no spaces, no relationship paths)")

MISTAKES = {
    "unknown top-level key, did you mean": Mistake(
        """
        sync:
          lag_seconds: 5
        acounts:
          include: {}
        """,
        "line 3, column 1 (acounts)", "unknown setting 'acounts' (did you mean 'accounts'?)",
        also=("sync, accounts, mapping, contracts, renewals, health, ecsat",)),
    "unknown nested key, did you mean": Mistake(
        """
        health:
          weights:
            engagment: 0.5
        """,
        "line 3, column 5 (health.weights.engagment)",
        "unknown setting 'engagment' (did you mean 'engagement'?); the settings under health.weights are: "
        "engagement, support, commercial, sentiment"),
    "text for a whole number": Mistake(
        """
        renewals:
          horizon_days: soon
        """,
        "line 2, column 17 (renewals.horizon_days)",
        "'soon' is not a whole number; write a number without quotes (e.g. horizon_days: 120)"),
    "number out of range": Mistake(
        "ecsat:\n  sla_hours: 0\n",
        "line 2, column 14 (ecsat.sla_hours)", "0 is out of range: it must be above 0"),
    "unknown operator": Mistake(
        """
        accounts:
          include:
            conditions:
              - {field: Industry, op: "!=", value: Government}
              - {field: Industry, op: "=>", value: Retail}
        """,
        "line 5, column 31 (accounts.include.conditions[1].op)", f"unknown operator '=>'; use one of {OPS}"),
    "in with a single value": Mistake(
        """
        accounts:
          include:
            conditions:
              - field: Type
                op: in
                value: Customer
        """,
        "line 6, column 16 (accounts.include.conditions[0].value)",
        "'in' needs a list of values, e.g. value: [Customer, B]"),
    "in without a value": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {field: Type, op: in}\n",
        "line 4, column 9 (accounts.include.conditions[0])", "'in' needs a list of values, e.g. value: [A, B]"),
    "in with an empty list": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {field: Type, op: in, value: []}\n",
        "line 4, column 38 (accounts.include.conditions[0].value)", "'in' needs at least one value in its list"),
    "= with a list": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {field: Type, op: =, value: [a, b]}\n",
        "line 4, column 37 (accounts.include.conditions[0].value)",
        "'=' compares with one value, not a list; use op: in (or not_in) for a list"),
    "like with a number": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {field: Type, op: like, value: 5}\n",
        "line 4, column 40 (accounts.include.conditions[0].value)",
        "'like' needs a text pattern, e.g. value: \"%5%\""),
    "a value that is not a number": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {field: Type, op: in, value: [1, .nan]}\n",
        "line 4, column 42 (accounts.include.conditions[0].value[1])",
        "nan is not a usable number; write a finite number"),
    "a value that is a mapping": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {field: Type, op: =, value: {a: 1}}\n",
        "line 4, column 37 (accounts.include.conditions[0].value)",
        "{'a': 1} is not a single value; use text, a number, true/false, a date (YYYY-MM-DD) or today"),
    "a condition without its field": Mistake(
        "accounts:\n  include:\n    conditions:\n      - {op: =, value: x}\n",
        "line 4, column 9 (accounts.include.conditions[0])", "missing setting 'field'; add 'field: ...' here"),
    "is_null with a value": Mistake(
        """
        contracts:
          account_conditions:
            - {field: Contract_End_Date__c, op: is_null, value: 2025-01-01}
        """,
        "line 3, column 57 (contracts.account_conditions[0].value)",
        "'is_null' takes no value; remove 'value: 2025-01-01'"),
    "comparison without a value": Mistake(
        """
        contracts:
          account_conditions:
            - {field: Contract_End_Date__c, op: ">="}
        """,
        "line 3, column 7 (contracts.account_conditions[0])",
        "'>=' needs a value; add 'value: ...' (to match empty fields use op: is_null)"),
    "a time where a date is expected": Mistake(
        """
        contracts:
          account_conditions:
            - {field: Contract_End_Date__c, op: ">=", value: 2025-01-01T10:00:00}
        """,
        "line 3, column 54 (contracts.account_conditions[0].value)",
        "2025-01-01T10:00:00 has a time; only dates are supported: write YYYY-MM-DD (e.g. 2025-01-01) or today"),
    "condition field that is not an API name": Mistake(
        """
        accounts:
          include:
            conditions: [{field: "Account.Industry", op: "=", value: x}]
        """,
        "line 3, column 26 (accounts.include.conditions[0].field)", f"'Account.Industry' {FIELD_NAME_FIX}"),
    "mapping source that is not an API name": Mistake(
        "mapping:\n  account:\n    \"Bad Name\": x\n",
        "line 3, column 5 (mapping.account.Bad Name)", f"'Bad Name' {FIELD_NAME_FIX}", whole=True),
    "renewal field that is not an API name": Mistake(
        "renewals:\n  contract_end_field: a.b\n",
        "line 2, column 23 (renewals.contract_end_field)", f"'a.b' {FIELD_NAME_FIX}", whole=True),
    "NPS field that is a number": Mistake(
        "health:\n  nps_field: 5\n", "line 2, column 14 (health.nps_field)", f"5 {FIELD_NAME_FIX}", whole=True),
    "write-back field that is not an API name": Mistake(
        "writeback:\n  mappings:\n    - {column: ecsat.ecsat, field: \"bad name\"}\n",
        "line 3, column 36 (writeback.mappings[0].field)", f"'bad name' {FIELD_NAME_FIX}", whole=True),
    "duplicate mapping target": Mistake(
        """
        mapping:
          account:
            ARR__c: arr
            AnnualRevenue: arr
        """,
        "line 4, column 20 (mapping.account.AnnualRevenue)",
        "column 'arr' is already the target of ARR__c; each field needs its own column (e.g. arr_2)"),
    "mapping target that is a model column": Mistake(
        """
        mapping:
          contact:
            Persona__c: email
        """,
        "line 3, column 17 (mapping.contact.Persona__c)",
        "column 'email' is one of the model's own columns; choose another name for Persona__c (e.g. email_sf)"),
    "mapping target that is not an identifier": Mistake(
        """
        mapping:
          account:
            Tier__c: Customer Tier
        """,
        "line 3, column 14 (mapping.account.Tier__c)",
        "'Customer Tier' is not a valid column name: use lower-case letters, digits and _, starting with a letter "
        "(e.g. customer_tier)"),
    "mapping that is a list": Mistake(
        "mapping:\n  account: [a]\n", "line 2, column 12 (mapping.account)",
        "a list is not a section; write its settings indented below it (key: value lines), or remove it to use "
        "the defaults", whole=True),
    "all weights zero": Mistake(
        """
        health:
          weights: {engagement: 0, support: 0, commercial: 0, sentiment: 0}
        """,
        "line 2, column 12 (health.weights)",
        "all weights are 0; give at least one measure a weight above 0 (e.g. engagement: 0.35)"),
    "negative weight": Mistake(
        "health:\n  weights:\n    support: -1\n",
        "line 3, column 14 (health.weights.support)", "-1 is out of range: it must be at least 0"),
    "a number in quotes": Mistake(
        "health:\n  weights:\n    support: \"1\"\n", "line 3, column 14 (health.weights.support)",
        "'1' is not a number; write a number without quotes (e.g. support: 0.25)", whole=True),
    "bands inverted": Mistake(
        """
        health:
          bands:
            green: 40
            yellow: 70
        """,
        "line 3, column 12 (health.bands.green)", "green (40) must be above yellow (70); e.g. green: 70, yellow: 40"),
    "contracts without any rule": Mistake(
        """
        contracts:
          account_conditions: []
          won_opportunity_within_days: null
        """,
        "line 2, column 3 (contracts)",
        "no rule is set, so no customer would ever be paying; set account_conditions or won_opportunity_within_days"),
    "a choice that is not one": Mistake(
        "contracts:\n  match: some\n", "line 2, column 10 (contracts.match)",
        "'some' is not allowed here; use one of 'any' or 'all'", whole=True),
    "an initial import that is not one": Mistake(
        "sync:\n  initial_import: last week\n", "line 2, column 19 (sync.initial_import)",
        "must be 'active', 'all' or 'since:YYYY-MM-DD' (e.g. since:2025-06-01)", whole=True),
    "an initial import since a day that does not exist": Mistake(
        "sync:\n  initial_import: since:2025-13-01\n", "line 2, column 19 (sync.initial_import)",
        "2025-13-01 is not a date (month must be in 1..12); write since:YYYY-MM-DD with a real day "
        "(e.g. since:2025-06-01), active or all", whole=True),
    "a date that is not one": Mistake(
        "sync:\n  partitions_start: tomorrow\n", "line 2, column 21 (sync.partitions_start)",
        "'tomorrow' is not a date; write YYYY-MM-DD without quotes (e.g. partitions_start: 2025-01-01)", whole=True),
    "a custom object without __c": Mistake(
        "sync:\n  custom_objects: [Invoice]\n", "line 2, column 19 (sync.custom_objects)",
        "'Invoice' is not a custom object API name (they end in __c, e.g. Invoice__c)", whole=True),
    "a list that is a single value": Mistake(
        "sync:\n  required_fields: {Account: ARR__c}\n", "line 2, column 30 (sync.required_fields.Account)",
        "'ARR__c' is not a list; write a list, e.g. [A, B] or one '- item' per line", whole=True),
    "a number where text is expected": Mistake(
        "sync:\n  active_account_types: [1]\n", "line 2, column 26 (sync.active_account_types[0])",
        "1 is not text; put it in quotes, e.g. \"1\"", whole=True),
    "a number where true/false is expected": Mistake(
        "writeback:\n  dry_run: 1\n", "line 2, column 12 (writeback.dry_run)",
        "1 is not true or false; write true or false", whole=True),
    "write-back enabled with nothing to write": Mistake(
        """
        writeback:
          enabled: true
        """,
        # Not written in the file: the message says it is the default, under the section that is there.
        "line 1, column 1 (writeback.mappings, a default: not set under writeback)",
        "write-back is enabled but no mapping says what to write where; add mappings",
        also=("health_scores.score", "enabled: false")),
    "write-back of a table that cannot be written back": Mistake(
        "writeback:\n  mappings:\n    - {column: health_score.score, field: A__c}\n",
        "line 3, column 16 (writeback.mappings[0].column)",
        "table 'health_score' cannot be written back (did you mean 'health_scores'?); use one of health_scores, "
        "ecsat, customers, engagement_signals, renewals", whole=True),
    "write-back of something that is not a column": Mistake(
        "writeback:\n  mappings:\n    - {column: Health.Score, field: A__c}\n",
        "line 3, column 16 (writeback.mappings[0].column)",
        "'Health.Score' is not a model column; write <table>.<column> in lower case, e.g. health_scores.score",
        whole=True),
    "write-back values that are empty": Mistake(
        "writeback:\n  mappings:\n    - {column: ecsat.x, field: A__c, values: {}}\n",
        "line 3, column 46 (writeback.mappings[0].values)",
        "'values' is empty; list model value -> Salesforce value pairs (e.g. green: Green), or remove it to write "
        "the model's values as they are", whole=True),
    "write-back of two columns to one field": Mistake(
        "writeback:\n  mappings:\n    - {column: ecsat.a, field: A__c}\n    - {column: ecsat.b, field: a__c}\n",
        "line 4, column 32 (writeback.mappings[1].field)",
        "Account.a__c is already the target of mappings[0] (ecsat.a); each field takes one column: remove one of "
        "them or choose another field", whole=True),
    "YAML that does not parse": Mistake(
        """
        renewals:
          horizon_days: 120
        health:
          bands: {green: 70, yellow: 40
        ecsat:
          sla_hours: 48
        """,
        "line 5, column 6", "not valid YAML: ",
        also=("started at line 4, column 10", "correct the YAML syntax there")),
    "unquoted >= gets a quoting hint": Mistake(
        """
        contracts:
          account_conditions:
            - field: Contract_End_Date__c
              op: >=
              value: today
        """,
        "line 4, column 12", "not valid YAML: ", also=("put the value in quotes", 'op: ">="')),
    "a document that is a list": Mistake(
        """
        - sync
        - accounts
        """,
        "line 1, column 1",
        "the settings must be a mapping of sections (sync:, accounts:, mapping:, contracts:, renewals:, health:, "
        "ecsat:, writeback:), not a list; see sonora.example.yaml", whole=True),
    "a document that is a number": Mistake(
        "42\n", "line 1, column 1", "the settings must be a mapping of sections (sync:, accounts:, mapping:, "
        "contracts:, renewals:, health:, ecsat:, writeback:), not a number; see sonora.example.yaml", whole=True),
    "a section that is a number": Mistake(
        "renewals: 120\n", "line 1, column 11 (renewals)",
        "120 is not a section; write its settings indented below it"),
    "a key written twice": Mistake(
        """
        renewals:
          horizon_days: 90
          horizon_days: 120
        """,
        "line 3, column 3 (renewals.horizon_days)",
        "duplicate setting 'horizon_days', also set at line 2; keep only one (the last one would win)", whole=True),
}


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in MISTAKES.items()])
def test_a_mistake_gets_one_message_with_its_line_path_and_fix(tmp_path, case):
    path = write(tmp_path, case.yaml)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert_one_problem(info.value, f"{path} {case.where}: ", case)


def assert_one_problem(err: SettingsError, place: str, case: Mistake) -> None:
    """One mistake, one problem: it starts at the file, line, column and path, says what is wrong and the fix."""
    assert err.problems == [str(err)], err.problems
    problem = err.problems[0]
    assert problem.startswith(place + case.says), problem
    if case.whole:
        assert problem == place + case.says
    for part in case.also:
        assert part in problem, (part, problem)


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


def test_every_problem_of_one_section_is_reported_at_its_own_line(tmp_path):
    # One validator (a mapping, the write-back's fields) finds several problems: each gets its line.
    path = write(tmp_path, """
        mapping:
          account:
            ARR__c: arr
            AnnualRevenue: arr
            "Bad Name": bad
            Tier__c: name
        writeback:
          mappings:
            - {column: ecsat.a, field: A__c}
            - {column: ecsat.b, field: A__c}
            - {column: ecsat.c, field: a__C}
        """)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    err = info.value
    assert str(err).splitlines()[0] == f"Settings file {path} has 5 problems:"
    where = [p.split(": ", 1)[0].removeprefix(f"{path} ") for p in err.problems]
    assert where == [
        "line 4, column 20 (mapping.account.AnnualRevenue)", "line 5, column 5 (mapping.account.Bad Name)",
        "line 6, column 14 (mapping.account.Tier__c)", "line 10, column 32 (writeback.mappings[1].field)",
        "line 11, column 32 (writeback.mappings[2].field)",
    ]
    assert "already the target of ARR__c" in err.problems[0] and "API name" in err.problems[1]
    assert "one of the model's own columns" in err.problems[2]
    assert all("already the target of mappings[0] (ecsat.a)" in p for p in err.problems[3:])


def test_the_model_columns_a_mapping_may_not_take():
    assert {"external_id", "name", "is_paying", "customer_id", "email", "title"} <= RESERVED_COLUMNS
    assert all(column == column.lower() and column.isidentifier() for column in RESERVED_COLUMNS)


# -- against the mirror's columns -------------------------------------------------------------------------------

def test_default_settings_fit_a_realistic_mirror():
    validate_against_schema(Settings(), mirror_columns())


MIRROR_MISTAKES = {
    "today on a text field": Mistake(
        """
        accounts:
          include:
            conditions:
              - {field: Industry, op: "=", value: today}
        """,
        "line 4, column 43 (accounts.include.conditions[0].value)",
        "'today' only works on date fields, and Account.Industry is a text field (VARCHAR); write text"),
    "a field that is not in the mirror": Mistake(
        """
        contracts:
          account_conditions:
            - {field: Foo__c, op: "=", value: x}
        """,
        "line 3, column 15 (contracts.account_conditions[0].field)",
        "Account.Foo__c is not in the mirror: it does not exist, or the run-as user cannot read it "
        "(Setup > Object Manager > Account > Fields & Relationships > Foo__c > Set Field-Level Security)"),
    "a misspelt field gets a suggestion": Mistake(
        """
        accounts:
          include:
            conditions: [{field: Industri, op: is_not_null}]
        """,
        "line 3, column 26 (accounts.include.conditions[0].field)", "Account.Industri is not in the mirror",
        also=("(did you mean 'Industry'?)",)),
    "text on a number field": Mistake(
        """
        accounts:
          include:
            conditions:
              - {field: ARR__c, op: ">", value: "100k"}
        """,
        "line 4, column 41 (accounts.include.conditions[0].value)",
        "'100k' (text) does not fit: Account.ARR__c is a number field (DOUBLE); write a number without quotes "
        "(e.g. value: 100000)"),
    "a number in a list for a text field": Mistake(
        """
        accounts:
          include:
            conditions:
              - {field: Tier__c, op: in, value: [Gold, 2]}
        """,
        "line 4, column 48 (accounts.include.conditions[0].value[1])",
        "2 (a number) does not fit: Account.Tier__c is a text field (VARCHAR); write text (in quotes when it "
        "looks like a number"),
    "no on a text field explains YAML": Mistake(
        """
        accounts:
          include:
            conditions: [{field: Tier__c, op: "=", value: no}]
        """,
        "line 3, column 51 (accounts.include.conditions[0].value)",
        "false (true/false) does not fit: Account.Tier__c is a text field (VARCHAR)",
        also=('quote the text (e.g. value: "no")',)),
    "like on a number field": Mistake(
        """
        accounts:
          include:
            conditions:
              - {field: NumberOfEmployees, op: like, value: "1%"}
        """,
        "line 4, column 40 (accounts.include.conditions[0].op)",
        "'like' only works on text fields, and Account.NumberOfEmployees is a number field (BIGINT); use = != < "
        "<= > >= in or not_in"),
    "an order comparison on a true/false field": Mistake(
        """
        accounts:
          include:
            conditions: [{field: IsDeleted, op: ">", value: false}]
        """,
        "line 3, column 41 (accounts.include.conditions[0].op)",
        "Account.IsDeleted is a true/false field (BOOLEAN): use = or !="),
    "a mapping source that is not in the mirror": Mistake(
        """
        mapping:
          contact:
            Persona__c: persona
            Churn_Risk__c: churn_risk
        """,
        "line 4, column 5 (mapping.contact.Churn_Risk__c)",
        "Contact.Churn_Risk__c is not in the mirror: it does not exist, or the run-as user cannot read it "
        "(Setup > Object Manager > Contact > Fields & Relationships > Churn_Risk__c > Set Field-Level Security)"),
    "a renewal field of the wrong type": Mistake(
        "renewals:\n  contract_end_field: Tier__c\n",
        "line 2, column 23 (renewals.contract_end_field)",
        "Account.Tier__c is a text field (VARCHAR), but renewals.contract_end_field needs a date field"),
}


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in MIRROR_MISTAKES.items()])
def test_a_mistake_against_the_mirror_gets_one_message_with_its_line_path_and_fix(tmp_path, case):
    path = write(tmp_path, case.yaml)
    settings = load_settings(path)
    with pytest.raises(SettingsError) as info:
        validate_against_schema(settings, mirror_columns())
    assert_one_problem(info.value, f"{path} {case.where}: ", case)


def test_the_defaults_fit_a_mirror_without_custom_fields(tmp_path):
    columns = {name: {c: t for c, t in cols.items() if not c.endswith("__c")}
               for name, cols in mirror_columns().items()}
    assert "ARR__c" in mirror_columns()["Account"] and "ARR__c" not in columns["Account"]
    validate_against_schema(Settings(), columns)
    validate_against_schema(load_settings(write(tmp_path, "renewals:\n  horizon_days: 90\n")), columns)
    message = schema_error_of(tmp_path, "renewals:\n  arr_field: ARR__c\n", columns)
    assert "line 2, column 14 (renewals.arr_field): Account.ARR__c is not in the mirror" in message


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
