"""Jobs and schedules, for teams that prefer a fixed cadence to the change sensor."""

from datetime import UTC, timedelta

import dagster as dg
from pydantic import Field

from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.sensors import automation_status
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.salesforce.errors import SalesforceError, TooManyPurges
from sonora_pipeline.sync.engine import reconcile_ids

org_inventory_job = dg.define_asset_job(
    name="org_inventory_job",
    selection=dg.AssetSelection.groups("salesforce_meta"),
    description="Count what the connected org holds, as the run-as user sees it.",
)


class ReconcileConfig(dg.Config):
    """One run's override of the purge safety valve."""

    max_purge_share: float | None = Field(
        default=None, gt=0, le=1,
        description="For this run only: the largest share of an object's live rows that may be marked purged "
                    "(1.0 = no limit); empty = sync.max_purge_share from the settings.")


@dg.op(description="Find records that are gone from Salesforce (hard deletes, purged recycle bin) with one "
                   "Id-only Bulk query per object, and mark them in the mirror. An object where more than "
                   "sync.max_purge_share of the live rows would be marked is left as it is, and the run fails "
                   "naming it (the other objects are reconciled).", pool=DUCKDB_WRITER)
def reconcile_deleted_ids(context: dg.OpExecutionContext, config: ReconcileConfig, salesforce: SalesforceResource,
                          warehouse: WarehouseResource, settings: SettingsResource) -> None:
    share = config.max_purge_share
    if share is None:
        share = settings.for_run().sync.max_purge_share
    try:
        client = salesforce.client(context.log)
    except SalesforceError as err:
        raise dg.Failure(description=str(err)) from None
    total = 0
    refused: list[TooManyPurges] = []
    for name in SETTINGS.sync.objects:
        try:
            total += reconcile_ids(client, warehouse.db_path(), name, run_id=context.run.run_id, log=context.log,
                                   max_purge_share=share)
        except TooManyPurges as err:
            context.log.error(str(err))
            refused.append(err)
        except SalesforceError as err:
            raise dg.Failure(description=str(err)) from None
    context.log.info(f"Reconciliation done: {total:,} records marked purged, {client.api_calls} API calls")
    if refused:
        raise dg.Failure(description="\n".join(str(err) for err in refused), metadata={
            "refused_objects": ", ".join(err.object_name for err in refused), "records_marked_purged": total})


@dg.job(description="Mark hard-deleted and purged records in the mirror (one Bulk job per object).")
def salesforce_reconcile_job() -> None:
    reconcile_deleted_ids()


@dg.schedule(
    name="salesforce_sync_schedule", job=salesforce_sync_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="At 00:30 UTC, materializes the window of the day that has just closed (yesterday, UTC), every "
                "object in one run. Use it instead of the salesforce_changes sensor for a fixed cadence.")
def salesforce_sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Why not `build_schedule_from_partitioned_job`: the windows include today (end_offset=1, so the sensor
    can keep today current), and that helper requests the newest partition, i.e. the day that has just
    begun. The closed day is the one before the tick's own date."""
    closed = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
    if closed < SETTINGS.sync.partitions_start:
        return dg.SkipReason(f"The day that closed ({closed}) is before sync.partitions_start "
                             f"({SETTINGS.sync.partitions_start}): no window to sync.")
    closed = closed.isoformat()
    return dg.RunRequest(run_key=closed, partition_key=closed, tags={"sonora/trigger": "salesforce_sync_schedule"})


def _schedule_status() -> dg.DefaultScheduleStatus:
    running = automation_status() == dg.DefaultSensorStatus.RUNNING
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


@dg.definitions
def defs() -> dg.Definitions:
    reconcile_schedule = dg.ScheduleDefinition(
        name="salesforce_reconcile_schedule", job=salesforce_reconcile_job, cron_schedule="15 3 * * *",
        execution_timezone="UTC", default_status=_schedule_status(),
        description="Daily Id reconciliation for hard deletes and purges.")
    return dg.Definitions(jobs=[salesforce_sync_job, org_inventory_job, salesforce_reconcile_job],
                          schedules=[salesforce_sync_schedule, reconcile_schedule])
