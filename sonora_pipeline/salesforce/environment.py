"""Which org a deployment means: the one home of the SALESFORCE_* variables → `OrgConnection` mapping.

Why one home: the Dagster resource and the command line must read the same variables the same way; an
unset URL is an error with both fixes (never a quiet fallback to the demo org, which would then be synced
into the real warehouse), and `local` means the running local org, found through its credentials file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sonora_pipeline.salesforce.connection import (
    DEFAULT_API_VERSION,
    ENV_CA_BUNDLE,
    ENV_CONSUMER_KEY,
    ENV_CONSUMER_SECRET,
    ENV_INSTANCE_URL,
    LOCAL_ORG_URL,
    OrgConnection,
    unset_url_error,
)
from sonora_pipeline.salesforce.local_org_file import local_org_connection

# OrgConnection field -> the environment variable that sets it.
ENVIRONMENT = {"instance_url": ENV_INSTANCE_URL, "consumer_key": ENV_CONSUMER_KEY,
               "consumer_secret": ENV_CONSUMER_SECRET, "ca_bundle": ENV_CA_BUNDLE}


def org_connection(instance_url: str, consumer_key: str = "", consumer_secret: str = "", *,
                   api_version: str = DEFAULT_API_VERSION, ca_bundle: str = "") -> OrgConnection:
    """The connection these values name: an unset URL raises `unset_url_error()`, `local` is the running local
    org (a ConfigError with the fix when none runs); anything else is judged later by `validate()`."""
    url = (instance_url or "").strip()
    if not url:
        raise unset_url_error()
    if url.lower() == LOCAL_ORG_URL:
        return local_org_connection(api_version)
    return OrgConnection(instance_url=url, consumer_key=consumer_key, consumer_secret=consumer_secret,
                         api_version=api_version, ca_bundle=ca_bundle or None)


def connection_from_env(environ: Mapping[str, str] | None = None) -> OrgConnection:
    """`org_connection()` from the SALESFORCE_* variables (of `environ`, default the process's)."""
    env = os.environ if environ is None else environ
    return org_connection(**{field: env.get(name, "") for field, name in ENVIRONMENT.items()})
