"""Jobs and schedules, for teams that prefer a fixed cadence to the change sensor."""


from typing import Optional

import dagster as dg
from pydantic import Field

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.sensors import automation_status
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.salesforce.errors import SalesforceError, TooManyPurges
from sonora_pipeline.sync.engine import reconcile_ids

salesforce_sync_job = dg.define_asset_job(
    name="salesforce_sync_job",
    selection=dg.AssetSelection.groups("salesforce"),
    partitions_def=sync_window,
    description="Sync every Salesforce object for one window (initial import included the first time).",
)

org_inventory_job = dg.define_asset_job(
    name="org_inventory_job",
    selection=dg.AssetSelection.groups("salesforce_meta"),
    description="Count what the connected org holds, as the run-as user sees it.",
)


class ReconcileConfig(dg.Config):
    """One run's override of the purge safety valve."""

    max_purge_share: Optional[float] = Field(
        default=None, gt=0, le=1,
        description="For this run only: the largest share of an object's live rows that may be marked purged "
                    "(1.0 = no limit); empty = sync.max_purge_share from the settings.")


@dg.op(description="Find records that are gone from Salesforce (hard deletes, purged recycle bin) with one "
                   "Id-only Bulk query per object, and mark them in the mirror. An object where more than "
                   "sync.max_purge_share of the live rows would be marked is left as it is, and the run fails "
                   "naming it (the other objects are reconciled).")
def reconcile_deleted_ids(context: dg.OpExecutionContext, config: ReconcileConfig, salesforce: SalesforceResource,
                          warehouse: WarehouseResource) -> None:
    share = config.max_purge_share if config.max_purge_share is not None else SETTINGS.sync.max_purge_share
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


def _schedule_status() -> dg.DefaultScheduleStatus:
    running = automation_status() == dg.DefaultSensorStatus.RUNNING
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


@dg.definitions
def defs() -> dg.Definitions:
    sync_schedule = dg.build_schedule_from_partitioned_job(
        salesforce_sync_job, name="salesforce_sync_schedule", hour_of_day=0, minute_of_hour=30,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Materializes each day's window once it has closed (00:30 UTC). Use it instead of the "
                    "salesforce_changes sensor if you prefer a fixed cadence.")
    reconcile_schedule = dg.ScheduleDefinition(
        name="salesforce_reconcile_schedule", job=salesforce_reconcile_job, cron_schedule="15 3 * * *",
        execution_timezone="UTC", default_status=_schedule_status(),
        description="Daily Id reconciliation for hard deletes and purges.")
    return dg.Definitions(jobs=[salesforce_sync_job, org_inventory_job, salesforce_reconcile_job],
                          schedules=[sync_schedule, reconcile_schedule])
