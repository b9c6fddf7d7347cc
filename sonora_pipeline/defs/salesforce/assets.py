"""One asset per Salesforce object: `salesforce/<table>`, partitioned by daily sync window.

Materializing a partition reads that window of `SystemModstamp` with queryAll (REST or Bulk API 2.0, by a
COUNT() probe) and upserts it by Id into `salesforce.<table>`; the first materialization of an object also
does its initial import. A single-run backfill reads its whole range in one pass.
"""


import warnings
from datetime import timedelta

import dagster as dg

from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, step_org
from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.org_sync import org_materialize_result, org_window, requested_range
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.mirror.names import RAW_SCHEMA, table_name_for
from sonora_pipeline.mirror.state import ObjectState
from sonora_pipeline.mirror.tables import column_docs
from sonora_pipeline.salesforce.describe import ObjectSchema
from sonora_pipeline.salesforce.errors import SalesforceError
from sonora_pipeline.settings import (
    Settings,
    SyncSettings,
    model_required_fields,
    parse_initial_import,
)
from sonora_pipeline.sync.engine import SyncResult, current_state, sync_object

DESCRIPTIONS = {
    "Account": "Salesforce Accounts: each becomes a Sonora customer (external id = Account Id).",
    "Contact": "Salesforce Contacts: the people graph (account, title, email, reports-to).",
    "Opportunity": "Salesforce Opportunities: stage, amount, close date, owner.",
    "Case": "Salesforce Cases: subject, status, priority, owner.",
    "CaseComment": "Salesforce Case Comments.",
    "Task": "Salesforce Tasks (archived ones included): touchpoints and engagement signals.",
    "Event": "Salesforce Events (archived ones included): meetings and engagement signals.",
    "User": "Salesforce Users: the owners' names and emails (deactivated users included; User has no "
            "IsDeleted, its mirror column stays false).",
}


# How fresh a mirror table is expected to be, shown on each object asset: a warning after 26 h without a sync
# (the daily schedule missed a day, or the change sensor saw no change: a quiet object looks the same), a
# failure after 7 days (a week without one change of an object the org uses: more likely a stopped sync).
# In code, not in the settings: Dagster reads a policy when the definitions load, like any structure.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=7), warn_window=timedelta(hours=26))
FRESHNESS_TEXT = ("Synced by the change sensor (when the object changes) or the 00:30 UTC schedule (daily). "
                  "Freshness: warned after 26 h without a sync, failing after 7 days; the customer model is "
                  "only as fresh as the mirror.")


class SyncConfig(dg.Config):
    initial_import: str = ""  # override sync.initial_import (all | active | since:YYYY-MM-DD) for this run
    redo_initial_import: bool = False  # re-run the initial import even if it was done


def asset_key_for(object_name: str) -> dg.AssetKey:
    return dg.AssetKey([RAW_SCHEMA, table_name_for(object_name)])


def column_schema(schema: ObjectSchema) -> dg.TableSchema:
    """The mirror table's columns with the same text as their DuckDB comments (one source: column_docs),
    our own bookkeeping columns included."""
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.comment) for c in column_docs(schema)])


def sync_kind(result: SyncResult, keys: dg.PartitionKeyRange) -> str:
    """initial (the object's first import, or a redo), backfill (a range of windows in one run), incremental."""
    if result.initial_import:
        return "initial"
    return "backfill" if keys.start != keys.end else "incremental"


