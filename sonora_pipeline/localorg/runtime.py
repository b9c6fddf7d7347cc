"""The embedded default org: when no Salesforce credentials are configured, the pipeline talks to a local
org running in its own process, started on first use and shared by every Dagster run on this machine
(runs of the multiprocess executor, the sensor and the CLI all see the same data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

DEFAULT_RECORDS = 5000


def state_dir() -> Path:
    return Path(os.environ.get("SONORA_HOME") or Path.cwd() / ".sonora")


def credentials_file() -> Path:
    return state_dir() / "localorg.json"


def _reachable(creds: dict) -> bool:
    try:
        session = requests.Session()
        session.trust_env = False
        reply = session.get(creds["instance_url"] + "/services/data/", verify=creds["ca_bundle"], timeout=5)
        return reply.status_code == 200
    except (requests.RequestException, KeyError, OSError):
        return False


def running_local_org() -> dict | None:
    path = credentials_file()
    if not path.exists():
        return None
    try:
        creds = json.loads(path.read_text())
    except ValueError:
        return None
    return creds if _reachable(creds) else None


def ensure_local_org(records: int = DEFAULT_RECORDS, timeout: float = 180.0) -> dict:
    """Credentials of the running local org, starting one in the background if none answers."""
    creds = running_local_org()
    if creds:
        return creds
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    log = open(path.parent / "localorg.log", "ab")
    subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", str(records),
                      "--credentials-file", str(path)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        creds = running_local_org()
        if creds:
            return creds
        time.sleep(0.2)
    raise RuntimeError(f"the local org did not start within {timeout:.0f} s; see {path.parent / 'localorg.log'}")


def local_org_connection(api_version: str | None = None):
    """An `OrgConnection` to the embedded local org (started if needed): what every entry point uses when
    no SALESFORCE_INSTANCE_URL is configured."""
    from sonora_pipeline.salesforce.connection import DEFAULT_API_VERSION, OrgConnection

    creds = ensure_local_org()
    return OrgConnection(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                         consumer_secret=creds["consumer_secret"], api_version=api_version or DEFAULT_API_VERSION,
                         ca_bundle=creds["ca_bundle"])
