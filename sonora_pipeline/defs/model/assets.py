"""The customer model as assets (group `customer_model`): one DuckDB table each in schema `sonora`,
rebuilt from the mirror whenever the objects it reads change, with checks that keep it trustworthy."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg
import duckdb

from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, step_org
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import WarehouseResource
from sonora_pipeline.defs.salesforce.assets import asset_key_for
from sonora_pipeline.defs.salesforce.sensors import automation_status, tick_seconds
from sonora_pipeline.defs.settings import SETTINGS, SettingsResource
from sonora_pipeline.mirror.names import object_for_table
from sonora_pipeline.mirror.warehouse import write_connection
from sonora_pipeline.model.build import SPECS, MirrorMissing, build_table
from sonora_pipeline.model.docs import TABLES, describe_columns
from sonora_pipeline.model.statements import MODEL_SCHEMA
from sonora_pipeline.settings import STANDARD_OBJECTS, Settings, SettingsError


class InputsNewerThanLastBuild(dg.AutomationCondition):
    """True while an input of the table (a Salesforce object's sync or an upstream model table) was
    materialized, by another run, after the table's last build attempt started (or the table was never built
    on this instance).

    Why a condition of our own, evaluated by Dagster's automation sensor: `eager()` clears its trigger (a
    dep updated) with `since_last_handled`, whose "handled" includes the table's own `newly_updated`. A sync
    that commits while a model run is in flight (the automation and the change sensor tick in the same
    second, so `any_deps_in_progress` does not see the run just launched) is cleared by that run's
    completion, although the run read the mirror before the commit: at rest the model stays behind. Built-in
    `since` compositions keep the same weakness (`and`/`or` drop the timing `since` uses to order a trigger
    and a reset seen on one tick), and in a daemon run a trigger seen while the table was blocked was lost.
    Comparing times is stateless: each tick asks again, so nothing can be forgotten. A failed attempt is not
    retried until a newer input arrives (a broken build does not loop every tick)."""

    @property
    def description(self) -> str:
        return "an input was materialized after the last build attempt started"

    @property
    def name(self) -> str:
        return "inputs_newer_than_last_build"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        instance = context.asset_graph_view.instance
        attempt = instance.get_latest_planned_materialization_info(context.key)
        started, attempt_run = None, None
        if attempt is not None:
            attempt_run = attempt.run_id
            record = instance.get_run_record_by_id(attempt.run_id)
            if record is not None:
                started = record.start_time or record.create_timestamp.timestamp()
        newer = False
        for dep in context.asset_graph.get(context.key).parent_keys:
            event = instance.get_latest_materialization_event(dep)
            if event is not None and event.run_id != attempt_run and (started is None or event.timestamp > started):
                newer = True
                break
        return dg.AutomationResult(context, true_subset=context.candidate_subset if newer
                                   else context.get_empty_subset())


def rebuild_after_sync() -> dg.AutomationCondition:
    """Rebuild a table once no input and no run of it is in progress and an input is newer than its last
    build attempt; a table whose upstream model table is requested joins that run (one run per tick)."""
    upstream_requested = (dg.AutomationCondition.any_deps_match(dg.AutomationCondition.will_be_requested())
                          .allow(dg.AssetSelection.groups("customer_model"))
                          .with_label("an upstream model table is requested"))
    return (
        (InputsNewerThanLastBuild() | upstream_requested)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("rebuild_after_sync")


AUTOMATION = rebuild_after_sync()


def model_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([MODEL_SCHEMA, table])


def _today() -> date:
    return datetime.now(UTC).date()


def definition_column_schema(table: str) -> dg.TableSchema:
    """The columns the table is built with under the settings loaded with the definitions, described as in
    DuckDB (mapped fields by API name: their Salesforce label is only known from the mirror). Each build's own
    materialization carries the columns it actually built, under the settings of its run."""
    return dg.TableSchema(columns=[dg.TableColumn(name, description=text)
                                   for name, text in describe_columns(table, SETTINGS).items()])


def _column_schema(conn, table: str) -> dg.TableSchema:
    """The built table's columns, types and DuckDB comments (the comments the build just wrote)."""
    rows = conn.execute("SELECT column_name, data_type, comment FROM duckdb_columns() WHERE schema_name = ? "
                        "AND table_name = ? ORDER BY column_index", [MODEL_SCHEMA, table]).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(n, t, description=c or "") for n, t, c in rows])