def what_it_covers(result: SyncResult, kind: str, keys: dg.PartitionKeyRange) -> str:
    """One sentence for the materialization: the SystemModstamp range the run read, in the terms of the
    partitions the UI shows (an initial import covers far more than the partition(s) it is marked on)."""
    marked = keys.start if keys.start == keys.end else f"{keys.start} .. {keys.end}"
    meta = result.metadata()
    if kind != "initial":
        what = "Windows" if kind == "backfill" else "Window"
        return f"{what} {marked}: SystemModstamp from {meta['read_from']} to {meta['read_to']}."
    mode = result.initial_import or ""
    initial = next((r for r in result.reads if r.kind == "initial"), None)
    oldest = f" (the oldest read: {initial.oldest_modstamp.isoformat()}Z)" if initial and initial.oldest_modstamp else ""
    scope = "every active record" if mode == "active" else "every record"
    span = (f"from {initial.read_from.isoformat()}Z to" if initial and initial.read_from else "before")
    text = (f"Initial import ({mode}): {scope} of {result.object_name} with SystemModstamp {span} "
            f"{meta['read_to']}{oldest}, then window {keys.end}.")
    if mode == "all":
        text += (f" The table holds every sync window from {sync_window.get_first_partition_key()} to {keys.end} "
                 "and the history before them")
        if keys.start != sync_window.get_first_partition_key():
            text += (f"; partition status marks only {marked} as materialized, the earlier windows' rows are in "
                     "the table all the same (no backfill needed)")
        text += "."
    else:
        text += (f" Records outside initial_import {mode} are not in the table (re-run with redo_initial_import "
                 "and initial_import all to read them).")
    return text


def _materialize_result(result: SyncResult, keys: dg.PartitionKeyRange) -> dg.MaterializeResult:
    """`dagster/row_count` is the table's size after the commit (Dagster: "the number of rows in the table"),
    and the run's own counts say what they count. No `dagster/partition_row_count`: a mirror table is not
    split by window (a row moves to a later window each time it changes), and what a run reads is not a
    partition's rows (the overlap re-reads, an initial import reads the whole history)."""
    kind = sync_kind(result, keys)
    metadata = {"sonora/sync_kind": kind, "sonora/covers": what_it_covers(result, kind, keys)}
    metadata.update({f"sonora/{k}": v for k, v in result.metadata().items()})
    metadata.update({
        "dagster/table_name": f"{RAW_SCHEMA}.{table_name_for(result.object_name)}",
        "dagster/row_count": result.rows_in_table,
    })
    if result.schema is not None:
        metadata["dagster/column_schema"] = column_schema(result.schema)
    if result.initial_import:
        metadata["sonora/initial_import"] = result.initial_import
    return dg.MaterializeResult(metadata=metadata)


def _window_to_read(context: dg.AssetExecutionContext, warehouse: WarehouseResource, object_name: str,
                    redo_initial: bool) -> tuple[dg.TimeWindow, str]:
    """The window a run reads on top of any initial import, and its first partition key.

    A run that does the object's initial import over a range of windows (the CLI's first sync covers
    `partitions_start`..today, so partition status shows every window it stands for as materialized) reads
    only the range's last window on top: the import already covers the earlier ones, in its mode, and
    re-reading every row modified since `partitions_start` would double its cost."""
    keys = context.partition_key_range
    if keys.start != keys.end and (
            redo_initial or current_state(warehouse.db_path(), object_name).initial_import is None):
        return sync_window.time_window_for_partition_key(keys.end), keys.end
    return context.partition_time_window, keys.start


