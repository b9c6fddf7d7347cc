"""The real daemon, the change sensor and the model's automation on, through a burst of changes in the org:
once no run is queued or in progress, every customer-model table equals one rebuilt from the mirror.

Before the model's condition was changed (see `rebuild_after_sync` in defs/model/assets.py), eager automation
rebuilt the model while the burst's last sync runs were in flight and then never again, leaving new cases
out and deleted or closed ones as they were. Here the second wave of changes lands while the first wave's
runs are under way, which is when that happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef

from sonora_pipeline.defs.model.assets import model_key
from sonora_pipeline.defs.salesforce.sensors import BUSY_STATUSES
from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.mirror.names import object_for_table
from sonora_pipeline.mirror.warehouse import publish_snapshot, read_connection
from sonora_pipeline.model.build import SPECS
from sonora_pipeline.settings import STANDARD_OBJECTS
from sonora_pipeline_tests.orgs.helpers import wait_for
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.test_dagster_ui import dagster_home, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
# Columns that depend on the build history, not on the mirror: the history table and the trend against it.
HISTORY_COLUMNS = {"computed_at", "previous_score", "trend"}
AT_REST_SECONDS = 480  # generous: a loaded 2-core machine runs the daemon, the org and the runs (beside the
# 20-org distributed test a model run took two minutes)
TICK_SECONDS = 5  # sensor and automation ticks (60 s by default; 5 s is the least allowed): the burst's cycles in test time


def environment(org: LocalOrg, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "SONORA_AUTOMATION")}
    return {**env, **org.credentials.as_environment(), "SONORA_DUCKDB_PATH": str(tmp_path / "mirror.duckdb"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


def needs(table: str) -> set[str]:
    """The mirror objects a model table reads, directly or through the model tables it reads."""
    spec = SPECS[table]
    return {object_for_table(t, STANDARD_OBJECTS) for t in spec.needs}.union(*(needs(t) for t in spec.after))


def last_commits(db: Path) -> dict[str, datetime]:
    with read_connection(db) as conn:
        return dict(conn.execute("SELECT object_name, max(committed_at) FROM salesforce._sync_windows "
                                 "GROUP BY 1").fetchall())


def last_build(instance: dg.DagsterInstance, table: str) -> tuple[str, datetime | None, datetime] | None:
    """(run id, that run's start, the materialization's time) of the table's last build."""
    event = instance.get_latest_materialization_event(model_key(table))
    if event is None:
        return None
    record = instance.get_run_record_by_id(event.run_id)
    started = datetime.fromtimestamp(record.start_time, UTC).replace(tzinfo=None) if record else None
    return event.run_id, started, datetime.fromtimestamp(event.timestamp, UTC).replace(tzinfo=None)


def behind(instance: dg.DagsterInstance, db: Path) -> list[str]:
    """Model tables whose last build started before the newest commit of a mirror object they read, or before
    another run rebuilt a model table they read (the automation has yet to rebuild them: not at rest)."""
    commits = last_commits(db)
    out = []
    for table, spec in SPECS.items():
        newest = max((commits[o] for o in needs(table) if o in commits), default=None)
        build = last_build(instance, table)
        started = build[1] if build else None
        if newest is not None and (started is None or started <= newest):
            out.append(f"{table} (built {started}, mirror committed {newest})")
            continue
        for upstream in spec.after:
            other = last_build(instance, upstream)
            if build and other and other[0] != build[0] and (started is None or other[2] >= started):
                out.append(f"{table} (built {started}, its input {upstream} rebuilt at {other[2]})")
                break
    return out


def model_rows(db: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'sonora' AND table_name = ? "
            "ORDER BY column_index", [table]).fetchall() if r[0] not in HISTORY_COLUMNS]
        select = ", ".join(f'"{c}"' for c in columns)
        return conn.execute(f"SELECT {select} FROM sonora.{table} ORDER BY ALL").fetchall()


def ids(org: LocalOrg, object_name: str, where: str = "TRUE", n: int = 3) -> list[str]:
    return [r[0] for r in org.store.conn.execute(
        f'SELECT "Id" FROM "{object_name}" WHERE NOT "IsDeleted" AND {where} ORDER BY "Id" LIMIT {n}').fetchall()]


