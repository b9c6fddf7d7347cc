"""A sync killed with SIGKILL at any point, then run again, leaves the same tables as a clean sync; and
while it lies dead, its cursor never claims rows that were not committed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sonora_pipeline_tests.sync.helpers import OBJECTS, differences, table

ROOT = Path(__file__).resolve().parents[2]


def sync_command(org, db: Path, settings_file: Path) -> tuple[list[str], dict[str, str]]:
    c = org.credentials
    env = {**os.environ, "SALESFORCE_INSTANCE_URL": c.instance_url, "SALESFORCE_CONSUMER_KEY": c.consumer_key,
           "SALESFORCE_CONSUMER_SECRET": c.consumer_secret, "SALESFORCE_CA_BUNDLE": c.ca_bundle,
           "SONORA_DUCKDB_PATH": str(db), "SONORA_CONFIG": str(settings_file)}
    env.pop("DAGSTER_HOME", None)
    return [sys.executable, "-m", "sonora_pipeline.cli", "sync", "--lookback", "all", "--quiet"], env


def cursor_never_ahead(org, db: Path) -> list[str]:
    """Every org record modified before an object's committed cursor must already be in the mirror."""
    if not db.exists():
        return []
    problems = []
    with duckdb.connect(str(db), read_only=True) as conn:
        try:
            states = dict(conn.execute("SELECT object_name, cursor_modstamp FROM salesforce._sync_state").fetchall())
        except duckdb.CatalogException:
            return []
        for name, cursor in states.items():
            if cursor is None:
                continue
            mirrored = {r[0] for r in conn.execute(f'SELECT "Id" FROM salesforce."{table(name)}"').fetchall()}
            expected = {r[0] for r in org.store.conn.execute(
                f'SELECT "Id" FROM "{name}" WHERE "SystemModstamp" < ?', [cursor]).fetchall()}
            missing = expected - mirrored
            if missing:
                problems.append(f"{name}: cursor {cursor} but {len(missing)} older rows not committed")
    return problems


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_a_random_point_then_rerun_equals_a_clean_sync(org, tmp_path, trial):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("sync:\n  initial_import: all\n  lag_seconds: 5\n  bulk_threshold: 150\n")
    org.advance_clock(8)
    org.set_faults(latency_seconds=0.01)
    db = tmp_path / "mirror.duckdb"
    command, env = sync_command(org, db, settings_file)
    rng = random.Random(trial)
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(rng.uniform(1.5, 6.0))  # importing + definitions load take a few seconds: kill somewhere inside
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert cursor_never_ahead(org, db) == []
    org.clear_faults()
    finished = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    for name in OBJECTS:
        assert differences(org, db, name) == []
    with duckdb.connect(str(db), read_only=True) as conn:
        for name in OBJECTS:
            total, distinct = conn.execute(f'SELECT count(*), count(DISTINCT "Id") FROM salesforce."{table(name)}"').fetchone()
            assert total == distinct
    assert not any((tmp_path / ".sonora-spool").glob("*")) if (tmp_path / ".sonora-spool").exists() else True
