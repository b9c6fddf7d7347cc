"""Keeping the mirror current: a sensor that asks the org what changed, with one API call per tick.

What is due comes from what the mirror has committed, read every tick: `salesforce._sync_state` holds each
object's cursor, which only moves in the transaction that commits the rows it covers. One composite batch
(one API call, whatever the number of objects) asks, per object, for the newest SystemModstamp after that
cursor and before now - lag. Every window from the cursor's to that change's is due. So a run that fails
leaves its cursor where it was and the next tick asks for the same window again; a window with a run still
queued or in progress (any run of the instance materializing that object and partition) is left alone.

The objects due for one window share ONE run (several assets, one partition key), oldest windows first, at
most `RUNS_PER_TICK_CAP` runs per tick; the rest is said in the tick's message and requested by the next
ticks. Lag and overlap are read from the settings file at each tick (`SettingsResource`), as the runs it
launches read it; which objects exist is the loaded definitions'. A tick never waits: its client has short
timeouts and one retry, and a quota pause or a refused call for the daily limit skips the tick with the
reason (so do refused credentials), instead of blocking past Dagster's sensor timeout.
"""


import json
import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import dagster as dg

from sonora_pipeline.defs.orgs import MULTI_ORG
from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.assets import asset_key_for
from sonora_pipeline.defs.salesforce.org_changes import org_changes_tick
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource, structure_changed
from sonora_pipeline.model.build import SPECS
from sonora_pipeline.model.statements import MODEL_SCHEMA
from sonora_pipeline.salesforce.datetimes import parse_datetime
from sonora_pipeline.salesforce.errors import (
    AuthError,
    ConfigError,
    QuotaPaused,
    SalesforceError,
)
from sonora_pipeline.salesforce.soql import soql_datetime
from sonora_pipeline.settings import Settings, SettingsError

# The most runs ONE tick requests (runs already queued are not counted: the run queue bounds those): the
# instance runs 4 at a time (dagster.yaml), and a backlog of windows (the sensor was off for weeks) drains over
# a few ticks instead of flooding the run queue in one.
RUNS_PER_TICK_CAP = 8
# Runs that will still commit something: a window they cover is not requested again.
BUSY_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                 dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def automation_status() -> dg.DefaultSensorStatus:
    """Sensors and schedules start stopped unless SONORA_AUTOMATION=on (the demo sets it)."""
    on = os.environ.get("SONORA_AUTOMATION", "off").lower() in ("on", "1", "true")
    return dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED


def tick_seconds() -> int:
    """Seconds between ticks of the change sensor and the model's automation: SONORA_TICK_SECONDS (default 60;
    a test drives the daemon through a burst with shorter ticks)."""
    value = os.environ.get("SONORA_TICK_SECONDS", "60")
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 5:
        raise ValueError(f"SONORA_TICK_SECONDS={value!r} is not a whole number of seconds >= 5. Fix: unset it "
                         "(60 s between ticks) or set e.g. SONORA_TICK_SECONDS=30.")
    return seconds


def committed_cursors(warehouse: WarehouseResource) -> dict[str, datetime]:
    """Each imported object's committed cursor, as the mirror has it now."""
    from sonora_pipeline.mirror.state import read_all_states
    from sonora_pipeline.mirror.warehouse import read_connection, warehouse_exists

    path = warehouse.db_path()
    if not warehouse_exists(path):
        return {}
    with read_connection(path) as conn:
        states = read_all_states(conn, SETTINGS.sync.objects)
    return {name: s.cursor_modstamp for name, s in states.items() if s.cursor_modstamp}


def partitions_between(start: datetime, end: datetime) -> list[str]:
    """Existing daily window keys from the one holding `start` to the one holding `end` (clamped to the
    windows that exist, so a clock slightly ahead of ours never asks for a window not yet defined)."""
    first, last = start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    keys = sync_window.get_partition_keys()
    chosen = [k for k in keys if first <= k <= last]
    return chosen or ([keys[-1]] if keys and last > keys[-1] else [])


def windows_in_flight(instance: dg.DagsterInstance) -> set[tuple[dg.AssetKey, str]]:
    """(asset, partition) pairs that a queued or running run of the instance will materialize, whoever
    launched it (this sensor, the schedule, a backfill, the CLI on the same DAGSTER_HOME)."""
    busy: set[tuple[dg.AssetKey, str]] = set()
    salesforce_keys = {asset_key_for(name) for name in SETTINGS.sync.objects}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=BUSY_STATUSES)):
        tags = run.tags
        if "dagster/partition" in tags:
            keys = [tags["dagster/partition"]]
        elif "dagster/asset_partition_range_start" in tags:
            keys = sync_window.get_partition_keys_in_range(dg.PartitionKeyRange(
                tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]))
        else:
            continue
        assets = run.asset_selection if run.asset_selection is not None else salesforce_keys
        busy.update((asset, key) for asset in assets & salesforce_keys for key in keys)
    return busy


def _probe(name: str, cursor: datetime, ready: datetime, api_version: str) -> dict:
    return {"method": "GET", "url": f"v{api_version}/queryAll?q=" + quote_plus(
        f"SELECT Id, SystemModstamp FROM {name} WHERE SystemModstamp > {soql_datetime(cursor)} "
        f"AND SystemModstamp <= {soql_datetime(ready)} ORDER BY SystemModstamp DESC LIMIT 1")}


