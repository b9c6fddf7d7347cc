"""The local org outside the test suite: used only when asked for (`sonora-pipeline demo`, or
`SALESFORCE_INSTANCE_URL=local`), never as a fallback for a missing URL, and never left running by accident.

- `sonora-pipeline localorg` serves one until Ctrl-C (or `--detach`: in the background until killed) and
  writes its credentials to the file the CLI names (`.sonora/localorg.json`), where the product's client
  finds them for `SALESFORCE_INSTANCE_URL=local`: that file (its JSON) is the whole contract, so nothing here
  imports the product, and the product never imports this.
- A CLI command with `SALESFORCE_INSTANCE_URL=local` and no running org starts one in its own process for the
  command (`org_for_command`), which stops with it.
- The credentials file and the detached org's log hold its consumer secret and admin token: both are created
  with mode 600.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_RECORDS = 5000


def log_file(credentials_file: Path) -> Path:
    """The detached org's log, beside its credentials file."""
    return credentials_file.with_name("localorg.log")


def open_private(path: Path, flags: int) -> int:
    """Open (creating) a file only its owner can read, whatever the umask; an existing file is made private too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_credentials(path: Path, credentials: dict) -> None:
    """Write the JSON line atomically (it appears whole, and only once the org answers), mode 600."""
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as out:
        out.write(json.dumps(credentials))
    tmp.replace(path)


def remove_credentials(path: Path, credentials: dict) -> None:
    """Remove the file if it still names this org (another org may have replaced it since)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("instance_url") == credentials.get("instance_url"):
            path.unlink()


def start_detached(credentials_file: Path, records: int = DEFAULT_RECORDS, timeout: float = 180.0) -> dict:
    """`sonora-pipeline localorg --detach`: a local org in the background (its own session, so it survives the
    terminal) until killed; returns its credentials once it answers (it writes them to `credentials_file` only
    then). Asked for explicitly, never implied; the caller checks first that none is running."""
    return _start_in_background(["--records", str(records), "--credentials-file", str(credentials_file)],
                                credentials_file, timeout, "the local org")


def _start_in_background(localorg_argv: list[str], answer_file: Path, timeout: float, what: str) -> dict:
    """`sonora-pipeline localorg <argv>` in a session of its own (it survives the terminal), its log beside
    `answer_file` (mode 600); returns the JSON it writes to `answer_file` once it answers."""
    answer_file.unlink(missing_ok=True)
    log = os.fdopen(open_private(log_file(answer_file), os.O_WRONLY | os.O_APPEND), "ab")
    with log:
        subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", *localorg_argv], stdout=log,
                         stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(answer_file.read_text())
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s; see {log_file(answer_file)}")


def start_detached_fleet(directory: Path, fleet_argv: list[str], timeout: float = 600.0) -> dict:
    """`sonora-pipeline localorg --orgs N --detach`: the fleet in a background process of its own session
    until killed; returns its index once every org answers (it writes index.json last)."""
    return _start_in_background([*fleet_argv, "--fleet-dir", str(directory)], directory / "index.json", timeout,
                                "the local orgs")


@contextlib.contextmanager
def org_for_command(running: dict | None = None, records: int = DEFAULT_RECORDS, log=None) -> Iterator[dict]:
    """Credentials of a local org for one command: `running` (the credentials of the org already running, which
    the caller found in the credentials file), or else one started in this process and stopped when the command
    ends (so nothing outlives it)."""
    if running is not None:
        yield running
        return
    from sonora_pipeline.localorg.org import LocalOrg

    with exit_on_sigterm():
        org = LocalOrg(records=records).start()  # its TLS files in a temp folder that goes when it stops
        if log is not None:
            log(f"No local org is running: started one for this command (org {org.org_id}, {org.instance_url}); "
                "it stops when the command ends, and the next one is a new org that this warehouse will refuse. "
                "Keep one running with `sonora-pipeline localorg` instead.")
        try:
            yield org.credentials.as_dict()
        finally:
            org.stop()


def _exit(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """While a command serves a local org: SIGTERM ends the command through its `finally` (which stops the org
    and removes its temp folder with the CA) instead of Python's default, which ends the process on the spot.
    Only the main thread can set a handler; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
