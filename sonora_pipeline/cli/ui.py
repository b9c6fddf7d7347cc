"""The Dagster UI the demo opens: its instance (`.dagster_home/` with the project's dagster.yaml), the `dg dev`
command and environment, and a stop that lets a run in flight finish before the local org goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sonora_pipeline.cli.runs import dagster_instance

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUNS_IN_FLIGHT_WAIT_SECONDS = 30.0


def open_ui(port: int, home: Path) -> int:
    """`dg dev` in `home` until it exits, Ctrl-C or SIGTERM (the UI stops with the demo)."""
    print(f"\nOpening the Dagster UI on http://127.0.0.1:{port} with the change sensor on "
          "(Ctrl-C to stop) ...", flush=True)
    _start_run_retries_at_the_newest_event()
    ui = subprocess.Popen(ui_command(port), env=ui_environment(), cwd=home)
    try:
        return ui.wait()
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM: the UI stops with the demo
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=30)
        let_runs_in_flight_finish(RUNS_IN_FLIGHT_WAIT_SECONDS)
        return 0


def let_runs_in_flight_finish(timeout: float) -> None:
    """A run the sensor launched just before Ctrl-C lives in its own process and outlives the UI; stopping the
    local org under it would fail it with a vanished CA file. So the org waits (bounded) for it to end."""
    import dagster as dg

    in_flight = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                                        dg.DagsterRunStatus.CANCELING])
    deadline = time.monotonic() + timeout
    with dagster_instance() as instance:
        runs = instance.get_runs_count(filters=in_flight)
        if runs:
            print(f"Waiting up to {timeout:.0f} s for {runs} run(s) in progress to finish before stopping the "
                  "local org ...", flush=True)
        while runs and time.monotonic() < deadline:
            time.sleep(0.5)
            runs = instance.get_runs_count(filters=in_flight)


def demo_dagster_home() -> Path:
    """The demo's Dagster instance: $DAGSTER_HOME when set, else `.dagster_home/` in the project. The project's
    dagster.yaml (run queue, retries) is the instance's settings: copied into `.dagster_home/` at every start,
    and into a DAGSTER_HOME of the user's only if it has none (theirs stays theirs). A DAGSTER_HOME that is not
    a directory is left for the sync to refuse with its fix."""
    own = "DAGSTER_HOME" not in os.environ
    home = (PROJECT_ROOT / ".dagster_home") if own else Path(os.environ["DAGSTER_HOME"]).resolve()
    if own:
        home.mkdir(exist_ok=True)
    if home.is_dir() and (own or not (home / "dagster.yaml").exists()):
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _start_run_retries_at_the_newest_event() -> None:
    """Dagster's run-retry daemon (`run_retries` in dagster.yaml) logs "No cursor for event type ..., ignoring
    older events" the first time it runs on an instance: for the demo, every first start, as its syncs came
    first. Nobody can act on it: without a cursor the daemon starts at the newest event anyway. So record that
    same start point where it looks (its own cursor keys), only where none is recorded yet: it starts quietly
    and retries exactly what it would have. Should Dagster rename them, the warning merely comes back."""
    with contextlib.suppress(ImportError, AttributeError):
        from dagster._daemon.auto_run_reexecution.event_log_consumer import DAGSTER_EVENT_TYPES, _create_cursor_key

        with dagster_instance() as instance:
            keys = {_create_cursor_key(event_type) for event_type in DAGSTER_EVENT_TYPES}
            missing = keys - set(instance.daemon_cursor_storage.get_cursor_values(keys))
            if missing:
                newest = instance.event_log_storage.get_maximum_record_id() or 0
                instance.daemon_cursor_storage.set_cursor_values({key: str(newest) for key in missing})


def ui_command(port: int) -> list[str]:
    """`dg dev` (dagster-dg-cli; `dagster dev` is superseded and says so on every start) on the project's
    workspace.yaml: the Dagster webserver plus the daemon (sensors, run queue), on loopback."""
    dg_script = Path(sys.executable).with_name("dg")
    dg = [str(dg_script)] if dg_script.exists() else [shutil.which("dg") or "dg"]
    return [*dg, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]


def ui_environment() -> dict[str, str]:
    """The UI runs in $DAGSTER_HOME (where its dagster.yaml is, so Dagster has no other dagster.yaml in the
    current folder to warn about), importing this same project, with the settings named by absolute paths."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    for name in ("SONORA_CONFIG", "SONORA_HOME"):
        if env.get(name):
            env[name] = str(Path(env[name]).resolve())
    return env