def plan_runs(due: dict[str, set[str]], busy: set[tuple[dg.AssetKey, str]],
              cap: int = RUNS_PER_TICK_CAP) -> tuple[list[dg.RunRequest], str]:
    """One run per due window for its objects without a run in flight, oldest windows first, at most `cap`;
    and the tick's message, which says what is left for the next ticks."""
    todo = {key: sorted(n for n in names if (asset_key_for(n), key) not in busy) for key, names in due.items()}
    waiting = sum(len(names) for names in due.values()) - sum(len(names) for names in todo.values())
    todo = {key: names for key, names in sorted(todo.items()) if names}
    chosen = list(todo.items())[:cap]
    requests = [dg.RunRequest(
        partition_key=key, asset_selection=[asset_key_for(n) for n in names],
        tags={"sonora/trigger": "salesforce_changes", "sonora/objects": ",".join(names)},
    ) for key, names in chosen]
    parts = [f"{len(requests)} run(s) for window(s) {', '.join(k for k, _ in chosen)}" if requests else "no run"]
    if len(todo) > len(chosen):
        parts.append(f"{len(todo) - len(chosen)} more window(s) left for the next tick(s) (at most {cap} runs "
                     "per tick)")
    if waiting:
        parts.append(f"{waiting} object window(s) already have a run queued or in progress")
    return requests, "; ".join(parts)


def quota_paused_until(cursor: str | None) -> datetime | None:
    """When the pause an earlier tick saw ends. The sensor's cursor holds only this pacing fact: what is due
    always comes from the mirror's committed cursors."""
    try:
        return datetime.fromisoformat(json.loads(cursor)["quota_paused_until"]) if cursor else None
    except (ValueError, KeyError, TypeError):
        return None


def quota_pause(settings: Settings, message: str) -> dg.SensorResult:
    """Skip, and ask nothing of the org for `sync.quota_pause_seconds`: each tick has a budget of its own (the
    resource's, for one tick), so the pause is carried in the sensor's cursor instead; without it, every tick
    would spend a call on an org already at the pipeline's share."""
    until = datetime.now(UTC) + timedelta(seconds=settings.sync.quota_pause_seconds)
    return dg.SensorResult(skip_reason=dg.SkipReason(message),
                           cursor=json.dumps({"quota_paused_until": until.isoformat()}))


@dg.sensor(
    name="salesforce_changes",
    job=salesforce_sync_job,  # runs show as salesforce_sync_job; each RunRequest selects its objects
    minimum_interval_seconds=tick_seconds(),
    default_status=automation_status(),
    description=("Keeps the org partitions in step with the registry (SONORA_ORGS) and asks every idle org (one "
                 "API call each) what changed since its mirror's committed cursors: one run per org with changes "
                 "(its changed objects, then its customer model). Each org's settings file as it is at the tick."
                 if MULTI_ORG else
                 "Asks the org (one API call) which objects changed since the mirror's committed cursors and "
                 "runs their due sync windows, one run per window, at most "
                 f"{RUNS_PER_TICK_CAP} runs per tick. Lag and overlap: the settings file as it is at the tick."),
)
def salesforce_changes(context: dg.SensorEvaluationContext, salesforce: SalesforceResource,
                       warehouse: WarehouseResource, settings: SettingsResource) -> dg.SensorResult | dg.SkipReason:
    if MULTI_ORG:
        return org_changes_tick(context, salesforce, warehouse, settings,
                                [dg.AssetKey([MODEL_SCHEMA, t]) for t in SPECS], asset_key_for)
    try:
        current = settings.load()
    except SettingsError as err:
        return dg.SkipReason(f"Not syncing: {err}")
    if changed := structure_changed(current):
        context.log.warning(changed)
    cursors = committed_cursors(warehouse)
    if not cursors:
        return dg.SkipReason("No object has been imported yet: run `sonora-pipeline sync` (or materialize "
                             "the salesforce assets) for the initial import first.")
    names = [n for n in SETTINGS.sync.objects if n in cursors]
    if (until := quota_paused_until(context.cursor)) and datetime.now(UTC) < until:
        return dg.SkipReason(f"Not asking the org until {until:%H:%M:%S} UTC: its API usage was at the "
                             "pipeline's share (sync.max_quota_share) at an earlier tick.")
    try:
        client = salesforce.client(context.log, fail_fast=True)
        ready = client.server_now().replace(tzinfo=None) - timedelta(seconds=current.sync.lag_seconds)
        answer = client.composite_batch([_probe(n, cursors[n], ready, client.connection.api_version)
                                         for n in names])
    except QuotaPaused as err:
        return quota_pause(current, f"Not asking the org this tick: {err}")
    except (AuthError, ConfigError) as err:
        return dg.SkipReason(f"Not syncing: {err}")
    except SalesforceError as err:
        return dg.SkipReason(f"Could not ask the org for changes this tick: {err}")
    due: dict[str, set[str]] = defaultdict(set)  # window -> objects
    for name, result in zip(names, answer["results"]):
        if result["statusCode"] != 200:
            context.log.warning(f"{name}: change probe failed: {result['result']}")
            continue
        records = result["result"]["records"]
        if not records:
            continue
        latest = parse_datetime(records[0]["SystemModstamp"])
        start = max(cursors[name] - timedelta(seconds=current.sync.overlap_seconds),
                    datetime.combine(SETTINGS.sync.partitions_start, datetime.min.time()))
        for key in partitions_between(start, latest):
            due[key].add(name)
    if not due:
        return dg.SkipReason("No changes in the org since the mirror's committed cursors.")
    if client.budget.over_share:
        return quota_pause(current, f"{len(due)} window(s) changed, but the org's API usage ({client.budget.used}/"
                                    f"{client.budget.max}) is at the pipeline's share "
                                    f"({client.budget.max_share:.0%}): not launching runs that would wait; a "
                                    "later tick launches them.")
    requests, message = plan_runs(due, windows_in_flight(context.instance))
    context.log.info(message)
    if not requests:
        return dg.SkipReason(message)
    return dg.SensorResult(run_requests=requests)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[salesforce_changes])
