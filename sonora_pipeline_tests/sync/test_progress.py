"""The progress bar shows time left whenever an object's total is known and its read takes over a second; on a
terminal it redraws one line, elsewhere (a CI log, a pipe) it writes plain lines without carriage returns."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import re
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.salesforce.assets import OBJECT_ASSETS
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.sync.progress import ProgressBar
from sonora_pipeline.sync.runner import run_sync
from sonora_pipeline_tests.sync.helpers import differences
from sonora_pipeline_tests.sync.test_dagster_sync import LAG, resources_for


@contextlib.contextmanager
def terminal_as_stderr(monkeypatch, columns: int = 200) -> Iterator[list[bytes]]:
    """sys.stderr on a real pseudo-terminal (`columns` wide); yields what reaches the terminal, complete once
    the block ends."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    received: list[bytes] = []

    def drain() -> None:
        with contextlib.suppress(OSError):  # EIO once the terminal's last writer has closed it
            while chunk := os.read(master, 65536):
                received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    tty = open(slave, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", tty)
    try:
        yield received
    finally:
        tty.close()
        reader.join(timeout=10)
        os.close(master)


@pytest.mark.fault
def test_a_slow_read_shows_time_left_in_the_bar(org, tmp_path, monkeypatch):
    """Each query answers after 1.5 s: the second object's one page is awaited for over a second, and the bar
    (redrawn in place on the terminal while it waits) estimates it from the rate the first object was read at."""
    db = tmp_path / "m.duckdb"
    org.advance_clock(LAG + 3)
    org.set_faults(latency_seconds=1.5, path_contains="/query")
    defs = dg.Definitions(assets=OBJECT_ASSETS, jobs=[salesforce_sync_job], resources=resources_for(org, db))
    with terminal_as_stderr(monkeypatch) as received, dg.DagsterInstance.ephemeral() as instance:
        results = run_sync(defs, db, ("Contact", "Account"), SETTINGS.sync.overlap_seconds, sync_window,
                           instance=instance, show_progress=True)
    assert all(r.success for r in results)
    frames = b"".join(received).decode().split("\r")
    estimates = [f for f in frames if re.search(r"Account initial import: 0/[\d,]+ rows, 0/s, ~\d+ s left", f)]
    assert estimates, "\n".join(frames)
    assert re.search(r"^\[#+\] 2/2 \S+ done\s*$", frames[-2]) and frames[-1] == "\n", frames[-2:]  # one line
    assert differences(org, db, "Account") == []


def test_not_on_a_terminal_the_bar_writes_plain_lines(monkeypatch):
    """A CI log or a pipe gets lines: one per object, one every LINE_SECONDS while an object is read (time left
    included), and the last says done; no carriage return, no line before the first object."""
    monkeypatch.setattr(ProgressBar, "LINE_SECONDS", 0.3)
    log = io.StringIO()
    bar = ProgressBar(2, log)
    bar.next_object(0, "Contact initial import")
    bar.rows_read("Contact", 0, 1_000)
    bar.rows_read("Contact", 1_000, 1_000)  # 1,000 rows read at once: a high rate for the next estimate
    bar.next_object(1, "Account initial import")
    bar.rows_read("Account", 0, 5_000)
    time.sleep(1.5)  # awaiting the page: a line every 0.3 s, with time left once over a second
    bar.rows_read("Account", 5_000, 5_000)
    bar.finish()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and log.getvalue().endswith("\n")
    assert re.fullmatch(r"\[\.+\] 0/2 \S+ Contact initial import", lines[0]), lines
    assert re.fullmatch(r"\[#+\.+\] 1/2 \S+ Account initial import", lines[1]), lines
    assert 2 <= sum("Account initial import: 0/5,000 rows, 0/s" in line for line in lines) <= 6, lines
    assert any(re.search(r"Account initial import: 0/5,000 rows, 0/s, ~\d+ s left$", line) for line in lines), lines
    assert re.fullmatch(r"\[#+\] 2/2 \S+ done", lines[-1]), lines