def _asset_decorator(object_name: str):
    """`@dg.asset` for one object, partitioned by sync window (one org) or by org (a registry: see
    `defs/orgs.py`; one run per org, which the run queue's per-org limit counts, and no writer pool, since each
    org has a DuckDB file of its own). `backfill_policy` is a Beta parameter in Dagster 1.13: it warns once per
    asset (a BetaWarning per object at import, eight in a test run), and nobody can act on that. The single-run
    policy is what the project relies on (a range of windows read in one pass), so the one warning is
    silenced here, where it is raised, and nowhere else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(
            key=asset_key_for(object_name),
            group_name="salesforce",
            kinds={"salesforce", "duckdb"},
            partitions_def=ORG_PARTITIONS if MULTI_ORG else sync_window,
            backfill_policy=dg.BackfillPolicy.multi_run(1) if MULTI_ORG else dg.BackfillPolicy.single_run(),
            freshness_policy=FRESHNESS,
            pool=None if MULTI_ORG else DUCKDB_WRITER,
            description=DESCRIPTIONS.get(object_name, f"Salesforce custom object {object_name}."),
            metadata={"dagster/table_name": f"{RAW_SCHEMA}.{table_name_for(object_name)}",
                      "sonora/salesforce_object": object_name, "sonora/freshness": FRESHNESS_TEXT},
            tags={"sonora/object": object_name},
        )


def sync_settings(settings: Settings) -> SyncSettings:
    """The sync's settings for a run: the sync must be able to read every field the customer model uses
    (mapping, filters, contract rules), so those are required fields too."""
    return settings.sync.model_copy(update={"required_fields": model_required_fields(settings)})


def build_object_asset(object_name: str) -> dg.AssetsDefinition:
    if MULTI_ORG:
        return build_org_object_asset(object_name)

    @_asset_decorator(object_name)
    def _object_asset(context: dg.AssetExecutionContext, config: SyncConfig, salesforce: SalesforceResource,
                      warehouse: WarehouseResource, settings: SettingsResource) -> dg.MaterializeResult:
        effective = sync_settings(settings.for_run())
        if config.initial_import:
            try:
                effective = effective.model_copy(update={"initial_import": parse_initial_import(config.initial_import)})
            except ValueError as err:
                raise dg.Failure(description=f"Run config initial_import {err}") from None
        window, first_key = _window_to_read(context, warehouse, object_name, config.redo_initial_import)
        try:
            result = sync_object(
                salesforce.client(context.log), warehouse.db_path(), object_name, effective,
                window=(window.start, window.end), partition_key=first_key,
                run_id=context.run.run_id, log=context.log, force_initial=config.redo_initial_import)
        except SalesforceError as err:
            raise dg.Failure(description=str(err)) from None
        context.log.info(
            f"{object_name}: {result.rows_read:,} rows read, {result.rows_upserted:,} inserted or updated, "
            f"{result.deletes:,} newly marked deleted; {result.rows_in_table:,} rows in the table; "
            f"{result.api_calls} API calls via {result.method} in {result.seconds:.1f} s")
        return _materialize_result(result, context.partition_key_range)

    return _object_asset


def build_org_object_asset(object_name: str) -> dg.AssetsDefinition:
    """The object's asset with a registry: the run's partition is the org. It reads from the org's committed
    cursor (less the overlap) to now, or the date range its run's tags ask for (a re-run after a mapping
    change); the first run for an org does its initial import. An object that the org's own settings do not
    sync is left alone (reported, not failed)."""

    @_asset_decorator(object_name)
    def _org_object_asset(context: dg.AssetExecutionContext, config: SyncConfig, salesforce: SalesforceResource,
                          warehouse: WarehouseResource, settings: SettingsResource) -> dg.MaterializeResult:
        org = step_org(context)
        current = settings.for_run(org)
        if object_name not in current.sync.objects:
            context.log.info(f"{object_name}: not in org {org}'s sync.objects; nothing read or written")
            return dg.MaterializeResult(metadata={"sonora/sync_kind": "not synced", "sonora/org": org,
                                                  "sonora/covers": f"Org {org} does not sync {object_name} "
                                                                   "(its settings' sync.objects)."})
        effective = sync_settings(current)
        if config.initial_import:
            try:
                effective = effective.model_copy(update={"initial_import": parse_initial_import(config.initial_import)})
            except ValueError as err:
                raise dg.Failure(description=f"Run config initial_import {err}") from None
        db_path = warehouse.db_path(org)
        requested_range(context.run.tags)  # bad run tags are refused before any call to the org
        chosen: list[tuple | None] = [None]

        def window_from(state: ObjectState) -> tuple | None:
            chosen[0] = org_window(context.run.tags, state)
            return chosen[0]

        try:
            result = sync_object(
                salesforce.client(context.log, org=org), db_path, object_name, effective, window=window_from,
                partition_key=org, run_id=context.run.run_id, log=context.log,
                force_initial=config.redo_initial_import)
        except SalesforceError as err:
            text = str(err)
            raise dg.Failure(description=text if f"'{org}'" in text else f"Org {org}: {text}") from None
        context.log.info(
            f"{org} {object_name}: {result.rows_read:,} rows read, {result.rows_upserted:,} inserted or updated, "
            f"{result.deletes:,} newly marked deleted; {result.rows_in_table:,} rows in the table; "
            f"{result.api_calls} API calls via {result.method} in {result.seconds:.1f} s")
        return org_materialize_result(result, org, chosen[0], column_schema)

    return _org_object_asset


OBJECT_ASSETS = [build_object_asset(name) for name in SETTINGS.sync.objects]  # structure: read at load


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=OBJECT_ASSETS)
