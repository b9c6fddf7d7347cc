"""`SALESFORCE_INSTANCE_URL=local`: the credentials file is the only door between the product and the local org.

Why a file: the local org (`sonora-pipeline localorg`) is test and demo infrastructure the product must not
import; it writes its credentials (JSON: instance_url, consumer_key, consumer_secret, ca_bundle, ...) to
`$SONORA_HOME/localorg.json` (default `.sonora/` under the current directory) once it answers, and removes
them when it stops. The client reads that file like any other credentials, so a Dagster run or sensor
reaches a running local org without knowing what serves it, and never starts one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import requests

from sonora_pipeline.salesforce.connection import DEFAULT_API_VERSION, ENV_INSTANCE_URL, LOCAL_ORG_URL, OrgConnection
from sonora_pipeline.salesforce.errors import ConfigError


def local_org_file() -> Path:
    """Where a running local org's credentials are: `$SONORA_HOME/localorg.json`, else `.sonora/localorg.json`."""
    return Path(os.environ.get("SONORA_HOME") or Path.cwd() / ".sonora") / "localorg.json"


def running_local_org(path: Path | None = None) -> dict[str, Any] | None:
    """The credentials in `path` (default `local_org_file()`) if the org they name answers, else None."""
    path = path or local_org_file()
    try:
        creds = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return creds if isinstance(creds, dict) and _answers(creds) else None


def local_org_connection(api_version: str | None = None) -> OrgConnection:
    """An `OrgConnection` to the running local org; a ConfigError with the fix when none answers."""
    creds = running_local_org()
    if creds is None:
        raise ConfigError(
            f"{ENV_INSTANCE_URL} is '{LOCAL_ORG_URL}' (the local demo org), but no local org is running: none "
            f"answers at the address in {local_org_file()}.",
            "start one in another terminal with `sonora-pipeline localorg` (it serves until Ctrl-C; `--detach` "
            "keeps it in the background) from the same directory, or run `sonora-pipeline demo`.")
    return OrgConnection(instance_url=creds["instance_url"], consumer_key=creds["consumer_key"],
                         consumer_secret=creds["consumer_secret"], api_version=api_version or DEFAULT_API_VERSION,
                         ca_bundle=creds["ca_bundle"])


def _answers(creds: dict[str, Any]) -> bool:
    """True when the org the file names answers its (free, unauthenticated) versions list: a file left by
    an org that was killed must not be taken for a running one."""
    try:
        session = requests.Session()
        session.trust_env = False
        reply = session.get(creds["instance_url"] + "/services/data/", verify=creds["ca_bundle"], timeout=5)
        return reply.status_code == 200
    except (requests.RequestException, KeyError, OSError, TypeError):
        return False