def build_model_asset(table: str) -> dg.AssetsDefinition:
    spec = SPECS[table]
    # Optional inputs (User, for owner names) are deps only when the settings sync them.
    optional = [t for t in spec.optional if object_for_table(t, SETTINGS.sync.objects)]
    deps = ([asset_key_for(object_for_table(t, STANDARD_OBJECTS)) for t in (*spec.needs, *optional)]
            + [model_key(t) for t in spec.after])

    @dg.asset(
        key=model_key(table),
        group_name="customer_model",
        kinds={"duckdb"},
        deps=deps,
        description=TABLES.get(table, ""),
        metadata={"dagster/table_name": f"{MODEL_SCHEMA}.{table}",
                  "dagster/column_schema": definition_column_schema(table)},
        # With a registry: one model per org (its partition), built in the org's sync run (the change sensor
        # selects it after the objects), so no automation and no writer pool (each org has its own file).
        automation_condition=None if MULTI_ORG else AUTOMATION,
        pool=None if MULTI_ORG else DUCKDB_WRITER,
        partitions_def=ORG_PARTITIONS if MULTI_ORG else None,
        backfill_policy=dg.BackfillPolicy.multi_run(1) if MULTI_ORG else None,
        check_specs=[dg.AssetCheckSpec(c.name, asset=model_key(table), description=c.description,
                                       blocking=c.blocking) for c in MODEL_CHECKS.get(table, [])],
    )
    def _model_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                     settings: SettingsResource) -> dg.MaterializeResult:
        org = step_org(context)
        current = settings.for_run(org)
        try:
            with write_connection(warehouse.db_path(org)) as conn:
                rows = build_table(conn, table, current, _today())
                schema = _column_schema(conn, table)
                checks = [check.evaluate(conn, current) for check in MODEL_CHECKS.get(table, [])]
        except (SettingsError, MirrorMissing) as err:
            raise dg.Failure(description=str(err)) from None
        context.log.info(f"sonora.{table}: {rows:,} rows")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": rows, "dagster/table_name": f"{MODEL_SCHEMA}.{table}", "dagster/column_schema": schema,
        }, check_results=checks)

    return _model_asset


@dataclass(frozen=True)
class ModelCheck:
    """A check of a model table, run in the table's own build step on the connection that built it: a step
    of its own cost a Dagster step and another opening of the DuckDB file for one query."""

    name: str
    description: str
    evaluate: Callable[[duckdb.DuckDBPyConnection, Settings], dg.AssetCheckResult]
    blocking: bool = False


def _customer_ids_unique(conn: duckdb.DuckDBPyConnection, _: Settings) -> dg.AssetCheckResult:
    total, distinct = conn.execute(
        f"SELECT count(*), count(DISTINCT external_id) FROM {MODEL_SCHEMA}.customers").fetchone()
    return dg.AssetCheckResult(check_name="customer_ids_unique", passed=total == distinct,
                               metadata={"rows": total, "duplicates": total - distinct})


