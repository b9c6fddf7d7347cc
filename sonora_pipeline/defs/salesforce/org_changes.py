"""The change sensor with a registry of orgs: one tick keeps the org partitions in step with the registry
and asks every idle org, with at most one API call each, whether anything changed since its mirror's
committed cursors.

- Orgs added to the registry become partitions (`SensorResult.dynamic_partitions_requests`), and their first
  run (the initial import) is requested in the same tick. Orgs removed lose their partition, and their queued
  or running runs are cancelled through the run coordinator; their data stays until `orgs purge`.
- An org with a run queued or in progress is not asked (its run will commit; the run queue's per-org limit
  keeps one at a time anyway). One whose API usage is at its share of the allowance is paused for
  `sync.quota_pause_seconds` of its own settings (kept in the sensor's cursor, per org).
- A failure of one org (credentials, settings, quota, an unreachable org) is that org's skip reason in the
  tick's log; the others go on. Orgs are asked in parallel, so a tick over 1,000 orgs ends well inside
  Dagster's sensor timeout.
- One run per org with changes: the changed objects and the customer model after them. At most
  `ORG_RUNS_PER_TICK` runs are requested per tick; the orgs left over are first in line at the next tick.
- The tick is time-boxed (`TICK_BUDGET_SECONDS`): orgs not asked by then are the first asked at the next tick.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote_plus

import dagster as dg
import duckdb

from sonora_pipeline.defs.orgs import (
    ORG_PARTITIONS,
    ORG_TAG,
    OrgUnavailable,
    connection_for,
    current_registry,
    registered,
)
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource, forget_probe_sessions
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.mirror.lake import LakeLocation, LakeNotCreated
from sonora_pipeline.mirror.state import read_all_states
from sonora_pipeline.mirror.warehouse import read_connection
from sonora_pipeline.salesforce.errors import QuotaPaused, SalesforceError
from sonora_pipeline.salesforce.soql import soql_datetime
from sonora_pipeline.settings import SettingsError

ORG_RUNS_PER_TICK = 50  # creating a run costs the tick ~20-50 ms of run storage; the queue bounds the rest
PROBE_THREADS = 16
# Dagster ends a sensor evaluation after 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS): the tick stops asking
# new orgs after this long, and the next tick starts with the ones it left.
TICK_BUDGET_SECONDS = 40.0
BUSY_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                 dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class OrgOutcome:
    """What a tick found for one org: objects to sync (None: nothing to do), or why it was skipped."""

    org: str
    objects: tuple[str, ...] | None = None
    reason: str = ""
    initial: bool = False
    pause_until: datetime | None = None
    warning: str = ""


def org_of_run(run: dg.DagsterRun) -> str | None:
    return run.tags.get(ORG_TAG) or run.tags.get("dagster/partition")


def busy_runs(instance: dg.DagsterInstance) -> dict[str, list[dg.DagsterRun]]:
    """Queued or in-progress runs by org, whoever launched them."""
    busy: dict[str, list[dg.DagsterRun]] = {}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=BUSY_STATUSES)):
        org = org_of_run(run)
        if org:
            busy.setdefault(org, []).append(run)
    return busy


# Each org's committed cursors as last read, by the version of its files: a quiet org's DuckDB file (and its
# write-ahead log) is unchanged from one tick to the next, and opening it was half of a tick's cost per org.
# Any commit changes the file or its log, and the next tick reads the cursors again.
_CURSORS: dict[Path, tuple[tuple, dict[str, datetime]]] = {}


def _file_version(db_path: Path) -> tuple:
    wal = db_path.with_name(db_path.name + ".wal")
    versions = []
    for path in (db_path, wal):
        try:
            st = path.stat()
            versions.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except FileNotFoundError:
            versions.append(None)
    return tuple(versions)


def committed_cursors(db_path: Path | LakeLocation, objects: tuple[str, ...]) -> dict[str, datetime] | None:
    """The org's committed cursors, without waiting: None while a writer holds its file (a run of it, or
    the CLI: the next tick asks again). An org never imported has none. A lake's are read every time (its
    readers never wait, and no file's version says when it changed)."""
    if isinstance(db_path, LakeLocation):
        try:
            with read_connection(db_path) as conn:
                states = read_all_states(conn, objects)
        except LakeNotCreated:
            return {}
        return {name: s.cursor_modstamp for name, s in states.items() if s.cursor_modstamp}
    if not db_path.exists():
        return {}
    version = (_file_version(db_path), objects)
    cached = _CURSORS.get(db_path)
    if cached is not None and cached[0] == version:
        return cached[1]
    try:
        conn = duckdb.connect(str(db_path), read_only=True)
    except duckdb.IOException:
        return None
    with conn:
        states = read_all_states(conn, objects)
    cursors = {name: s.cursor_modstamp for name, s in states.items() if s.cursor_modstamp}
    _CURSORS[db_path] = (version, cursors)
    return cursors


