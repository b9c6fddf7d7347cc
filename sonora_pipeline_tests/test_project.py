"""The project loads as a Dagster code location and the demo command works end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from sonora_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_load_with_expected_assets_and_job():
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    keys = loaded.resolve_asset_graph().get_all_asset_keys()
    assert dg.AssetKey(["salesforce", "org_inventory"]) in keys
    for table in ("account", "contact", "opportunity", "case", "case_comment", "task", "event", "user"):
        key = dg.AssetKey(["salesforce", table])
        assert key in keys
        node = loaded.resolve_asset_graph().get(key)
        assert node.group_name == "salesforce" and {"salesforce", "duckdb"} <= set(node.kinds)
        assert node.partitions_def is not None
    for job in ("salesforce_sync_job", "salesforce_reconcile_job", "salesforce_test_connection_job"):
        assert loaded.resolve_job_def(job) is not None
    assert {s.name for s in loaded.sensors} == {"salesforce_changes", "customer_model_automation"}


def test_dagster_cli_validates_the_workspace():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESFORCE_")}
    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_syncs_the_local_org_and_prints_an_example_answer(tmp_path):
    db = tmp_path / "data" / "warehouse.duckdb"  # the default file, as the README's first command makes it
    (tmp_path / "home").mkdir()
    # As a new user runs it: no settings file (the demo brings its own for the demo org's custom fields).
    env = {**{k: v for k, v in os.environ.items() if k not in ("SONORA_DUCKDB_PATH", "SONORA_CONFIG")},
           "DAGSTER_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "demo", "--no-ui", "--records", "600"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo-settings.yaml" in result.stdout.splitlines()[0]
    assert f"DuckDB file: {db}" in result.stdout
    assert "Example query (top at-risk paying customers)" in result.stdout
    assert "Customer model built:" in result.stdout
    # stderr is a pipe here, not a terminal: the progress bar writes plain lines (objects done, elapsed, object)
    assert "\r" not in result.stderr
    assert re.search(r"^\[[#.]+\] \d+/(\d+) \S+ Contact initial import$", result.stderr, re.M), result.stderr
    assert re.search(r"^\[#+\] (\d+)/\1 \S+ done$", result.stderr, re.M), result.stderr
    assert "DEBUG" not in result.stderr  # the Dagster console log is down to warnings while the bar draws
    with duckdb.connect(str(db), read_only=True) as conn:
        counts = dict(conn.execute("SELECT object_name, rows_upserted_total FROM salesforce._sync_state").fetchall())
        customers = conn.execute("SELECT count(*) FROM salesforce.account WHERE Type LIKE 'Customer%'").fetchone()[0]
    assert set(counts) >= {"Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event", "User"}
    assert all(n > 0 for n in counts.values())
    assert customers > 0
    with duckdb.connect(str(db), read_only=True) as conn:
        at_risk = conn.execute("SELECT name FROM sonora.customers c JOIN sonora.health_scores h "
                               "ON h.customer_id = c.external_id WHERE c.is_paying ORDER BY h.score NULLS LAST, "
                               "c.arr DESC LIMIT 1").fetchone()[0]
    assert at_risk[:20] in result.stdout
    # The org inventory ran too: what the org holds, next to the mirror (which equals the org after the sync).
    assert "Org inventory:" in result.stdout
    with duckdb.connect(str(db), read_only=True) as conn:
        inventory = dict(conn.execute("SELECT object_name, record_count FROM salesforce_meta.org_inventory").fetchall())
        live_accounts = conn.execute("SELECT count(*) FROM salesforce.account WHERE NOT IsDeleted").fetchone()[0]
    assert set(inventory) == set(counts) and inventory["Account"] == live_accounts
    # Every run in the instance carries a job name a person can read in the UI.
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as instance:
        jobs = {r.job_name for r in instance.get_runs()}
    assert jobs == {"salesforce_sync_job", "org_inventory_job", "customer_model_job"}
