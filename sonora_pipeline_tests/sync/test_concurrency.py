"""DuckDB has one writer: several object syncs at once and an analyst's read-only connection must never
make a sync fail or lose data."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb

from sonora_pipeline.mirror.warehouse import publish_snapshot
from sonora_pipeline_tests.sync.helpers import OBJECTS, differences, sync_command


def hold_read_only(db, seconds: float) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import duckdb, sys, time
        conn = duckdb.connect({str(db)!r}, read_only=True)
        conn.execute("SELECT count(*) FROM salesforce.account").fetchone()
        print("holding", flush=True)
        time.sleep({seconds})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    return process


def test_parallel_object_syncs_and_an_analyst_reader(org, tmp_path):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("sync:\n  initial_import: all\n  lag_seconds: 5\n  bulk_threshold: 150\n")
    org.advance_clock(8)
    db = tmp_path / "mirror.duckdb"
    command, env = sync_command(org, db, settings_file)
    first = subprocess.run(command[:-3] + ["--objects", "Account", "--quiet"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    reader = hold_read_only(db, 4.0)
    started = time.monotonic()
    groups = [["Contact", "Opportunity"], ["Case", "CaseComment"], ["Task", "Event", "User"]]
    syncs = [subprocess.Popen(command[:-3] + ["--objects", ",".join(g), "--quiet"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for g in groups]
    outputs = [s.communicate(timeout=300) for s in syncs]
    reader.wait(timeout=30)
    assert all(s.returncode == 0 for s in syncs), [o[1][-1500:] for o in outputs]
    assert time.monotonic() - started >= 3.5  # they waited for the analyst instead of failing
    for name in OBJECTS:
        assert differences(org, db, name) == []


def test_snapshot_gives_analysts_a_copy_that_never_blocks_syncs(org, tmp_path):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("sync:\n  initial_import: all\n  lag_seconds: 5\n")
    org.advance_clock(8)
    db = tmp_path / "mirror.duckdb"
    command, env = sync_command(org, db, settings_file)
    assert subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    snapshot = publish_snapshot(db, tmp_path / "analyst.duckdb")
    analyst = duckdb.connect(str(snapshot), read_only=True)
    try:
        org.update("Account", org.store.conn.execute('SELECT "Id" FROM "Account" WHERE NOT "IsDeleted" LIMIT 1')
                   .fetchone()[0], {"Sonora_Notes__c": "after the snapshot"})
        org.advance_clock(8)
        again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr[-2000:]
        assert analyst.execute("SELECT count(*) FROM salesforce.account WHERE Sonora_Notes__c = 'after the snapshot'").fetchone()[0] == 0
    finally:
        analyst.close()
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM salesforce.account WHERE Sonora_Notes__c = 'after the snapshot'").fetchone()[0] == 1
