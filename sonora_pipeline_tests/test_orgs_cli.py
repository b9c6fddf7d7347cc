"""`sonora-pipeline orgs list | purge | sql` as a person runs them, on a registry and org folders in a temp dir:
list shows every state without a secret, purge deletes exactly one removed org's folder and refuses
everything else, and the printed cross-org SQL runs in DuckDB over two orgs' files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from filelock import FileLock

CANARY = "CANARYorgscli3b7e21"

REGISTRY = """\
warehouse_root: ../warehouses  # relative to this file's folder (conf/)
orgs:
  acme:
    instance_url: https://acme.my.salesforce.com
    credentials: {file: secrets/acme.json}
    settings: acme.yaml
  globex:
    instance_url: https://globex.my.salesforce.com
    credentials: {env: GLOBEX}
  broken:
    instance_url: https://broken.my.salesforce.com
"""


def orgs_cli(tmp_path: Path, *args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SONORA_ORGS": str(tmp_path / "conf" / "orgs.yaml"), **env_overrides}
    env.pop("SALESFORCE_INSTANCE_URL", None)
    return subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "orgs", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A registry of three entries (one wrong), acme's secrets file, and data folders for acme, globex and
    `gone` (an org removed from the registry)."""
    conf = tmp_path / "conf"
    (conf / "secrets").mkdir(parents=True)
    (conf / "orgs.yaml").write_text(REGISTRY)
    secrets = conf / "secrets" / "acme.json"
    secrets.write_text(json.dumps({"consumer_key": "3MVGacme", "consumer_secret": CANARY}))
    secrets.chmod(0o600)
    for name in ("acme", "globex", "gone"):
        folder = tmp_path / "warehouses" / name
        folder.mkdir(parents=True)
        (folder / "warehouse.duckdb").write_bytes(b"x" * 2048)
        (folder / "spool").mkdir()
        (folder / "spool" / "part-1.csv").write_text("Id\n001\n")
    return tmp_path


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_list_shows_registered_skipped_and_removed_orgs_and_no_secret(deployment):
    result = orgs_cli(deployment, "list", GLOBEX_CONSUMER_KEY="k", GLOBEX_CONSUMER_SECRET=CANARY)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line.startswith(" ")}
    assert "1 entry skipped, 1 removed" in out.splitlines()[0]
    assert f"file {deployment / 'conf' / 'secrets' / 'acme.json'}" in rows["acme"]
    assert str(deployment / "conf" / "acme.yaml") in rows["acme"]
    assert "2.0 KB in 2 files" in rows["acme"]
    assert "env GLOBEX_CONSUMER_KEY/_SECRET" in rows["globex"] and "not set" not in rows["globex"]
    assert "default (SONORA_CONFIG or built-in)" in rows["globex"]
    assert "entry skipped" in rows["broken"]
    assert "removed — data kept (2.0 KB in 2 files), purge with sonora-pipeline orgs purge gone --yes" in rows["gone"]
    assert "broken: " in out and "line 10, column 3 (orgs.broken): credentials is missing" in out
    assert CANARY not in out + result.stderr


