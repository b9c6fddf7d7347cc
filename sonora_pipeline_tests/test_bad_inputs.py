"""Bad inputs, each through the entry point that would write: a named message with its fix, and nothing written.

Every case starts from a mirror that was synced and modelled, runs what a user would run (a sync through
the Salesforce resource, a settings file read then applied to the mirror, the CLI), and checks that the
DuckDB file holds exactly what it held before (every table's row count and row hashes) and that the org
was not written to. Write-back targets and malformed server answers have their cases next to their code
(`writeback/test_writeback.py`, `sync/test_malformed_responses.py`), marked `bad_input` like these.
"""

from __future__ import annotations

import shutil
import socket
import textwrap
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest

from sonora_pipeline import cli
from sonora_pipeline.defs.resources import SalesforceResource
from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.mirror.warehouse import write_connection
from sonora_pipeline.model.build import build_all
from sonora_pipeline.salesforce.diagnose import check_connection
from sonora_pipeline.salesforce.errors import ConfigError, OrgMismatch, SalesforceError, TooManyPurges
from sonora_pipeline.settings import Settings, SettingsError, SyncSettings, load_settings
from sonora_pipeline.sync.engine import reconcile_ids, sync_object
from sonora_pipeline.sync.formulas import refresh_formulas
from sonora_pipeline.writeback.plan import compute_plan
from sonora_pipeline.writeback.push import run_writeback
from sonora_pipeline_tests.conftest import running_org
from sonora_pipeline_tests.suite_settings import suite_settings_with
from sonora_pipeline_tests.sync.helpers import client_for, log

pytestmark = pytest.mark.bad_input

SYNC = SyncSettings(initial_import="all", lag_seconds=5)
TODAY = date.today()
WRITEBACK = suite_settings_with(writeback={"enabled": True})


def fingerprint(db: Path) -> dict[str, tuple] | None:
    """Every table's row count and an order-free hash of its rows (None when there is no file)."""
    if not db.exists():
        return None
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        return {f"{s}.{t}": conn.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{s}"."{t}" AS t').fetchone()
                for s, t in tables}


def org_fingerprint(org: LocalOrg) -> tuple:
    """The org's Accounts as stored, and the Bulk ingest jobs it was given."""
    rows = org.store.conn.execute('SELECT count(*), bit_xor(hash(a)) FROM "Account" AS a').fetchone()
    return rows, len(org.bulk.ingest_jobs)


