"""The DuckLake setting's mistakes are named with their fix before anything is written, never echoing a secret;
and the analyst's one ATTACH line per org, printed by `orgs sql`, works in the DuckDB CLI with no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sonora_pipeline.mirror.lake import LakeLocation, LakeUnavailable, lake_exists, registry_location
from sonora_pipeline.mirror.warehouse import write_connection
from sonora_pipeline.settings import RegistryError, load_registry
from sonora_pipeline.settings.lake import LakeSettings, LakeSettingsError, lake_from_env
from sonora_pipeline_tests.services import free_port

CANARY = "Canary-Pg-Secret-7f3a"


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SONORA_DUCKLAKE", "SONORA_ORGS", "PG"))}
    return {**env, **extra}


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_password_in_the_catalog_is_refused_without_echoing_it(pg, catalog_db, tmp_path, monkeypatch):
    catalog = f"{pg.libpq(catalog_db)} password={CANARY}"
    env = clean_env(SONORA_DUCKLAKE_CATALOG=catalog, SONORA_DUCKLAKE_DATA_PATH="lake/")
    done = cli("snapshot", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "SONORA_DUCKLAKE_CATALOG holds a password" in done.stderr and "PGPASSWORD" in done.stderr
    assert "~/.pgpass" in done.stderr and "Traceback" not in done.stderr
    assert CANARY not in done.stderr + done.stdout and files_under(tmp_path / "lake") == []

    registry = tmp_path / "orgs.yaml"
    registry.write_text(yaml.safe_dump({"ducklake": {"catalog": catalog, "data_path": "lake/"}, "orgs": {}}))
    with pytest.raises(RegistryError) as refused:
        load_registry(registry)
    assert "line 2" in str(refused.value) and "ducklake.catalog holds a password" in str(refused.value)
    assert CANARY not in str(refused.value)

    monkeypatch.setenv("SONORA_DUCKLAKE_CATALOG", pg.libpq(catalog_db))
    monkeypatch.delenv("SONORA_DUCKLAKE_DATA_PATH", raising=False)
    with pytest.raises(LakeSettingsError, match="SONORA_DUCKLAKE_DATA_PATH is not. Fix: set SONORA_DUCKLAKE_DATA_PATH"):
        lake_from_env()


def test_an_unreachable_catalog_or_unwritable_data_path_stops_before_anything_is_written(
        pg, catalog_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", CANARY)   # libpq's own source of the password: never in a message either
    nowhere = LakeLocation.for_org(LakeSettings(f"dbname=lake host=127.0.0.1 port={free_port()} user=sonora",
                                                f"{tmp_path / 'lake'}/"), None, tmp_path / "work")
    with pytest.raises(LakeUnavailable) as unreachable:
        with write_connection(nowhere):
            pass
    message = str(unreachable.value)
    assert "SONORA_DUCKLAKE_CATALOG" in message and "Fix: check SONORA_DUCKLAKE_CATALOG" in message
    assert "Nothing was written" in message and CANARY not in message
    assert files_under(tmp_path / "lake") == []

    (tmp_path / "taken").write_text("a file, not a folder")
    blocked = LakeLocation.for_org(LakeSettings(pg.libpq(catalog_db), f"{tmp_path / 'taken'}/"), None,
                                   tmp_path / "work")
    with pytest.raises(LakeUnavailable, match="data path .* set by SONORA_DUCKLAKE_DATA_PATH. Fix: point it at a folder"):
        with write_connection(blocked):
            pass
    assert not lake_exists(blocked)             # the catalog was not even created


def test_orgs_sql_prints_one_attach_per_org_that_the_duckdb_cli_runs_offline(pg, catalog_db, tmp_path):
    registry = tmp_path / "orgs.yaml"
    orgs = {name: {"instance_url": f"https://{name}.example.com", "credentials": {"env": name.upper()}}
            for name in ("acme", "globex", "initech")}
    registry.write_text(yaml.safe_dump({"ducklake": {"catalog": pg.libpq(catalog_db), "data_path": "lake/"},
                                        "orgs": orgs}))
    loaded = load_registry(registry)
    for name, customers in (("acme", 3), ("globex", 2)):   # initech never synced
        with write_connection(registry_location(loaded, name)) as conn:
            conn.execute("CREATE SCHEMA sonora")
            conn.execute(f"CREATE TABLE sonora.customers AS SELECT 'c' || i AS external_id FROM range({customers}) t(i)")
    done = cli("orgs", "sql", "--registry", str(registry), env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sql = done.stdout
    for name in ("acme", "globex"):
        assert (f"ATTACH 'ducklake:postgres:{pg.libpq(catalog_db)}' AS {name} "
                f"(METADATA_SCHEMA '{name}', READ_ONLY);") in sql
    assert "left out: initech" in sql and "DATA_PATH" not in sql
    duckdb_cli = Path(sys.executable).parent / "duckdb"
    query = ("SET autoinstall_known_extensions = false;\n" + sql
             + "\nSELECT org, count(*) FROM all_customers GROUP BY ALL ORDER BY org;")
    ran = subprocess.run([str(duckdb_cli), "-csv", "-bail"], input=query, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-2:] == ["acme,3", "globex,2"], ran.stdout


def test_single_org_cli_syncs_into_the_lake_and_prints_the_analyst_line(local_org_factory, pg, catalog_db, tmp_path):
    """`sonora-pipeline sync` and `snapshot` with SONORA_DUCKLAKE_*: the Dagster run's warehouse resource is the
    lake (no DuckDB file made), and the snapshot command tells analysts how to attach it read-only."""
    from sonora_pipeline.settings.lake import LakeSettings
    from sonora_pipeline_tests.sync.helpers import differences, sync_command

    org = local_org_factory(records=120, seed=41)
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("sync:\n  initial_import: all\n  lag_seconds: 5\n")
    org.advance_clock(8)
    command, env = sync_command(org, tmp_path / "data" / "warehouse.duckdb", settings_file)
    env = {**clean_env(), **{k: v for k, v in env.items() if k.startswith(("SALESFORCE_", "SONORA_"))},
           "SONORA_DUCKLAKE_CATALOG": pg.libpq(catalog_db), "SONORA_DUCKLAKE_DATA_PATH": "lake"}
    synced = subprocess.run(command[:-3] + ["--objects", "Account", "--quiet"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert "Warehouse: DuckLake catalog 'main'" in synced.stdout
    assert not (tmp_path / "data" / "warehouse.duckdb").exists()   # (small commits are inlined in the catalog)
    lake = LakeLocation.for_org(LakeSettings(pg.libpq(catalog_db), f"{tmp_path / 'lake'}/"), None, tmp_path / "data")
    for name in ("Account",):
        assert differences(org, lake, name) == []
    shot = cli("snapshot", env=env, cwd=tmp_path)
    assert shot.returncode == 0, shot.stderr
    assert f"ATTACH 'ducklake:postgres:{pg.libpq(catalog_db)}' AS warehouse (METADATA_SCHEMA 'main', READ_ONLY);" \
        in shot.stdout
    assert (tmp_path / "data" / "warehouse-analyst.duckdb").exists()