def _links_check(table: str) -> ModelCheck:
    def evaluate(conn: duckdb.DuckDBPyConnection, _: Settings) -> dg.AssetCheckResult:
        dangling, flagged, total = conn.execute(f"""
            SELECT count(*) FILTER (WHERE t.customer_id IS NOT NULL AND c.external_id IS NULL),
                   count(*) FILTER (WHERE NOT t.has_customer), count(*)
            FROM {MODEL_SCHEMA}.{table} t LEFT JOIN {MODEL_SCHEMA}.customers c ON c.external_id = t.customer_id"""
                                             ).fetchone()
        return dg.AssetCheckResult(check_name=f"{table}_point_at_customers", passed=dangling == 0, metadata={
            "rows": total, "dangling": dangling, "flagged_without_customer": flagged})

    return ModelCheck(f"{table}_point_at_customers",
                      f"Every row of sonora.{table} points at an existing customer, or is flagged "
                      "(has_customer = false).", evaluate)


def _health_scores_in_range(conn: duckdb.DuckDBPyConnection, settings: Settings) -> dg.AssetCheckResult:
    bands = settings.health.bands
    bad = conn.execute(f"""
        SELECT count(*) FROM {MODEL_SCHEMA}.health_scores WHERE
            (score IS NOT NULL AND (score < 0 OR score > 100))
            OR greatest(coalesce(engagement, 0), coalesce(support, 0), coalesce(commercial, 0), coalesce(sentiment, 0)) > 100
            OR least(coalesce(engagement, 0), coalesce(support, 0), coalesce(commercial, 0), coalesce(sentiment, 0)) < 0
            OR (score >= ? AND band != 'green') OR (score < ? AND band != 'red')""",
                       [bands.green, bands.yellow]).fetchone()[0]
    return dg.AssetCheckResult(check_name="health_scores_in_range", passed=bad == 0, metadata={"out_of_range": bad})


def _ecsat_in_range(conn: duckdb.DuckDBPyConnection, _: Settings) -> dg.AssetCheckResult:
    bad = conn.execute(f"SELECT count(*) FROM {MODEL_SCHEMA}.ecsat WHERE ecsat < 0 OR ecsat > 100").fetchone()[0]
    return dg.AssetCheckResult(check_name="ecsat_in_range", passed=bad == 0, metadata={"out_of_range": bad})


MODEL_CHECKS: dict[str, list[ModelCheck]] = {
    "customers": [ModelCheck("customer_ids_unique", "Every customer appears once (external_id = Account Id is "
                             "unique).", _customer_ids_unique, blocking=True)],
    "people": [_links_check("people")],
    "touchpoints": [_links_check("touchpoints")],
    "health_scores": [ModelCheck("health_scores_in_range", "Scores and their measures are within 0-100 and bands "
                                 "agree with the settings' thresholds.", _health_scores_in_range)],
    "ecsat": [ModelCheck("ecsat_in_range", "eCSAT is within 0-100.", _ecsat_in_range)],
}


MODEL_ASSETS = [build_model_asset(t) for t in SPECS]

customer_model_job = dg.define_asset_job("customer_model_job", selection=dg.AssetSelection.groups("customer_model"),
                                         description="Rebuild the customer model from the mirror (no Salesforce calls).")


# Dagster's own automation sensor starts stopped, whatever SONORA_AUTOMATION says; this one follows it, so the
# model's automation conditions are evaluated (and the model rebuilt after syncs) exactly when the sync sensor runs.
# `use_user_code_server` is a Beta parameter (Dagster 1.13) that the custom condition needs: its BetaWarning,
# which no user can act on, is silenced here, where it is raised, and nowhere else.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    customer_model_automation = dg.AutomationConditionSensorDefinition(
        "customer_model_automation", target=dg.AssetSelection.groups("customer_model"),
        default_status=automation_status(), minimum_interval_seconds=tick_seconds(),
        use_user_code_server=True,  # the model's condition is Python of ours (InputsNewerThanLastBuild)
        description="Rebuilds customer-model tables after the syncs of the objects they read have committed, "
                    "until no commit is newer than the last rebuild's start.")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=MODEL_ASSETS, jobs=[customer_model_job],
                          sensors=[] if MULTI_ORG else [customer_model_automation])
