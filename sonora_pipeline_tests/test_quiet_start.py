"""The demo's output from start to the Dagster UI has no warning a user cannot act on, and loading the
definitions raises no Dagster BetaWarning (the suite's output once showed eight)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"warning|superseded", re.IGNORECASE)
UI_START_SECONDS = 240  # the demo's sync and model first, then the UI, on a shared machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_loading_the_definitions_raises_no_beta_warning():
    code = ("import warnings, dagster\n"
            "warnings.simplefilter('error', dagster.BetaWarning)\n"
            "import sonora_pipeline.defs.salesforce.assets, sonora_pipeline.defs.model.assets\n"
            "from sonora_pipeline.definitions import defs\n"
            "defs()\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "BetaWarning" not in result.stderr


def test_the_demo_reaches_the_ui_without_warnings_and_cleans_up_on_sigterm(tmp_path):
    """Stopped (SIGTERM) just after the sensor launched a run: the run finishes before the local org stops."""
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "home").mkdir()
    env = {**{k: v for k, v in os.environ.items() if k not in ("SONORA_DUCKDB_PATH", "SONORA_CONFIG")},
           "DAGSTER_HOME": str(tmp_path / "home"), "TMPDIR": str(temp), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "demo", "--records", "300",
                                 "--ui-port", str(port)], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + UI_START_SECONDS
        answered = False
        while not answered and time.monotonic() < deadline and demo.poll() is None:
            with contextlib.suppress(requests.ConnectionError):
                answered = requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
            time.sleep(0.5)
        assert answered, f"the UI did not answer (demo exit {demo.poll()}):\n{log_path.read_text()[-4000:]}"
        # The change sensor's first tick asks for today's window (the demo's own commits) and the run queue
        # launches it: stop the demo just then, so the run is in flight when the UI goes.
        deadline = time.monotonic() + 90
        while "Launched 1 runs" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Launched 1 runs" in log_path.read_text(), log_path.read_text()[-4000:]
        assert list(temp.glob("sonora-localorg-*")), "the demo's org keeps its CA in a temp folder while it runs"
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)  # anything of the UI left behind
    output = log_path.read_text()
    assert "Opening the Dagster UI" in output and "Launching Dagster services" in output
    # The run in flight ended before the org stopped under it.
    assert "RUN_SUCCESS" in output and "RUN_FAILURE" not in output and "STEP_FAILURE" not in output, output[-6000:]
    noisy = [line for line in output.splitlines() if NOISE.search(line)]
    assert not noisy, "\n".join(noisy)
    assert not list(temp.glob("sonora-localorg-*")), "the demo's org left its folder behind"
    assert (tmp_path / "home" / "dagster.yaml").exists()  # the project's instance settings, in the UI's home


def test_stopping_the_demo_waits_for_a_run_in_flight_then_goes(tmp_path, monkeypatch):
    """The demo stops its local org only once runs in progress have ended (or the wait is over): a run launched
    just before Ctrl-C would otherwise fail with a vanished CA file."""
    import threading

    import dagster as dg

    from sonora_pipeline.cli import ui

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        run = instance.add_run(dg.DagsterRun(job_name="salesforce_sync_job", status=dg.DagsterRunStatus.STARTED))
        ends = threading.Timer(1.5, lambda: instance.report_run_failed(run))
        started = time.monotonic()
        ends.start()
        ui.let_runs_in_flight_finish(timeout=30)
        waited = time.monotonic() - started
        ends.join()
        assert 1.5 <= waited < 10, waited
        instance.add_run(dg.DagsterRun(job_name="salesforce_sync_job", status=dg.DagsterRunStatus.STARTED))
        started = time.monotonic()
        ui.let_runs_in_flight_finish(timeout=1)  # a run that never ends: the wait is bounded
        assert 1 <= time.monotonic() - started < 5