def test_purge_deletes_exactly_the_removed_orgs_folder(deployment):
    registry = (deployment / "conf" / "orgs.yaml").read_bytes()
    kept = {name: tree(deployment / "warehouses" / name) for name in ("acme", "globex")}
    result = orgs_cli(deployment, "purge", "gone", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"Deleted {deployment / 'warehouses' / 'gone'} (2.0 KB in 2 files)" in result.stdout
    assert sorted(p.name for p in (deployment / "warehouses").iterdir()) == ["acme", "globex"]
    assert {name: tree(deployment / "warehouses" / name) for name in ("acme", "globex")} == kept
    assert (deployment / "conf" / "orgs.yaml").read_bytes() == registry
    assert "gone" not in orgs_cli(deployment, "list").stdout


@pytest.mark.bad_input
@pytest.mark.parametrize("args, words", [
    (["acme", "--yes"], ["org acme is still in the registry", "remove it from the registry first"]),
    (["broken", "--yes"], ["org broken is still in the registry"]),  # a wrong entry is still registered
    (["gone"], ["this would delete", "gone --yes"]),
    (["../conf", "--yes"], ["not a valid org name"]),
    (["Gone", "--yes"], ["not a valid org name"]),
    (["sonora", "--yes"], ["reserved"]),
    (["never", "--yes"], ["there is no folder", "orgs list"]),
], ids=["registered", "registered-but-wrong", "no-yes", "path", "upper-case", "reserved", "no-folder"])
def test_purge_refuses_and_deletes_nothing(deployment, args, words):
    before = tree(deployment)
    result = orgs_cli(deployment, "purge", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert "Nothing was deleted." in result.stderr and "Traceback" not in result.stderr
    assert tree(deployment) == before


@pytest.mark.bad_input
def test_purge_refuses_while_the_registry_is_unreadable(deployment):
    (deployment / "conf" / "orgs.yaml").write_text("orgs: [acme\n")  # cannot tell whether `gone` is registered
    before = tree(deployment)
    result = orgs_cli(deployment, "purge", "gone", "--yes")
    assert result.returncode == 2 and "not valid YAML" in result.stderr, result.stderr
    assert tree(deployment) == before


@pytest.mark.bad_input
def test_purge_refuses_a_symlink_out_of_the_warehouse_root(deployment):
    outside = deployment / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (deployment / "warehouses" / "evil").symlink_to(outside, target_is_directory=True)
    result = orgs_cli(deployment, "purge", "evil", "--yes")
    assert result.returncode == 2 and "not a folder directly under" in result.stderr, result.stderr
    assert (outside / "keep.txt").read_text() == "mine" and (deployment / "warehouses" / "evil").is_symlink()


@pytest.mark.bad_input
def test_purge_waits_for_a_run_still_writing(deployment):
    folder = deployment / "warehouses" / "gone"
    with FileLock(folder / "warehouse.duckdb.write.lock"):
        result = orgs_cli(deployment, "purge", "gone", "--yes")
    assert result.returncode == 2 and "still writing" in result.stderr, result.stderr
    assert (folder / "warehouse.duckdb").exists()


@pytest.mark.bad_input
def test_without_a_registry_the_fix_is_named(tmp_path):
    result = orgs_cli(tmp_path, "list", SONORA_ORGS="")
    assert result.returncode == 2 and "SONORA_ORGS is not set" in result.stderr, result.stderr
    result = orgs_cli(tmp_path, "list", "--registry", str(tmp_path / "none.yaml"))
    assert result.returncode == 2 and "none.yaml" in result.stderr and "does not exist" in result.stderr


def make_customers(path: Path, rows: list[tuple], extra_column: str | None = None) -> None:
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as conn:
        extra = f", {extra_column} VARCHAR" if extra_column else ""
        conn.execute(f"CREATE SCHEMA sonora; CREATE TABLE sonora.customers (account_id VARCHAR, name VARCHAR{extra})")
        conn.executemany(f"INSERT INTO sonora.customers VALUES ({', '.join('?' * len(rows[0]))})", rows)


@pytest.mark.parametrize("snapshots", [False, True], ids=["live", "snapshots"])
def test_the_cross_org_sql_reads_every_orgs_customers(deployment, snapshots):
    file = "warehouse-analyst.duckdb" if snapshots else "warehouse.duckdb"
    # Two orgs with different custom columns: UNION ALL BY NAME lines them up by name.
    make_customers(deployment / "warehouses" / "acme" / file, [("001A", "Acme Corp", "gold")], "tier__c")
    make_customers(deployment / "warehouses" / "globex" / file, [("001G", "Globex"), ("001H", "Globex Two")])
    result = orgs_cli(deployment, "sql", *(["--snapshots"] if snapshots else []))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(READ_ONLY);") == 2 and "UNION ALL BY NAME" in result.stdout
    with duckdb.connect() as conn:
        conn.execute(result.stdout)
        rows = conn.execute("SELECT org, account_id, name, tier__c FROM all_customers ORDER BY account_id").fetchall()
    assert rows == [("acme", "001A", "Acme Corp", "gold"), ("globex", "001G", "Globex", None),
                    ("globex", "001H", "Globex Two", None)]


def test_the_cross_org_sql_leaves_out_orgs_not_synced_yet(deployment):
    make_customers(deployment / "warehouses" / "acme" / "warehouse.duckdb", [("001A", "Acme Corp")])
    (deployment / "warehouses" / "globex" / "warehouse.duckdb").unlink()
    result = orgs_cli(deployment, "sql")
    assert result.returncode == 0, result.stderr
    assert "not yet synced, left out: globex" in result.stdout and '"globex"' not in result.stdout
    (deployment / "warehouses" / "acme" / "warehouse.duckdb").unlink()
    result = orgs_cli(deployment, "sql")
    assert result.returncode == 1 and "no registered org has a warehouse file yet" in result.stderr


def test_orgs_snapshot_copies_each_orgs_warehouse_for_the_cross_org_sql(deployment):
    make_customers(deployment / "warehouses" / "acme" / "warehouse.duckdb", [("001A", "Acme Corp")])
    make_customers(deployment / "warehouses" / "globex" / "warehouse.duckdb", [("001G", "Globex")])
    refused = orgs_cli(deployment, "snapshot", "initech")
    assert refused.returncode == 2 and "not in the registry" in refused.stderr and "Fix:" in refused.stderr
    result = orgs_cli(deployment, "snapshot")
    assert result.returncode == 0, result.stderr
    for org in ("acme", "globex"):
        assert (deployment / "warehouses" / org / "warehouse-analyst.duckdb").exists()
    sql = orgs_cli(deployment, "sql", "--snapshots")
    assert sql.returncode == 0, sql.stderr
    with duckdb.connect() as conn:
        conn.execute(sql.stdout)
        assert conn.execute("SELECT org, account_id FROM all_customers ORDER BY 2").fetchall() == [
            ("acme", "001A"), ("globex", "001G")]
