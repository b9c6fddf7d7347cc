"""The warehouse's write lock across processes: a writer waits for another, gives up after its timeout with
WarehouseBusy (nothing written), and a holder killed with SIGKILL leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import duckdb
import pytest

from sonora_pipeline.mirror.warehouse import WarehouseBusy, write_connection

HOLD = """
import sys, time
from sonora_pipeline.mirror.warehouse import write_connection
with write_connection(sys.argv[1]) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("INSERT INTO t VALUES (1)")
"""


def hold_lock(db, seconds: float) -> subprocess.Popen:
    """Another process holding the write lock (and DuckDB's) for `seconds`, once it says so."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert holder.stdout.readline().strip() == "holding"
    return holder


def rows(db) -> int:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]


def test_a_writer_waits_for_the_holder_then_writes(tmp_path):
    db = tmp_path / "w.duckdb"
    holder = hold_lock(db, 1.5)
    with write_connection(db, timeout=120) as conn:  # queued behind the holder, not refused
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # in after the holder's commit
        conn.execute("INSERT INTO t VALUES (2)")
    assert holder.wait() == 0 and rows(db) == 2


def test_a_writer_gives_up_after_its_timeout_with_nothing_written(tmp_path):
    db = tmp_path / "w.duckdb"
    holder = hold_lock(db, 30)
    try:
        with pytest.raises(WarehouseBusy, match=r"another sync kept the write lock .*w\.duckdb\.write\.lock for "
                                                r"more than 1 s"):
            with write_connection(db, timeout=1) as conn:
                conn.execute("INSERT INTO t VALUES (2)")  # never reached
    finally:
        holder.kill()
        holder.wait()
    assert rows(db) == 0


def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(tmp_path):
    db = tmp_path / "w.duckdb"
    holder = hold_lock(db, 300)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "w.duckdb.write.lock").exists()  # the file stays; the kernel released its lock
    with write_connection(db, timeout=5) as conn:
        conn.execute("INSERT INTO t VALUES (3)")
    assert rows(db) == 1
