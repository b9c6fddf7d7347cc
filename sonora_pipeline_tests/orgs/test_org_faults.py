"""One deployment, many orgs, each on its own: a tick skips each broken org with its reason and fix while the
healthy ones get their runs; an org's snapshot holds its rows only; one org's date range is re-read on
request; a run for an org no longer registered refuses before it reads or writes; each org has its own token
and its own API budget.

Multi-org definitions are structure (SONORA_ORGS at import), so Dagster runs in a child interpreter
(`harness.py`: one sensor tick, or `salesforce_sync_job` in process for org partitions) against one local
org fleet and one DAGSTER_HOME shared by the module's tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef

from sonora_pipeline.localorg.fleet import LocalOrgFleet, OrgSpec
from sonora_pipeline.mirror.names import RAW_SCHEMA, table_name_for
from sonora_pipeline.mirror.warehouse import publish_snapshot
from sonora_pipeline_tests.orgs.harness import ROOT, run_harness
from sonora_pipeline_tests.orgs.helpers import standard_settings, write_registry
from sonora_pipeline_tests.suite_settings import SUITE_SETTINGS
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.test_dagster_ui import dagster_home

SPECS = [OrgSpec(name="acme", records=40, seed=3),  # the demo's custom fields
         OrgSpec(name="globex", records=120, seed=4, custom_fields=False),  # more records: Ids acme lacks
         OrgSpec(name="initech", records=40, seed=5, custom_fields=False),
         OrgSpec(name="umbrella", records=20, seed=6, custom_fields=False),
         OrgSpec(name="hooli", records=20, seed=7, custom_fields=False),
         OrgSpec(name="soylent", records=20, seed=8, custom_fields=False),
         OrgSpec(name="wayne", records=20, seed=9, custom_fields=False)]
IMPORTED = ["acme", "globex", "initech", "umbrella"]
FIRST_SYNC = ["salesforce/account", "salesforce/contact", "salesforce/opportunity", "sonora/customers"]
ID = re.compile(r"^[0-9A-Za-z]{18}$")
MASTER_RECORD_TYPE = "012000000000000AAA"  # the same in every Salesforce org: not a record of either

pytestmark = pytest.mark.timeout(900)


def first_id(org, object_name: str = "Account") -> str:
    return org.store.conn.execute(f'SELECT "Id" FROM "{object_name}" WHERE NOT "IsDeleted" ORDER BY "Id" '
                                  "LIMIT 1").fetchone()[0]


def usage(org) -> int:
    return org.quota.snapshot().used


def tokens(org) -> int:
    """Access tokens the org has issued (its token endpoint's own count)."""
    return len(org.authority._tokens)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def org_ids(org) -> set[str]:
    """Every record Id the org holds, of every object, and the org's own id."""
    ids = {org.org_id}
    for obj in org.catalog.objects():
        ids |= {r[0] for r in org.store.conn.execute(f'SELECT "Id" FROM "{obj.name}"').fetchall()}
    return ids


def registry_for(directory: Path, world, orgs: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_registry(directory / "orgs.yaml", world.fleet, {o: world.settings[o] for o in orgs}, world.root)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The fleet, a registry of every org, a DAGSTER_HOME, and four orgs' first sync (Account, Contact and Opportunity,
    and the customer model for the two the isolation test reads)."""
    tmp = tmp_path_factory.mktemp("orgfaults")
    with LocalOrgFleet(SPECS) as fleet:
        for org in fleet:
            org.advance_clock(8)  # past the settings' 5 s lag
        settings = {spec.name: standard_settings(tmp / f"{spec.name}.yaml") for spec in SPECS}
        settings["acme"] = SUITE_SETTINGS
        home = dagster_home(tmp)
        # The instance's storage is created here, once, before any child opens it.
        dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()
        world = SimpleNamespace(fleet=fleet, settings=settings, root=tmp / "data", home=home, tmp=tmp)
        world.registry = registry_for(tmp / "all", world, [s.name for s in SPECS])
        out, _ = run_harness(world.registry, home, "sync", *IMPORTED, *[f"--asset={a}" for a in FIRST_SYNC])
        failed = {org: r["failures"] for org, r in out["result"].items() if not r["success"]}
        assert not failed, failed
        yield world


def test_an_orgs_snapshot_holds_its_rows_only_and_staff_query_reads_both(world, tmp_path):
    acme, globex = world.fleet.org("acme"), world.fleet.org("globex")
    snapshot = publish_snapshot(world.root / "acme" / "warehouse.duckdb", tmp_path / "acme-analyst.duckdb")
    acme_ids, globex_ids = org_ids(acme), org_ids(globex)
    globex_only = globex_ids - acme_ids
    # Local orgs number their records alike, so the Ids they share prove nothing: globex has three times
    # acme's records, and the Ids only it has must not be in acme's snapshot.
    assert len(globex_only) > 50
    seen: set[str] = set()
    with duckdb.connect(str(snapshot), read_only=True) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_catalog = current_database()").fetchall()
        assert len(tables) >= 3, tables
        for schema, table in tables:
            columns = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                   "AND table_name = ? AND data_type = 'VARCHAR'", [schema, table]).fetchall()
            for (column,) in columns:
                if column == "Id" or column.endswith("Id") or column.lower().endswith("_id"):
                    values = conn.execute(f'SELECT DISTINCT "{column}" FROM "{schema}"."{table}"').fetchall()
                    seen |= {v for (v,) in values if isinstance(v, str) and ID.match(v) and v != MASTER_RECORD_TYPE}
    assert len(seen) > 10, "the snapshot holds acme's records"
    assert not seen & globex_only, sorted(seen & globex_only)[:5]
    assert seen <= acme_ids, sorted(seen - acme_ids)[:5]
    assert globex.org_id not in seen
    # The rows under the Ids both orgs use are acme's, field by field.
    for object_name in ("Account", "Contact"):
        assert differences(acme, snapshot, object_name) == [], object_name

    # Sonora's staff: one printed query over every org's file, not a copy.
    env = {**os.environ, "SONORA_ORGS": str(world.registry)}
    printed = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "orgs", "sql"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    counts = {}
    for org in IMPORTED:
        with duckdb.connect(str(world.root / org / "warehouse.duckdb"), read_only=True) as conn:
            counts[org] = conn.execute("SELECT count(*) FROM sonora.customers").fetchone()[0]
    with duckdb.connect() as conn:
        conn.execute(printed.stdout)
        by_org = dict(conn.execute("SELECT org, count(*) FROM all_customers GROUP BY org").fetchall())
    assert by_org == counts and by_org["acme"] > 0 and by_org["globex"] > 0


def test_rerun_of_one_orgs_date_range_reads_it_again(world):
    org = world.fleet.org("initech")
    db = world.root / "initech" / "warehouse.duckdb"
    table = f'{RAW_SCHEMA}."{table_name_for("Account")}"'
    days: dict = {}
    for rid, stamp in org.store.conn.execute('SELECT "Id", "SystemModstamp" FROM "Account" WHERE NOT "IsDeleted"'
                                             ).fetchall():
        days.setdefault(stamp.astimezone(UTC).date() if stamp.tzinfo else stamp.date(), rid)
    assert len(days) >= 2, "the org's accounts were modified on more than one day"
    (day, in_range), (other_day, outside) = sorted(days.items())[:2]
    # The mirror loses two rows in a way no incremental run sees (their SystemModstamp is behind the cursor).
    with duckdb.connect(str(db)) as conn:
        conn.execute(f'DELETE FROM {table} WHERE "Id" IN (?, ?)', [in_range, outside])

    out, _ = run_harness(world.registry, world.home, "sync", "initech", "--asset=salesforce/account",
                         f"--tag=sonora/resync_from={day}", f"--tag=sonora/resync_to={day}")
    run = out["result"]["initech"]
    assert run["success"], run["failures"]
    with duckdb.connect(str(db), read_only=True) as conn:
        back = {r[0] for r in conn.execute(f'SELECT "Id" FROM {table} WHERE "Id" IN (?, ?)',
                                           [in_range, outside]).fetchall()}
    assert back == {in_range}, f"re-read {day}: expected {in_range} back and {outside} ({other_day}) not"

    before, calls = file_digest(db), usage(org)
    out, _ = run_harness(world.registry, world.home, "sync", "initech", "--asset=salesforce/account",
                         "--tag=sonora/resync_from=2025-13-01")
    run = out["result"]["initech"]
    assert not run["success"]
    assert any("sonora/resync_from" in f and "YYYY-MM-DD" in f for f in run["failures"]), run["failures"]
    assert file_digest(db) == before and usage(org) == calls, "a refused run read or wrote nothing"


def test_run_for_an_org_no_longer_registered_refuses_before_reading(world, tmp_path):
    org = world.fleet.org("umbrella")
    db = world.root / "umbrella" / "warehouse.duckdb"
    registry = registry_for(tmp_path / "without", world, ["acme", "globex", "initech"])
    before, calls, issued = file_digest(db), usage(org), tokens(org)
    out, text = run_harness(registry, world.home, "sync", "umbrella", "--asset=salesforce/account")
    run = out["result"]["umbrella"]
    assert not run["success"]
    assert any("is not in the registry" in f and "orgs purge umbrella" in f for f in run["failures"]), run["failures"]
    assert (file_digest(db), usage(org), tokens(org)) == (before, calls, issued), "nothing read or written"
    assert "Traceback" not in "\n".join(run["failures"])


def test_each_org_has_its_own_token_and_budget(world, tmp_path):
    acme, globex = world.fleet.org("acme"), world.fleet.org("globex")
    registry = registry_for(tmp_path / "pair", world, ["acme", "globex"])
    for org in (acme, globex):
        org.update("Account", first_id(org), {"Description": "changed for the tick"})
        org.advance_clock(8)
    share = acme.quota.snapshot().max
    acme.set_quota(used=int(share * 0.9))  # acme's own allowance is at the pipeline's 80% share
    try:
        issued = {o: tokens(world.fleet.org(o)) for o in ("acme", "globex")}
        calls = {o: usage(world.fleet.org(o)) for o in ("acme", "globex")}
        out, text = run_harness(registry, world.home, "tick")
        tick = out["result"]
        assert [r["partition_key"] for r in tick["run_requests"]] == ["globex"], (tick, text[-3000:])
        assert list(json.loads(tick["cursor"])["paused"]) == ["acme"]
        # One token each, from each org's own token endpoint (a shared one would be refused by the other org).
        assert {o: tokens(world.fleet.org(o)) - issued[o] for o in issued} == {"acme": 1, "globex": 1}
        spent = {o: usage(world.fleet.org(o)) - calls[o] for o in calls}
        assert 1 <= spent["globex"] <= 2 and spent["acme"] <= 2, spent  # a probe each, at most
        assert re.search(r"Org acme skipped this tick: .*share", text), text[-3000:]

        # One resource, one call each in turn: acme's Sforce-Limit-Info (over its share) neither holds back
        # globex's call nor becomes globex's usage, and globex's does not clear acme's.
        issued = {o: tokens(world.fleet.org(o)) for o in ("acme", "globex")}
        out, text = run_harness(registry, world.home, "clients", "acme", "globex")
        result = out["result"]
        assert result["calls"] == {"acme": "ok", "globex": "ok"}, result
        assert result["budgets"]["acme"]["over_share"] and result["budgets"]["acme"]["used"] >= 0.9 * share
        assert not result["budgets"]["globex"]["over_share"]
        assert result["budgets"]["globex"]["used"] == usage(globex), result
        assert {o: tokens(world.fleet.org(o)) - issued[o] for o in issued} == {"acme": 1, "globex": 1}
    finally:
        acme.set_quota(used=0)


def test_one_orgs_problems_never_stop_the_others(world, tmp_path):
    fleet = world.fleet
    directory = tmp_path / "problems"
    names = ["acme", "globex", "umbrella", "hooli", "soylent", "wayne"]
    broken_settings = tmp_path / "soylent.yaml"
    broken_settings.write_text("sync:\n  lag_seconds: 5\n   overlap_seconds: [60\n")
    registry = registry_for(directory, world, names)
    raw = yaml.safe_load(registry.read_text())
    raw["orgs"]["soylent"]["settings"] = str(broken_settings)
    raw["orgs"]["stark"] = {"instance_ulr": "https://stark.my.salesforce.com",  # a typo: an entry with a problem
                            "credentials": {"env": "STARK"}}
    registry.write_text(yaml.safe_dump(raw, sort_keys=False))
    secrets = directory / "secrets"
    wrong = "WRONG" + "9" * 59
    umbrella = json.loads((secrets / "umbrella.json").read_text())
    (secrets / "umbrella.json").write_text(json.dumps({**umbrella, "consumer_secret": wrong}))
    (secrets / "wayne.json").chmod(0o644)
    acme, globex = fleet.org("acme"), fleet.org("globex")
    acme.update("Account", first_id(acme), {"Description": "a change acme's tick must see"})
    globex.update("Account", first_id(globex), {"Description": "a change globex must wait with"})
    for org in fleet:
        org.advance_clock(8)
    globex.set_quota(used=int(globex.quota.snapshot().max * 0.95))  # globex's quota is spent (at its share)
    try:
        out, text = run_harness(registry, world.home, "tick")
    finally:
        globex.set_quota(used=0)
    tick = out["result"]
    # The healthy orgs get their runs in the same tick: acme's change, hooli's initial import.
    requested = {r["partition_key"]: r["tags"]["sonora/sync_kind"] for r in tick["run_requests"]}
    assert requested == {"acme": "incremental", "hooli": "initial"}, (tick, text[-4000:])
    assert list(json.loads(tick["cursor"])["paused"]) == ["globex"]
    expected = {"umbrella": ["Fix:", "secret"],  # the org refused the credentials
                "soylent": [str(broken_settings), "line"],  # its settings file is not YAML
                "wayne": ["chmod 600"],  # its secrets file can be read by others
                "stark": ["instance_ulr", "instance_url"],  # its registry entry is wrong
                "globex": ["share", "max_quota_share"]}  # its quota is spent
    for org, words in expected.items():
        lines = [line for line in text.splitlines() if f"Org {org}" in line or f"Org '{org}'" in line]
        assert lines, f"no reason given for {org}:\n{text[-4000:]}"
        assert any(all(w in line for w in words) for line in lines), (org, words, lines)
    assert "Traceback" not in text
    secret_values = {wrong} | {fleet.credentials(o)[k] for o in fleet.names
                               for k in ("consumer_key", "consumer_secret", "refresh_token")}
    leaked = [v[:8] for v in secret_values if v in text or v in json.dumps(tick)]
    assert not leaked, f"secret values in the tick's output: {leaked}"
