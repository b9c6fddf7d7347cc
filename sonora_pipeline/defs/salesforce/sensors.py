"""Keeping the mirror current: a sensor that asks the org what changed, with one API call per tick.

Each tick sends one composite batch (one API call, whatever the number of objects) holding, per object,
"the newest SystemModstamp after my cursor and before now - lag". Objects with something newer get a run
for every sync window between their cursor and that change, with a run key naming the change, so a
window is never run twice for the same change. When the org refuses the credentials the sensor skips with
the reason (and retries the token cheaply each tick) instead of launching runs that would fail.
"""


import json
import os
from datetime import datetime, timedelta
from urllib.parse import quote_plus

import dagster as dg

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.objects import asset_key_for
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.salesforce.errors import AuthError, ConfigError, SalesforceError
from sonora_pipeline.sync.windows import soql_datetime

MAX_RUNS_PER_TICK = 50


def automation_status() -> dg.DefaultSensorStatus:
    """Sensors and schedules start stopped unless SONORA_AUTOMATION=on (the demo sets it)."""
    on = os.environ.get("SONORA_AUTOMATION", "off").lower() in ("on", "1", "true")
    return dg.DefaultSensorStatus.RUNNING if on else dg.DefaultSensorStatus.STOPPED


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


def _salesforce_datetime(text: str) -> datetime:
    """'2026-11-30T10:00:00.000+0000' -> naive UTC."""
    return datetime.strptime(text[:23], "%Y-%m-%dT%H:%M:%S.%f")


def _mirror_cursors(warehouse: WarehouseResource) -> dict[str, str]:
    """Where the mirror stands (from the warehouse), used when the sensor has no cursor of its own yet."""
    from sonora_pipeline.mirror.state import read_all_states
    from sonora_pipeline.mirror.warehouse import read_connection

    path = warehouse.db_path()
    if not path.exists():
        return {}
    with read_connection(path) as conn:
        states = read_all_states(conn, SETTINGS.sync.objects)
    return {name: s.cursor_modstamp.isoformat() for name, s in states.items() if s.cursor_modstamp}


def partitions_between(start: datetime, end: datetime) -> list[str]:
    """Existing daily window keys from the one holding `start` to the one holding `end` (clamped to the
    windows that exist, so a clock slightly ahead of ours never asks for a window not yet defined)."""
    first, last = start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    keys = sync_window.get_partition_keys()
    chosen = [k for k in keys if first <= k <= last]
    return chosen or ([keys[-1]] if keys and last > keys[-1] else [])


@dg.sensor(
    name="salesforce_changes",
    target=dg.AssetSelection.groups("salesforce"),
    minimum_interval_seconds=60,
    default_status=automation_status(),
    description="Asks the org (one API call) which objects changed and runs only their affected sync windows.",
)
def salesforce_changes(context: dg.SensorEvaluationContext, salesforce: SalesforceResource,
                       warehouse: WarehouseResource) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {}
    objects: dict[str, str] = dict(cursor.get("objects", {}))
    if not objects:
        objects = _mirror_cursors(warehouse)
        if not objects:
            return dg.SkipReason("No object has been imported yet: run `sonora-pipeline sync` (or materialize "
                                 "the salesforce assets) for the initial import first.")
    try:
        client = salesforce.client(context.log)
        now = client.server_now().replace(tzinfo=None)
        ready = now - timedelta(seconds=SETTINGS.sync.lag_seconds)
        names = [n for n in SETTINGS.sync.objects if n in objects]
        subrequests = [{
            "method": "GET",
            "url": f"v{client.connection.api_version}/queryAll?q=" + quote_plus(
                f"SELECT Id, SystemModstamp FROM {name} WHERE SystemModstamp > "
                f"{soql_datetime(_parse(objects[name]))} AND SystemModstamp <= {soql_datetime(ready)} "
                "ORDER BY SystemModstamp DESC LIMIT 1"),
        } for name in names]
        answer = client.composite_batch(subrequests)
    except (AuthError, ConfigError) as err:
        return dg.SkipReason(f"Not syncing: {err}")
    except SalesforceError as err:
        return dg.SkipReason(f"Could not ask the org for changes this tick: {err}")
    requests: list[dg.RunRequest] = []
    new_objects = dict(objects)
    for name, result in zip(names, answer["results"]):
        if result["statusCode"] != 200:
            context.log.warning(f"{name}: change probe failed: {result['result']}")
            continue
        records = result["result"]["records"]
        if not records:
            continue
        latest = _salesforce_datetime(records[0]["SystemModstamp"])
        since = _parse(objects[name]) - timedelta(seconds=SETTINGS.sync.overlap_seconds)
        for key in partitions_between(max(since, datetime.combine(SETTINGS.sync.partitions_start, datetime.min.time())),
                                      latest):
            requests.append(dg.RunRequest(
                run_key=f"{name}:{key}:{latest.isoformat()}",
                partition_key=key,
                asset_selection=[asset_key_for(name)],
                tags={"sonora/trigger": "salesforce_changes", "sonora/object": name},
            ))
        new_objects[name] = latest.isoformat()
    if len(requests) > MAX_RUNS_PER_TICK:
        context.log.warning(f"{len(requests)} windows changed; requesting them all (consider a backfill)")
    new_cursor = json.dumps({"objects": new_objects})
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("No changes in the org since the last tick."),
                               cursor=new_cursor)
    return dg.SensorResult(run_requests=requests, cursor=new_cursor)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[salesforce_changes])