def _probe(name: str, cursor: datetime, ready: datetime, api_version: str) -> dict:
    return {"method": "GET", "url": f"v{api_version}/queryAll?q=" + quote_plus(
        f"SELECT Id FROM {name} WHERE SystemModstamp > {soql_datetime(cursor)} "
        f"AND SystemModstamp <= {soql_datetime(ready)} LIMIT 1")}


def check_org(org: str, salesforce: SalesforceResource, warehouse: WarehouseResource,
              settings: SettingsResource, log) -> OrgOutcome:
    """One org's part of the tick: at most one API call (a composite batch of one probe per object)."""
    try:
        current = settings.load(org)
        objects = tuple(n for n in current.sync.objects if n in SETTINGS.sync.objects)
        unknown = [n for n in current.sync.objects if n not in SETTINGS.sync.objects]
        warning = (f"its settings sync {', '.join(unknown)}, which the loaded definitions have no asset for: add "
                   "them to the deployment's settings (SONORA_CONFIG sync.custom_objects) and reload the code "
                   "location; until then they are not synced" if unknown else "")
        cursors = committed_cursors(warehouse.db_path(org), objects)
        if cursors is None:
            return OrgOutcome(org, reason="its warehouse file is being written by another process")
        if not cursors:
            # No call to make yet, but its secrets and address are read now (locally): a broken one is this
            # tick's skip reason, not its first run's failure.
            connection_for(registered(org))
            return OrgOutcome(org, objects=objects, initial=True, warning=warning)
        names = [n for n in objects if n in cursors]
        client = salesforce.client(log, fail_fast=True, org=org)
        ready = client.server_now().replace(tzinfo=None) - timedelta(seconds=current.sync.lag_seconds)
        answer = client.composite_batch([_probe(n, cursors[n], ready, client.connection.api_version)
                                         for n in names])
        changed = tuple(n for n, r in zip(names, answer["results"])
                        if r["statusCode"] == 200 and r["result"]["records"])
        missing = tuple(n for n in objects if n not in cursors)  # added to the org's settings since
        if client.budget.over_share and (changed or missing):
            until = datetime.now(UTC) + timedelta(seconds=current.sync.quota_pause_seconds)
            return OrgOutcome(org, reason=f"API usage {client.budget.used}/{client.budget.max} is at its share "
                                          f"({client.budget.max_share:.0%}); paused until {until:%H:%M:%S} UTC "
                                          "(sync.quota_pause_seconds). Fix: nothing if other integrations spend its "
                                          "allowance for a while; otherwise raise sync.max_quota_share in its "
                                          "settings or ask Salesforce for a higher allowance.", pause_until=until)
        return OrgOutcome(org, objects=(changed + missing) or None, warning=warning)
    except QuotaPaused as err:
        pause = settings.load(org).sync.quota_pause_seconds
        return OrgOutcome(org, reason=str(err), pause_until=datetime.now(UTC) + timedelta(seconds=pause))
    except (SettingsError, SalesforceError, OrgUnavailable) as err:
        return OrgOutcome(org, reason=str(err).splitlines()[0])
    except OSError as err:  # the org's folder or file cannot be read
        return OrgOutcome(org, reason=f"its warehouse cannot be read ({err})")


def check_orgs(orgs: list[str], check) -> tuple[list[OrgOutcome], list[str]]:
    """`check` each org from `PROBE_THREADS` threads until `TICK_BUDGET_SECONDS` have passed: (the outcomes, the
    orgs left unasked, in order). A tick that runs long (a slow org API, a loaded machine, more orgs than one
    tick can ask) ends inside Dagster's sensor timeout instead of failing with nothing requested."""
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    pool = ThreadPoolExecutor(max_workers=PROBE_THREADS)
    futures = {org: pool.submit(check, org) for org in orgs}
    wait(list(futures.values()), timeout=max(0.0, deadline - time.monotonic()))
    for future in futures.values():
        future.cancel()  # not started yet: left for the next tick
    pool.shutdown(wait=True)  # the checks in flight end within their short timeouts
    outcomes = [f.result() for f in futures.values() if f.done() and not f.cancelled()]
    unasked = [org for org, f in futures.items() if f.cancelled()]
    return outcomes, unasked


