"""The local org outside the test suite: used only when asked for (`sonora-pipeline demo`, or
`SALESFORCE_INSTANCE_URL=local`), never as a fallback for a missing URL, and never left running by accident.

- `sonora-pipeline localorg` serves one until Ctrl-C (or `--detach`: in the background until killed) and
  writes its credentials to `.sonora/localorg.json`, which `SALESFORCE_INSTANCE_URL=local` finds: that is the
  way to keep one running for `dagster dev` or several commands.
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
from pathlib import Path
from typing import Iterator

import requests

DEFAULT_RECORDS = 5000
LOCAL = "local"  # the value of SALESFORCE_INSTANCE_URL that asks for the local org


def state_dir() -> Path:
    return Path(os.environ.get("SONORA_HOME") or Path.cwd() / ".sonora")


def credentials_file() -> Path:
    return state_dir() / "localorg.json"


def log_file() -> Path:
    return state_dir() / "localorg.log"


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


def _reachable(creds: dict) -> bool:
    try:
        session = requests.Session()
        session.trust_env = False
        reply = session.get(creds["instance_url"] + "/services/data/", verify=creds["ca_bundle"], timeout=5)
        return reply.status_code == 200
    except (requests.RequestException, KeyError, OSError, TypeError):
        return False


def running_local_org() -> dict | None:
    """Credentials of the local org that `.sonora/localorg.json` names, if it answers."""
    path = credentials_file()
    if not path.exists():
        return None
    try:
        creds = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return creds if isinstance(creds, dict) and _reachable(creds) else None


def start_detached(records: int = DEFAULT_RECORDS, timeout: float = 180.0) -> dict:
    """`sonora-pipeline localorg --detach`: a local org in the background (its own session, so it survives the
    terminal) until killed; returns its credentials once it answers. Asked for explicitly, never implied."""
    creds = running_local_org()
    if creds:
        return creds
    path = credentials_file()
    path.unlink(missing_ok=True)
    log = os.fdopen(open_private(log_file(), os.O_WRONLY | os.O_APPEND), "ab")
    with log:
        subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(records),
                          "--credentials-file", str(path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        creds = running_local_org()
        if creds:
            return creds
        time.sleep(0.2)
    raise RuntimeError(f"the local org did not start within {timeout:.0f} s; see {log_file()}")


def not_running_error():
    from sonora_pipeline.salesforce.errors import ConfigError

    return ConfigError(
        f"SALESFORCE_INSTANCE_URL is '{LOCAL}' (the local demo org), but no local org is running: none answers "
        f"at the address in {credentials_file()}.",
        "start one in another terminal with `sonora-pipeline localorg` (it serves until Ctrl-C; `--detach` keeps "
        "it in the background) from the same directory, or run `sonora-pipeline demo`.")


def local_org_connection(api_version: str | None = None):
    """An `OrgConnection` to the running local org (`SALESFORCE_INSTANCE_URL=local`); a ConfigError with the
    fix when none runs. Never starts one: a Dagster run or sensor must not leave an org behind."""
    from sonora_pipeline.salesforce.connection import DEFAULT_API_VERSION, OrgConnection

    creds = running_local_org()
    if creds is None:
        raise not_running_error()
    return OrgConnection(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                         consumer_secret=creds["consumer_secret"], api_version=api_version or DEFAULT_API_VERSION,
                         ca_bundle=creds["ca_bundle"])


@contextlib.contextmanager
def org_for_command(records: int = DEFAULT_RECORDS, log=None) -> Iterator[dict]:
    """Credentials of a local org for one command: the running one, or else one started in this process and
    stopped when the command ends (so nothing outlives it)."""
    creds = running_local_org()
    if creds is not None:
        yield creds
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
