"""`orgs purge NAME --yes` on a DuckLake registry: a removed org's catalog schema (in the real PostgreSQL) and its
Parquet data folder go, schema first, and nothing of another org in the same catalog; the dry run, a registered
org and an unreachable catalog delete nothing; a purge interrupted after the schema drop finishes when run again."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import yaml

from sonora_pipeline.mirror.lake import LakeLocation, registry_location
from sonora_pipeline.mirror.lake_purge import LakePurgeRefused, drop_org_catalog
from sonora_pipeline.settings import SyncSettings, load_registry
from sonora_pipeline.settings.lake import LakeSettings
from sonora_pipeline.sync.engine import sync_object
from sonora_pipeline_tests.conftest import running_org
from sonora_pipeline_tests.services import free_port
from sonora_pipeline_tests.sync.helpers import client_for, differences, log

SYNC = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60)
OBJECTS = ("Account", "Contact")
_databases = itertools.count(1)


@pytest.fixture(scope="module")
def sonora_org(tmp_path_factory):
    """One small org both tenants mirror (what is compared is each tenant's lake, not the org)."""
    with running_org(tmp_path_factory.mktemp("purge-org"), records=300, seed=17) as org:
        org.advance_clock(SYNC.lag_seconds + 3)
        yield org


def write_registry(path: Path, catalog: str, orgs: tuple[str, ...]) -> None:
    path.write_text(yaml.safe_dump({
        "warehouse_root": "orgs", "ducklake": {"catalog": catalog, "data_path": "lake/"},
        "orgs": {name: {"instance_url": f"https://{name}.example.com", "credentials": {"env": name.upper()}}
                 for name in orgs}}))


@pytest.fixture
def lake(pg, sonora_org, tmp_path):
    """A registry whose lake holds acme and gone, each synced for real from the local org; then gone is removed
    from the registry (its data kept, as removing an org does)."""
    database = pg.create_database(f"purge{next(_databases)}")
    registry = tmp_path / "orgs.yaml"
    write_registry(registry, pg.libpq(database), ("acme", "gone"))
    loaded = load_registry(registry)
    client = client_for(sonora_org)
    for name in ("acme", "gone"):
        for object_name in OBJECTS:
            sync_object(client, registry_location(loaded, name), object_name, SYNC, window=None, partition_key=None,
                        run_id=f"purge-{name}", log=log)
    write_registry(registry, pg.libpq(database), ("acme",))
    return registry, loaded, database


def orgs_cli(registry: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SONORA_", "PG", "SALESFORCE_"))}
    return subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "orgs", *args, "--registry", str(registry)],
                          env=env, cwd=registry.parent, capture_output=True, text=True, timeout=120)


