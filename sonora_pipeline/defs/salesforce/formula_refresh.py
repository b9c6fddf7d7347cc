"""Formula freshness in Dagster: a job and a daily schedule that refresh the mirror's formula columns.

Formula values change without SystemModstamp moving (a parent's field, TODAY()), so the change sensor and
the sync windows never see them. The job reads Id + formula fields of each object that has formulas (one
Bulk job each) and updates only those columns; the sync cursor does not move. Its cost in API calls is
the run's output metadata and an observation of each object's asset.
"""

from datetime import UTC

import dagster as dg

from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, per_org_requests, step_org
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.assets import asset_key_for
from sonora_pipeline.defs.salesforce.sensors import automation_status
from sonora_pipeline.defs.settings import synced_objects
from sonora_pipeline.salesforce.errors import SalesforceError
from sonora_pipeline.sync.formulas import refresh_formulas


@dg.op(description="Re-read the formula fields of every mirrored object that has them (one Bulk job per "
                   "object) and update those columns only; the sync cursor does not move.",
       out=dg.Out(dg.Nothing), pool=None if MULTI_ORG else DUCKDB_WRITER)
def refresh_formula_fields(context: dg.OpExecutionContext, salesforce: SalesforceResource,
                           warehouse: WarehouseResource):
    org = step_org(context)
    client = salesforce.client(context.log, org=org)
    refreshed = []
    for name in synced_objects(org):
        try:
            result = refresh_formulas(client, warehouse.db_path(org), name, run_id=context.run.run_id,
                                      log=context.log)
        except SalesforceError as err:
            raise dg.Failure(description=str(err)) from None
        refreshed.append(result)
        yield dg.AssetObservation(asset_key=asset_key_for(name),
                                  metadata={f"sonora/formula_refresh/{k}": v for k, v in result.metadata().items()})
    with_formulas = [r for r in refreshed if r.formula_fields]
    rows_read = sum(r.rows_read for r in with_formulas)
    metadata = {
        "api_calls": client.api_calls,
        "objects_with_formulas": ", ".join(r.object_name for r in with_formulas) or "none",
        "formula_fields": sum(len(r.formula_fields) for r in with_formulas),
        "rows_read": rows_read,
        "rows_changed": sum(r.rows_changed for r in with_formulas),
        "api_calls_per_100k_records": round(client.api_calls * 100_000 / rows_read, 1) if rows_read else 0,
    }
    context.log.info(f"Formula refresh: {metadata['rows_changed']:,} rows changed of {rows_read:,} read in "
                     f"{len(with_formulas)} object(s), {client.api_calls} API calls")
    yield dg.Output(None, metadata=metadata)


@dg.job(description="Refresh formula fields in the mirror (their values change without SystemModstamp moving).",
        tags={"sonora/kind": "formula_refresh"}, partitions_def=ORG_PARTITIONS if MULTI_ORG else None)
def salesforce_formula_refresh_job() -> None:
    refresh_formula_fields()


def _schedule_status() -> dg.DefaultScheduleStatus:
    running = automation_status() == dg.DefaultSensorStatus.RUNNING
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


@dg.schedule(name="salesforce_formula_refresh_schedule", job=salesforce_formula_refresh_job,
             cron_schedule="45 0 * * *", execution_timezone="UTC", default_status=_schedule_status(),
             description="Daily formula refresh at 00:45 UTC, after the day has turned (TODAY() formulas move "
                         "then); with a registry, one run per org.")
def salesforce_formula_refresh_schedule(context: dg.ScheduleEvaluationContext):
    if MULTI_ORG:
        day = context.scheduled_execution_time.astimezone(UTC).date().isoformat()
        return per_org_requests(context, f"formulas:{day}", {"sonora/trigger": "salesforce_formula_refresh_schedule"})
    return dg.RunRequest()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[salesforce_formula_refresh_job], schedules=[salesforce_formula_refresh_schedule])
