"""Which org a run, a step or a tick is for: one implicit org (the SALESFORCE_* variables), or the orgs of a
registry (`SONORA_ORGS`).

The mode is structure, decided when the code location loads: with a registry, every asset that reads or
writes an org's data is partitioned by org (`ORG_PARTITIONS`, a dynamic partition per registered org, which
the change sensor keeps in step with the registry). The org list itself is not structure: it is read again
at every tick and every run, so adding or removing an org needs no reload, and a run for an org that left
the registry refuses before reading or writing anything.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from sonora_pipeline.mirror.lake import LakeLocation, registry_location
from sonora_pipeline.salesforce.connection import DEFAULT_API_VERSION, OrgConnection
from sonora_pipeline.salesforce.secrets import read_client_credentials
from sonora_pipeline.settings.registry import OrgEntry, Registry, RegistryError, load_registry, registry_path

MULTI_ORG: bool = registry_path() is not None
ORG_PARTITIONS = dg.DynamicPartitionsDefinition(name="salesforce_orgs")
# Every run for one org carries it (the sensor's, the schedules'); UI runs of an org partition carry
# `dagster/partition` = the org, which is what the run queue's per-org limit counts (dagster.yaml).
ORG_TAG = "sonora/org"


class OrgUnavailable(Exception):
    """This org cannot be used now (not registered, a wrong registry entry, unreadable secrets): the reason
    and the fix, never a secret."""


def current_registry() -> Registry:
    """The registry as it is now (`SONORA_ORGS`); a broken file raises `OrgUnavailable` with its fix."""
    path = registry_path()
    if path is None:
        raise OrgUnavailable("SONORA_ORGS is not set: this deployment has no registry of orgs.")
    try:
        return load_registry(path)
    except RegistryError as err:
        raise OrgUnavailable(str(err)) from None


def registered(org: str, registry: Registry | None = None) -> OrgEntry:
    """The org's registry entry, or `OrgUnavailable` saying why a run for it must not go on."""
    registry = registry or current_registry()
    if org in registry.problems:
        raise OrgUnavailable(f"Org {org!r}: {registry.problems[org]}")
    entry = registry.orgs.get(org)
    if entry is None:
        raise OrgUnavailable(
            f"Org {org!r} is not in the registry {registry.path} (removed, or a partition of an old name): "
            "nothing was read or written. Its data stays in its folder until `sonora-pipeline orgs purge "
            f"{org} --yes`; add it back to the registry to sync it again.")
    return entry


def connection_for(entry: OrgEntry) -> OrgConnection:
    """The org's connection, its secrets read now from the file or the variables the entry names."""
    key, secret = read_client_credentials(entry.credentials_file, entry.credentials_env)
    return OrgConnection(instance_url=entry.instance_url, consumer_key=key, consumer_secret=secret,
                         api_version=entry.api_version or DEFAULT_API_VERSION,
                         ca_bundle=entry.ca_bundle or None).validate()


def warehouse_path(org: str) -> Path | LakeLocation:
    """The org's own DuckDB file (its namespace: mirror, model, ledger, sync state), or its catalog in the
    registry's DuckLake."""
    return registry_location(current_registry(), org)


def settings_path(org: str) -> Path | None:
    """The org's settings file; None: the deployment's (SONORA_CONFIG, or the built-in defaults)."""
    return registered(org).settings_path


def org_of(context) -> str | None:
    """The org a step is for: its partition (multi-org), or None (the one implicit org)."""
    if not MULTI_ORG:
        return None
    tags = context.run.tags
    return tags.get("dagster/partition") or tags.get(ORG_TAG)


def step_org(context) -> str | None:
    """`org_of`, refusing (a `dg.Failure` with the reason) an org that is not usable now."""
    org = org_of(context)
    if org is None:
        if MULTI_ORG:
            raise dg.Failure(description="This run names no org: launch it for one org partition (one org per "
                                         "run; a backfill over several orgs makes one run each).")
        return None
    try:
        registered(org)
    except OrgUnavailable as err:
        raise dg.Failure(description=str(err)) from None
    return org


def per_org_requests(context, run_key: str, tags: dict[str, str]) -> list[dg.RunRequest] | dg.SkipReason:
    """A schedule's runs with a registry: one per registered org that already has its partition (the change
    sensor adds them), each with `run_key` made unique per org."""
    try:
        registry = current_registry()
    except OrgUnavailable as err:
        return dg.SkipReason(str(err))
    known = set(context.instance.get_dynamic_partitions(ORG_PARTITIONS.name))
    orgs = [org for org in registry.orgs if org in known]
    if not orgs:
        return dg.SkipReason("No registered org has a partition yet (the salesforce_changes sensor adds them).")
    return [dg.RunRequest(run_key=f"{run_key}:{org}", partition_key=org, tags={**tags, ORG_TAG: org})
            for org in orgs]