def first_wave(org: LocalOrg) -> None:
    account = ids(org, "Account", n=1)[0]
    for i in range(3):
        org.create("Case", {"Subject": f"Burst case {i}", "Status": "New", "AccountId": account})
    for rid in ids(org, "Account", n=4):
        org.update("Account", rid, {"Name": f"Renamed {rid[-4:]}"})
    org.delete("Case", ids(org, "Case", n=1)[0])
    for rid in ids(org, "Opportunity", "NOT \"IsClosed\"", n=2):
        org.update("Opportunity", rid, {"StageName": "Closed Won"})


def second_wave(org: LocalOrg) -> None:
    for rid in ids(org, "Case", "NOT \"IsClosed\"", n=2):
        org.update("Case", rid, {"Status": "Closed"})
    account = ids(org, "Account", n=2)[1]
    for i in range(2):
        org.create("Contact", {"LastName": f"Burst person {i}", "AccountId": account})
        org.create("Case", {"Subject": f"Late case {i}", "Status": "Working", "AccountId": account})
    org.delete("Contact", ids(org, "Contact", n=1)[0])
    org.delete("Account", ids(org, "Account", "\"Id\" NOT IN (SELECT \"AccountId\" FROM \"Case\" WHERE \"AccountId\" "
                                              "IS NOT NULL)", n=1)[0])


def sensor_runs(instance: dg.DagsterInstance) -> list:
    return instance.get_runs(filters=dg.RunsFilter(tags={"sonora/trigger": "salesforce_changes"}))


@pytest.mark.timeout(900)
def test_after_a_burst_the_model_equals_a_rebuild_from_the_mirror(tmp_path, local_org_factory):
    org = local_org_factory(records=400, seed=5)
    db = tmp_path / "mirror.duckdb"
    home = dagster_home(tmp_path)
    log = tmp_path / "daemon.log"
    daemon = None
    try:
        org.advance_clock(8)  # past the settings' 5 s lag
        cli(environment(org, tmp_path), "sync", "--quiet")     # initial import (ephemeral instance)
        cli(environment(org, tmp_path), "model")
        env = environment(org, tmp_path, DAGSTER_HOME=str(home), SONORA_AUTOMATION="on",
                          SONORA_TICK_SECONDS=str(TICK_SECONDS))
        with open(log, "wb") as out:
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                                       str(ROOT / "workspace.yaml")], cwd=tmp_path, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            first_wave(org)
            wait_for("the sensor's first runs", lambda: sensor_runs(instance), 120, log)
            second_wave(org)  # while the first wave's runs (and possibly a rebuild) are under way
            started = time.monotonic()

            def at_rest():
                if instance.get_runs(filters=dg.RunsFilter(statuses=BUSY_STATUSES), limit=1):
                    return False
                if len(sensor_runs(instance)) < 2 or behind(instance, db):
                    return False
                return True

            wait_for("the model catching up with the mirror", at_rest, AT_REST_SECONDS, log, poll=3.0,
                     describe=lambda: "; ".join(behind(instance, db)) or "runs still in flight")
            rest_seconds = time.monotonic() - started
            failed = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.FAILURE]))]
            assert not failed, f"runs failed: {failed}\n{log.read_text()[-4000:]}"
            live = publish_snapshot(db, tmp_path / "live-copy.duckdb")
    finally:
        if daemon is not None:
            stop_process_group(daemon)
            shutil.copy(log, Path(tempfile.gettempdir()) / "sonora-model-catches-up-daemon.log")
    # The mirror equals the org, and every model table equals one rebuilt from that mirror now.
    for name in ("Account", "Contact", "Opportunity", "Case"):
        assert differences(org, live, name) == []
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(live, rebuilt)
    cli(environment(org, tmp_path, SONORA_DUCKDB_PATH=str(rebuilt)), "model")
    for table in SPECS:
        if table != "health_score_history":
            assert model_rows(live, table) == model_rows(rebuilt, table), table
    cases = {r[0]: r for r in duckdb.connect(str(live), read_only=True).execute(
        "SELECT subject, status FROM sonora.cases WHERE subject LIKE 'Burst case%' OR subject LIKE 'Late case%'"
    ).fetchall()}
    assert len(cases) == 5, cases  # the new cases of both waves are in the model
    print(f"model at rest {rest_seconds:.0f} s after the second wave")
