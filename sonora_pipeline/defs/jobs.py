"""Jobs and schedules, for teams that prefer a fixed cadence to the change sensor."""

from datetime import UTC, timedelta

import dagster as dg
from pydantic import Field

from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, per_org_requests, step_org
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.sensors import automation_status
from sonora_pipeline.defs.salesforce.sync_job import salesforce_sync_job
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource, synced_objects
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
                   "naming it (the other objects are reconciled).", pool=None if MULTI_ORG else DUCKDB_WRITER)
def reconcile_deleted_ids(context: dg.OpExecutionContext, config: ReconcileConfig, salesforce: SalesforceResource,
                          warehouse: WarehouseResource, settings: SettingsResource) -> None:
    org = step_org(context)
    current = settings.for_run(org)
    share = config.max_purge_share
    if share is None:
        share = current.sync.max_purge_share
    try:
        client = salesforce.client(context.log, org=org)
    except SalesforceError as err:
        raise dg.Failure(description=str(err)) from None
    total = 0
    refused: list[TooManyPurges] = []
    for name in synced_objects(org):
        try:
            total += reconcile_ids(client, warehouse.db_path(org), name, run_id=context.run.run_id, log=context.log,
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


@dg.job(description="Mark hard-deleted and purged records in the mirror (one Bulk job per object).",
        partitions_def=ORG_PARTITIONS if MULTI_ORG else None)
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
    begun. The closed day is the one before the tick's own date. With a registry: one run per org, each
    from its own committed cursor (the run queue spreads them under the per-org and global limits)."""
    closed = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
    if MULTI_ORG:
        return per_org_requests(context, closed.isoformat(), {"sonora/trigger": "salesforce_sync_schedule"})
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
    @dg.schedule(name="salesforce_reconcile_schedule", job=salesforce_reconcile_job, cron_schedule="15 3 * * *",
                 execution_timezone="UTC", default_status=_schedule_status(),
                 description="Daily Id reconciliation for hard deletes and purges (with a registry: one run per org).")
    def reconcile_schedule(context: dg.ScheduleEvaluationContext):
        if MULTI_ORG:
            day = context.scheduled_execution_time.astimezone(UTC).date().isoformat()
            return per_org_requests(context, f"reconcile:{day}", {"sonora/trigger": "salesforce_reconcile_schedule"})
        return dg.RunRequest()

    return dg.Definitions(jobs=[salesforce_sync_job, org_inventory_job, salesforce_reconcile_job],
                          schedules=[salesforce_sync_schedule, reconcile_schedule])