def schemas(pg, database: str) -> set[str]:
    with psycopg2.connect(pg.libpq(database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata")
        return {name for (name,) in cur.fetchall()}


def files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def test_purge_drops_the_removed_orgs_schema_and_data_and_nothing_of_another_org(lake, pg, sonora_org):
    registry, loaded, database = lake
    root, data = registry.parent / "orgs", registry.parent / "lake"
    assert {"acme", "gone"} <= schemas(pg, database)
    parquet = [p for p in (data / "gone").rglob("*.parquet")]
    assert parquet, "the sync wrote no Parquet file for gone: the test would not prove the folder is purged"
    acme_files = files(data / "acme")

    listed = orgs_cli(registry, "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("gone "))
    assert "removed — data kept" in row and "lake data" in row and "orgs purge gone --yes" in row

    before = files(registry.parent)
    dry = orgs_cli(registry, "purge", "gone")
    assert dry.returncode == 2 and "Nothing was deleted." in dry.stderr, dry.stderr
    count = len(files(data / "gone"))
    for words in ("the DuckLake catalog schema 'gone'", "tables, last commit", f"the lake data folder {data / 'gone'}",
                  f"in {count} file{'s' if count != 1 else ''}", "cancelled by the change sensor",
                  "orgs purge gone --yes"):
        assert words in dry.stderr, (words, dry.stderr)
    assert {"acme", "gone"} <= schemas(pg, database) and files(registry.parent) == before

    purged = orgs_cli(registry, "purge", "gone", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert "Deleted the DuckLake catalog schema 'gone'" in purged.stdout and "Traceback" not in purged.stderr
    assert "gone" not in schemas(pg, database) and "acme" in schemas(pg, database)
    assert not (data / "gone").exists() and not (root / "gone").exists()
    assert files(data / "acme") == acme_files
    for object_name in OBJECTS:                        # acme's catalog still reads, equal to the org
        assert differences(sonora_org, registry_location(loaded, "acme"), object_name) == [], object_name

    again = orgs_cli(registry, "purge", "gone", "--yes")
    assert again.returncode == 2 and "no schema 'gone'" in again.stderr, again.stderr
    assert "gone" not in orgs_cli(registry, "list").stdout


@pytest.mark.bad_input
def test_purge_of_a_registered_org_or_an_unreachable_catalog_deletes_nothing(lake, pg):
    registry, _loaded, database = lake
    before = files(registry.parent)
    refused = orgs_cli(registry, "purge", "acme", "--yes")
    assert refused.returncode == 2 and "org acme is still in the registry" in refused.stderr, refused.stderr

    with psycopg2.connect(pg.libpq(database)) as conn, conn.cursor() as cur:   # a schema that is not a lake's
        cur.execute("CREATE SCHEMA imposter; CREATE TABLE imposter.keep AS SELECT 1 AS one")
    imposter = orgs_cli(registry, "purge", "imposter", "--yes")
    assert imposter.returncode == 2 and "holds no DuckLake catalog" in imposter.stderr, imposter.stderr
    assert "imposter" in schemas(pg, database)
    with pytest.raises(LakePurgeRefused, match="not one org's own"):
        drop_org_catalog(LakeLocation.for_org(LakeSettings(pg.libpq(database), f"{registry.parent}/lake/"), "public",
                                              registry.parent / "orgs" / "public"))
    assert "public" in schemas(pg, database)

    nowhere = f"dbname={database} host=127.0.0.1 port={free_port()} user=sonora"
    write_registry(registry, nowhere, ("acme",))
    unreachable = orgs_cli(registry, "purge", "gone", "--yes")
    assert unreachable.returncode == 2, unreachable.stderr
    message = unreachable.stderr
    assert f"the DuckLake catalog {nowhere}" in message and "cannot be opened" in message
    assert "Fix: check ducklake.catalog (registry)" in message and "Nothing was deleted." in message
    assert "Traceback" not in message
    assert {"acme", "gone"} <= schemas(pg, database)
    assert {k: v for k, v in files(registry.parent).items() if k != "orgs.yaml"} == \
        {k: v for k, v in before.items() if k != "orgs.yaml"}


def test_a_purge_interrupted_after_the_schema_drop_finishes_on_a_rerun(lake, pg):
    registry, loaded, database = lake
    data = registry.parent / "lake"
    gone = LakeLocation.for_org(loaded.ducklake, "gone", loaded.org_folder("gone"))
    assert drop_org_catalog(gone) is True              # the first step of a purge, then the process died
    assert "gone" not in schemas(pg, database) and (data / "gone").is_dir()
    assert drop_org_catalog(gone) is False             # already gone is done

    listed = orgs_cli(registry, "list")
    assert "removed — data kept" in next(line for line in listed.stdout.splitlines() if line.startswith("gone "))
    finished = orgs_cli(registry, "purge", "gone", "--yes")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"Deleted the lake data folder {data / 'gone'} ("), finished.stdout
    assert not (data / "gone").exists() and not loaded.org_folder("gone").exists()
    assert "acme" in schemas(pg, database) and (data / "acme").is_dir()