def trusted_bundle(org: LocalOrg) -> Path:
    """A CA bundle that trusts `org` and its sandbox (written by `world`)."""
    return Path(org.ca_bundle).with_name("trusted-with-sandbox.pem")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An org, a second org whose External Client App has another key (a sandbox of it), and a mirror of the
    first, synced and modelled."""
    root = tmp_path_factory.mktemp("bad-inputs")
    with running_org(root / "org", records=400, seed=21) as org, \
            running_org(root / "sandbox", records=60, seed=22) as sandbox:
        org.advance_clock(SYNC.lag_seconds + 3)
        # Trust both orgs, as a machine trusts every real org's public CA.
        trusted_bundle(org).write_text(Path(org.ca_bundle).read_text() + Path(sandbox.ca_bundle).read_text())
        db = root / "mirror.duckdb"
        client = client_for(org)
        for name in SYNC.objects:
            sync_object(client, db, name, SYNC, window=None, partition_key=None, run_id="setup", log=log)
        with write_connection(db) as conn:
            build_all(conn, Settings(), TODAY)
            compute_plan(conn, WRITEBACK)  # the write-back ledger, as after a first write-back run
        yield org, sandbox, db


@pytest.fixture
def mirror(world, tmp_path):
    """A private copy of the synced, modelled mirror, and a check that it and the org are left as they were."""
    org, _, db = world
    copy = tmp_path / "mirror.duckdb"
    shutil.copy(db, copy)
    before, org_before = fingerprint(copy), org_fingerprint(org)
    yield copy
    assert fingerprint(copy) == before, "the mirror changed"
    assert org_fingerprint(org) == org_before, "the org was written to"


# -- credentials and instance URL: the sync (as the asset runs it) and test-connection say the same thing ------

@dataclass(frozen=True)
class Connection:
    url: str = "{org}"
    key: str = "{key}"
    secret: str = "{secret}"
    api_version: str = "62.0"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CONNECTION_CASES = {
    "wrong key": (Connection(key="3MVG9wrongKEY000000000000000000000000"), "does not know this consumer key",
                  "SALESFORCE_CONSUMER_KEY"),
    "wrong secret": (Connection(secret="0123456789ABCDEF"), "rejected the consumer secret",
                     "SALESFORCE_CONSUMER_SECRET"),
    "empty key": (Connection(key="  "), "consumer key is empty", "SALESFORCE_CONSUMER_KEY"),
    "empty secret": (Connection(secret=""), "consumer secret is empty", "SALESFORCE_CONSUMER_SECRET"),
    "empty URL": (Connection(url="   "), "instance URL is empty", "SALESFORCE_INSTANCE_URL"),
    "plain http, not loopback": (Connection(url="http://acme.my.salesforce.com"), "uses plain http://",
                                 "use https://"),
    "URL without a scheme": (Connection(url="acme.my.salesforce.com"), "is not a valid URL", "My Domain"),
    "URL with a bad port": (Connection(url="https://acme.my.salesforce.com:99999"), "is not a valid URL",
                            "SALESFORCE_INSTANCE_URL"),
    "URL with a path": (Connection(url="https://acme.my.salesforce.com/lightning/page/home"), "has a path",
                        "https://acme.my.salesforce.com (without /lightning/page/home)"),
    "generic login host": (Connection(url="https://login.salesforce.com"), "generic login hosts", "My Domain"),
    "Lightning UI address": (Connection(url="https://acme.lightning.force.com"), "Lightning UI address",
                             "https://acme.my.salesforce.com"),
    "credentials in the URL": (Connection(url="https://admin:hunter2@acme.my.salesforce.com"),
                               "user name or password", "remove the 'user:password@' part"),
    "API version that is not one": (Connection(api_version="sixty-two"), "is not a Salesforce API version",
                                    "no leading 'v'"),
    "URL of another org": (Connection(url="{sandbox}"), "does not know this consumer key", "another org"),
    "sandbox key used against production": (Connection(key="{sandbox_key}", secret="{sandbox_secret}"),
                                            "does not know this consumer key", "a sandbox instead of production"),
}


def _values(org: LocalOrg, sandbox: LocalOrg) -> dict[str, object]:
    return {"org": org.instance_url, "sandbox": sandbox.instance_url, "key": org.credentials.consumer_key,
            "secret": org.credentials.consumer_secret, "sandbox_key": sandbox.credentials.consumer_key,
            "sandbox_secret": sandbox.credentials.consumer_secret, "closed": _closed_port()}


def _resource(case: Connection, org: LocalOrg, sandbox: LocalOrg, values=None) -> SalesforceResource:
    values = values or _values(org, sandbox)
    return SalesforceResource(instance_url=case.url.format(**values), consumer_key=case.key.format(**values),
                              consumer_secret=case.secret.format(**values), api_version=case.api_version,
                              ca_bundle=str(trusted_bundle(org)))


def _sync_through(resource: SalesforceResource, db: Path) -> None:
    """What `salesforce/<object>` does: a client from the resource, then the sync of one object."""
    sync_object(resource.client(log), db, "Account", SYNC, window=None, partition_key=None, run_id="bad", log=log)


@pytest.mark.parametrize("case", CONNECTION_CASES, ids=list(CONNECTION_CASES))
def test_bad_connection_settings(world, mirror, case):
    org, sandbox, _ = world
    settings, message, fix = CONNECTION_CASES[case]
    values = _values(org, sandbox)
    message, fix = message.format(**values), fix.format(**values)
    resource = _resource(settings, org, sandbox, values)
    with pytest.raises(SalesforceError) as raised:
        _sync_through(resource, mirror)
    text = str(raised.value)
    assert message in text and fix in text, text
    assert "Traceback" not in text
    assert not resource.consumer_secret or resource.consumer_secret not in text
    try:
        report = check_connection(resource.connection(), objects=("Account",))
    except SalesforceError as err:  # refused before any request: the same error the sync raised
        assert str(err) == text
    else:
        assert not report.ok and message in report.render() and fix in report.render(), report.render()


def test_nothing_listening_at_the_url(world, mirror):
    """Test-connection says so at once and names the URL (a sync would retry first: an outage passes)."""
    org, sandbox, _ = world
    values = _values(org, sandbox)
    resource = _resource(Connection(url="https://127.0.0.1:{closed}"), org, sandbox, values)
    report = check_connection(resource.connection(), objects=("Account",))
    text = report.render()
    assert not report.ok and f"https://127.0.0.1:{values['closed']}" in text and "could not reach" in text, text
    assert "SALESFORCE_INSTANCE_URL" in text


@pytest.mark.parametrize("problem", ["flow disabled", "no run-as user"])
def test_external_client_app_not_ready(world, mirror, problem):
    org, sandbox, _ = world
    change, message, fix = {
        "flow disabled": ({"client_credentials_enabled": False}, "refused the client credentials grant",
                          "enable 'Client Credentials Flow'"),
        "no run-as user": ({"run_as_user": False}, "no Run As user", "set 'Run As'"),
    }[problem]
    org.configure_app(**change)
    try:
        with pytest.raises(SalesforceError) as raised:
            _sync_through(_resource(Connection(), org, sandbox), mirror)
    finally:
        org.configure_app(client_credentials_enabled=True, run_as_user=True)
    assert message in str(raised.value) and fix in str(raised.value)


# -- another org, no org: refused before anything is read or written ----------------------------------------------

def _mirrored_org(db: Path) -> str:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT org_id FROM salesforce._org").fetchone()[0]


@pytest.mark.parametrize("entry", ["sync", "reconcile", "write-back", "formula refresh"])
def test_a_synced_warehouse_refuses_another_org(world, mirror, entry):
    """Credentials that reach another org (its own URL, key and secret: everything valid) on a warehouse that
    mirrors the first: the sync, the reconcile, the formula refresh and the write-back refuse with both ids and the fix, and neither
    the warehouse nor either org is written to."""
    org, sandbox, _ = world
    assert _mirrored_org(mirror) == org.org_id != sandbox.org_id
    other = _resource(Connection(url="{sandbox}", key="{sandbox_key}", secret="{sandbox_secret}"), org, sandbox)
    sandbox_before = org_fingerprint(sandbox)
    client = other.client(log)
    calls = client.api_calls
    with pytest.raises(OrgMismatch) as raised:
        if entry == "sync":
            sync_object(client, mirror, "Account", SYNC, window=None, partition_key=None, run_id="bad", log=log)
        elif entry == "reconcile":
            reconcile_ids(client, mirror, "Account", run_id="bad", log=log)
        elif entry == "formula refresh":
            refresh_formulas(client, mirror, "Account", run_id="bad", log=log)
        else:
            run_writeback(client, mirror, WRITEBACK, run_id="bad", log=log)
    text = str(raised.value)
    assert f"{mirror} mirrors org {org.org_id}" in text and f"reach org {sandbox.org_id}" in text, text
    assert sandbox.instance_url in text and org.instance_url in text
    assert "point SONORA_DUCKDB_PATH at a new file" in text and "restore the SALESFORCE_INSTANCE_URL" in text
    assert sandbox.credentials.consumer_secret not in text
    assert org_fingerprint(sandbox) == sandbox_before, "the other org was written to"
    assert client.api_calls - calls <= 2  # refused after describe, before any Bulk job or read-back


def test_the_org_inventory_of_another_org_is_not_written_into_the_warehouse(world, mirror):
    import dagster as dg

    from sonora_pipeline.defs.resources import WarehouseResource
    from sonora_pipeline.defs.salesforce.org_inventory import org_inventory

    org, sandbox, _ = world
    other = _resource(Connection(url="{sandbox}", key="{sandbox_key}", secret="{sandbox_secret}"), org, sandbox)
    result = dg.materialize([org_inventory], resources={"salesforce": other,
                                                        "warehouse": WarehouseResource(path=str(mirror))},
                            raise_on_error=False)
    assert not result.success
    text = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert f"mirrors org {org.org_id}" in text and f"reach org {sandbox.org_id}" in text, text


def test_the_same_org_by_its_15_character_id_is_not_another_org(world, mirror):
    """Salesforce shows an org id in 15 or 18 characters; the warehouse compares the 15 that are the id."""
    from sonora_pipeline.mirror.state import OrgIdentity, check_org

    org, _, _ = world
    with duckdb.connect(str(mirror), read_only=True) as conn:
        check_org(conn, OrgIdentity(org.org_id[:15], org.instance_url))
        with pytest.raises(OrgMismatch):
            check_org(conn, OrgIdentity(org.org_id[:14] + ("A" if org.org_id[14] != "A" else "B"), "x"))


def test_an_unset_instance_url_is_refused_not_replaced_by_the_demo_org(world, mirror, monkeypatch, tmp_path):
    """The Dagster resource as the definitions build it with no SALESFORCE_INSTANCE_URL: every use says which
    variable and both fixes (a My Domain URL, or `local` for the demo org); no local org is started."""
    from sonora_pipeline.defs.resources import salesforce_resource

    for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CONSUMER_KEY", "SALESFORCE_CONSUMER_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SONORA_HOME", str(tmp_path / "home"))
    resource = salesforce_resource()
    with pytest.raises(ConfigError) as raised:
        _sync_through(resource, mirror)
    text = str(raised.value)
    assert "SALESFORCE_INSTANCE_URL is not set" in text and "My Domain" in text
    assert "SALESFORCE_INSTANCE_URL=local" in text
    # The change sensor skips its tick with the same reason (and requests no run).
    import dagster as dg

    from sonora_pipeline.defs.resources import WarehouseResource
    from sonora_pipeline.defs.salesforce.sensors import salesforce_changes
    from sonora_pipeline.defs.settings import SettingsResource

    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"salesforce": resource, "warehouse": WarehouseResource(path=str(mirror)),
                                          "settings": SettingsResource()}
    ) as context:
        tick = salesforce_changes(context)
    skip = tick if isinstance(tick, dg.SkipReason) else tick.skip_reason
    assert skip is not None and "SALESFORCE_INSTANCE_URL is not set" in skip.skip_message
    assert not (tmp_path / "home").exists()  # no local org was started or looked for


def test_the_command_line_refuses_an_unset_url_before_anything_is_written(monkeypatch, tmp_path, capsys):
    db = tmp_path / "never.duckdb"
    monkeypatch.delenv("SALESFORCE_INSTANCE_URL", raising=False)
    monkeypatch.setenv("SONORA_DUCKDB_PATH", str(db))
    monkeypatch.setenv("SONORA_HOME", str(tmp_path / "home"))
    for argv in (["sync"], ["test-connection"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "SALESFORCE_INSTANCE_URL is not set" in err and "Fix:" in err and "=local" in err
    assert not db.exists() and not (tmp_path / "home").exists()


def test_a_reconcile_that_would_purge_most_of_an_object_is_refused(org, tmp_path):
    """Most of an object's records gone at once looks the same as a mistake (a run-as user who lost access):
    above sync.max_purge_share nothing is marked, and the message names the object, the counts and the
    override."""
    db = tmp_path / "mirror.duckdb"
    org.advance_clock(SYNC.lag_seconds + 3)
    client = client_for(org)
    sync_object(client, db, "Task", SYNC, window=None, partition_key=None, run_id="setup", log=log)
    ids = [r[0] for r in org.store.conn.execute(
        'SELECT "Id" FROM "Task" WHERE NOT "IsDeleted" ORDER BY "Id"').fetchall()]
    gone = ids[: len(ids) * 3 // 4]
    for rid in gone:
        org.hard_delete("Task", rid)
    before = fingerprint(db)
    with pytest.raises(TooManyPurges) as raised:
        reconcile_ids(client, db, "Task", run_id="bad", log=log)
    text = str(raised.value)
    assert f"would mark {len(gone):,} of its {len(ids):,} live mirrored rows purged" in text, text
    assert "sync.max_purge_share (50%)" in text and "Nothing was marked for Task" in text
    assert "max_purge_share: 1.0" in text and "salesforce_reconcile_job" in text
    assert fingerprint(db) == before


# -- settings files: read, checked against the mirror, then applied (sync and model) — or refused -----------------

def _apply_settings_file(path: Path, org: LocalOrg, db: Path) -> None:
    """What a run does with the settings file: load it, sync with its sync section, rebuild the model."""
    settings = load_settings(path)
    with write_connection(db) as conn:
        build_all(conn, settings, TODAY)
    sync_object(client_for(org), db, "Account", settings.sync, window=None, partition_key=None, run_id="bad",
                log=log)


SETTINGS_CASES = {
    "unknown top-level key": ("acounts:\n  include:\n    types: [Customer]\n",
                              ["line 1", "acounts", "accounts"]),
    "unknown nested key": ("accounts:\n  include:\n    record_type: [Customer]\n",
                           ["line 3", "record_type", "record_types"]),
    "wrong type": ("renewals:\n  horizon_days: soon\n", ["line 2", "horizon_days", "soon"]),
    "number out of range": ("sync:\n  max_quota_share: 1.5\n", ["line 2", "max_quota_share"]),
    "YAML that does not parse": ("mapping:\n  account:\n    ARR__c: arr\n   Tier__c: tier\n", ["line 4"]),
    "duplicate target columns": ("mapping:\n  account:\n    ARR__c: revenue\n    AnnualRevenue: revenue\n",
                                 ["revenue", "AnnualRevenue", "ARR__c"]),
    "field that is not an API name": (
        "accounts:\n  include:\n    conditions:\n      - {field: \"Name; DROP TABLE account\", op: \"=\", value: x}\n",
        ["line 4", "not a Salesforce field API name"]),
    "unknown operator": ("accounts:\n  include:\n    conditions:\n      - {field: Name, op: \"~=\", value: x}\n",
                         ["line 4", "~="]),
    "field not in the mirror": ("mapping:\n  account:\n    Churn_Risk__c: churn_risk\n",
                                ["Churn_Risk__c", "line 3"]),
    "text compared with a number field": (
        "accounts:\n  include:\n    conditions:\n      - {field: NumberOfEmployees, op: \">\", value: many}\n",
        ["line 4", "NumberOfEmployees", "many"]),
    "bad initial import": ("sync:\n  initial_import: last week\n", ["line 2", "initial_import", "since:YYYY-MM-DD"]),
    "custom object that is not one": ("sync:\n  custom_objects: [Invoice]\n", ["line 2", "Invoice", "__c"]),
}


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=list(SETTINGS_CASES))
def test_bad_settings_files(world, mirror, tmp_path, case):
    org, _, _ = world
    text, fragments = SETTINGS_CASES[case]
    path = tmp_path / "sonora.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as raised:
        _apply_settings_file(path, org, mirror)
    message = str(raised.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# Values are data, never code: each is a literal Account.Type no Account has, so the filter selects nobody,
# in the model's SQL and in the initial import's SOQL alike.
INJECTIONS = {
    "quote": "O'Brien",
    "SQL OR 1=1": "x' OR '1'='1",
    "SQL comment and drop": "x'); DROP TABLE salesforce.account; --",
    "backslash escape": "x\\' OR Name != '",
    "unicode look-alikes and bidi": "Ｃｕｓｔｏｍｅｒ\u202e' OR 1=1 --",
}


@pytest.mark.parametrize("case", INJECTIONS, ids=list(INJECTIONS))
def test_injection_attempts_in_filter_values_are_plain_values(world, tmp_path, case):
    org, _, db = world
    value = INJECTIONS[case]
    copy = tmp_path / "mirror.duckdb"
    shutil.copy(db, copy)
    before = fingerprint(copy)
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    path = tmp_path / "sonora.yaml"
    path.write_text(textwrap.dedent(f"""\
        sync:
          initial_import: active
          active_account_types: ["{quoted}"]
        accounts:
          include:
            types: ["{quoted}"]
        """))
    settings = load_settings(path)
    assert settings.accounts.include.types == [value]
    with write_connection(copy) as conn:
        build_all(conn, settings, TODAY)
    after = fingerprint(copy)
    assert {k: v for k, v in after.items() if k.startswith("salesforce.")} == \
        {k: v for k, v in before.items() if k.startswith("salesforce.")}, "the mirror changed"
    with duckdb.connect(str(copy), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM sonora.customers").fetchone()[0] == 0
    fresh = tmp_path / "fresh.duckdb"
    result = sync_object(client_for(org), fresh, "Account", settings.sync, window=None, partition_key=None,
                         run_id="inject", log=log)
    expected = org.store.conn.execute(
        'SELECT count(*) FROM "Account" a WHERE NOT a."IsDeleted" AND EXISTS (SELECT 1 FROM "Opportunity" o '
        'WHERE o."AccountId" = a."Id" AND NOT o."IsClosed" AND NOT o."IsDeleted")').fetchone()[0]
    assert result.rows_upserted == expected  # active = open opportunities only; the type matched nobody


# -- the command line -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, db_name, message", [
    (["sync", "--objects", "Acount"], "never.duckdb", "unknown object(s) Acount"),
    (["sync", "--lookback", "yesterday"], "never.duckdb", "--lookback 'yesterday' is not a lookback"),
    (["sync", "--lookback", "2025-02-30"], "never.duckdb", "--lookback '2025-02-30' is not a lookback"),
    (["sync"], "sonora.duckdb", "named 'sonora', like the schema 'sonora'"),
    (["model"], "Salesforce.duckdb", "like the schema 'salesforce'"),
    (["localorg", "--hide-field", "AnnualRevenue"], "never.duckdb", "--hide-field takes Object.Field"),
    (["localorg", "--standard-fields-only", "--hide-field", "Account.ARR__c"], "never.duckdb",
     "no field Account.ARR__c to hide"),
], ids=["unknown object", "lookback word", "impossible date", "file named like a schema", "same, any case",
        "hidden field without object", "hidden field the org lacks"])
def test_bad_command_line_arguments(world, monkeypatch, tmp_path, capsys, argv, db_name, message):
    org, _, _ = world
    db = tmp_path / db_name
    for name, value in org.credentials.as_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SONORA_DUCKDB_PATH", str(db))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Fix:" in err
    assert not db.exists()


def _file_of_a_newer_duckdb(path):
    """A DuckDB file whose header says storage version 69 (DuckDB 2.x), with its header checksum fixed: DuckDB's
    checksum XORs x * 0xbf58476d1ce4e5b9 over the header's 64-bit words, so one word can be swapped."""
    import struct

    import duckdb

    duckdb.connect(str(path)).close()
    data = bytearray(path.read_bytes())
    assert data[8:12] == b"DUCK" and struct.unpack("<Q", data[12:20])[0] == 64
    mix = lambda word: (word * 0xBF58476D1CE4E5B9) & (2**64 - 1)  # noqa: E731
    before = struct.unpack("<Q", data[8:16])[0]
    data[12:20] = struct.pack("<Q", 69)
    after = struct.unpack("<Q", data[8:16])[0]
    data[0:8] = struct.pack("<Q", struct.unpack("<Q", data[0:8])[0] ^ mix(before) ^ mix(after))
    path.write_bytes(bytes(data))


@pytest.mark.bad_input
@pytest.mark.parametrize("argv", [["sync", "--quiet"], ["model"], ["snapshot"]], ids=lambda a: a[0])
def test_a_warehouse_written_by_a_newer_duckdb_is_named_with_the_fix(world, monkeypatch, tmp_path, capsys, argv):
    org, _, _ = world
    db = tmp_path / "warehouse.duckdb"
    _file_of_a_newer_duckdb(db)
    before = db.read_bytes()
    for name, value in org.credentials.as_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SONORA_DUCKDB_PATH", str(db))
    assert cli.main(argv) != 0
    err = capsys.readouterr().err
    assert f"The DuckDB file {db} cannot be read by DuckDB" in err and "version number 69" in err
    assert "Fix: move the file aside" in err and "Traceback" not in err
    assert db.read_bytes() == before
