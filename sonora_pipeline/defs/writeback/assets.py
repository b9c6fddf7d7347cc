"""The write-back asset (group `writeback`): pushes health scores, eCSAT and chosen model columns to Account
fields. Opt-in (`writeback.enabled`), with a dry run; no automation condition and no sensor, because it has
side effects in the customer's org: it runs only when someone (or a job they schedule) launches it."""



import dagster as dg
from pydantic import Field

from sonora_pipeline.defs.model.assets import model_key
from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, step_org
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.salesforce.errors import SalesforceError
from sonora_pipeline.settings import SettingsError
from sonora_pipeline.writeback.push import run_writeback
from sonora_pipeline.writeback.report import changes_table

WRITEBACK_KEY = dg.AssetKey(["writeback", "account_scores"])


class WritebackConfig(dg.Config):
    dry_run: bool | None = Field(default=None, description="true: report what would be written and write "
                                                            "nothing; empty: the settings' writeback.dry_run")


def _deps() -> list[dg.AssetKey]:
    """Which model tables the mappings read: structure, so taken from the file at load (a new mapped table
    shows as a dependency after a reload; the run itself reads the mappings as they are now)."""
    tables = ["health_scores", "ecsat"] + [m.table for m in SETTINGS.writeback.mappings]
    return [model_key(t) for t in dict.fromkeys(tables)]


@dg.asset(
    key=WRITEBACK_KEY,
    group_name="writeback",
    kinds={"salesforce"},
    pool=None if MULTI_ORG else DUCKDB_WRITER,  # it commits its ledger to the warehouse (an org's own file)
    partitions_def=ORG_PARTITIONS if MULTI_ORG else None,
    backfill_policy=dg.BackfillPolicy.multi_run(1) if MULTI_ORG else None,
    deps=_deps(),
    description="Pushes model values (health score, eCSAT, band, ...) that changed since the last push to Account "
                "fields in Salesforce (writeback.mappings). Off unless writeback.enabled; dry_run reports "
                "without writing. Every attempt is in sonora.writeback_ledger.",
)
def account_scores(context: dg.AssetExecutionContext, config: WritebackConfig, salesforce: SalesforceResource,
                   warehouse: WarehouseResource, settings: SettingsResource) -> dg.MaterializeResult:
    org = step_org(context)
    try:
        report = run_writeback(lambda: salesforce.client(context.log, org=org), warehouse.db_path(org),
                               settings.for_run(org),
                               run_id=context.run.run_id, dry_run=config.dry_run, log=context.log)
    except (SettingsError, SalesforceError) as err:
        raise dg.Failure(description=str(err)) from None
    metadata: dict = dict(report.metadata())
    metadata["seconds"] = round(report.seconds, 2)
    if report.changes:
        metadata["changes"] = dg.MetadataValue.md(changes_table(report.changes))
    context.log.info(f"write-back: {report.status}, {dict(report.counts)}, {report.api_calls} API calls")
    return dg.MaterializeResult(metadata=metadata)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[account_scores])