def next_start(cursor: str | None, idle: list[str]) -> int:
    """Where this tick starts in the registry's order: at the first org the last tick left unasked."""
    try:
        first = json.loads(cursor).get("next") if cursor else None
    except (ValueError, AttributeError):
        first = None
    return idle.index(first) if first in idle else 0


def paused_orgs(cursor: str | None) -> dict[str, datetime]:
    """Orgs paused for their quota at an earlier tick, and until when (the only state the cursor holds)."""
    try:
        raw = json.loads(cursor)["paused"] if cursor else {}
        return {org: datetime.fromisoformat(until) for org, until in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


def run_request(outcome: OrgOutcome, model_keys: list[dg.AssetKey], object_key) -> dg.RunRequest:
    objects = outcome.objects or ()
    return dg.RunRequest(
        partition_key=outcome.org,
        asset_selection=[object_key(n) for n in objects] + model_keys,
        tags={ORG_TAG: outcome.org, "sonora/trigger": "salesforce_changes", "sonora/objects": ",".join(objects),
              "sonora/sync_kind": "initial" if outcome.initial else "incremental"})


def org_changes_tick(context: dg.SensorEvaluationContext, salesforce: SalesforceResource,
                     warehouse: WarehouseResource, settings: SettingsResource, model_keys: list[dg.AssetKey],
                     object_key) -> dg.SensorResult | dg.SkipReason:
    try:
        registry = current_registry()
    except OrgUnavailable as err:
        return dg.SkipReason(f"Not syncing: {err}")
    instance = context.instance
    known = set(instance.get_dynamic_partitions(ORG_PARTITIONS.name))
    orgs = list(registry.orgs)
    added = [o for o in orgs if o not in known]
    removed = sorted(known - set(orgs) - set(registry.problems))
    busy = busy_runs(instance)
    for org in removed:
        for run in busy.pop(org, []):
            instance.run_coordinator.cancel_run(run.run_id)
            context.log.info(f"Org {org} left the registry: cancelled its run {run.run_id}")
    for org, problem in registry.problems.items():
        context.log.warning(f"Org {org}: {problem}")
    now = datetime.now(UTC)
    paused = {o: t for o, t in paused_orgs(context.cursor).items() if t > now and o in registry.orgs}
    idle = [o for o in orgs if o not in busy and o not in paused]
    start = next_start(context.cursor, idle)
    to_check = idle[start:] + idle[:start]  # those a time-boxed tick left unasked go first
    outcomes, unasked = check_orgs(to_check, lambda o: check_org(o, salesforce, warehouse, settings, context.log))
    salesforce.close()
    forget_probe_sessions(set(registry.orgs))
    for outcome in outcomes:
        if outcome.warning:
            context.log.warning(f"Org {outcome.org}: {outcome.warning}")
        if outcome.reason:
            context.log.warning(f"Org {outcome.org} skipped this tick: {outcome.reason}")
        if outcome.pause_until:
            paused[outcome.org] = outcome.pause_until
    due = [o for o in outcomes if o.objects]
    requests = [run_request(o, model_keys, object_key) for o in due[:ORG_RUNS_PER_TICK]]
    counts = Counter("run" if o.objects else "skipped" if o.reason else "no change" for o in outcomes)
    summary = (f"{len(orgs)} org(s): {len(requests)} run(s) requested, {counts['no change']} without change, "
               f"{len(busy)} with a run in flight, {len(paused)} paused for quota, {counts['skipped']} skipped "
               f"(reasons in the log), {len(added)} added, {len(removed)} removed")
    if len(due) > len(requests):
        summary += f"; {len(due) - len(requests)} org(s) with changes left for the next tick"
    if unasked:
        summary += (f"; {len(unasked)} org(s) not asked within the tick's {TICK_BUDGET_SECONDS:.0f} s (first in "
                    "line at the next tick)")
    context.log.info(summary)
    cursor = json.dumps({"paused": {o: t.isoformat() for o, t in sorted(paused.items())},
                         "next": unasked[0] if unasked else None})
    partition_requests = []
    if added:
        partition_requests.append(ORG_PARTITIONS.build_add_request(added))
    if removed:
        partition_requests.append(ORG_PARTITIONS.build_delete_request(removed))
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partition_requests or None,
                           cursor=cursor, skip_reason=None if requests else summary)
