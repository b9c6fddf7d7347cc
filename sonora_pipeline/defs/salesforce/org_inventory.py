"""What the connected org holds: each synced object's record count and readable fields, as the run-as user
sees them — a cheap first look at an org (two API calls per object) before importing it."""


from datetime import UTC, datetime

import dagster as dg

from sonora_pipeline.defs.orgs import MULTI_ORG, ORG_PARTITIONS, step_org
from sonora_pipeline.defs.pools import DUCKDB_WRITER
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.settings import synced_objects
from sonora_pipeline.mirror.names import quote_literal
from sonora_pipeline.mirror.warehouse import write_connection
from sonora_pipeline.salesforce.errors import SalesforceError
from sonora_pipeline.sync.engine import connected_org

COLUMNS = {
    "object_name": "Salesforce object (API name) that Sonora syncs",
    "record_count": "Records the run-as user can see (SELECT COUNT(), deleted ones excluded)",
    "field_count": "Fields the run-as user can read (describe)",
    "custom_field_count": "Custom fields the run-as user can read (describe, custom = true)",
    "checked_at": "When the counts were taken (UTC)",
}
TABLE_COMMENT = ("Record and field counts of every object Sonora syncs, as the run-as user saw them when "
                 "org_inventory last ran: a first look at an org before importing it")


@dg.asset(
    key=["salesforce", "org_inventory"],
    group_name="salesforce_meta",
    kinds={"salesforce", "duckdb"},
    pool=None if MULTI_ORG else DUCKDB_WRITER,
    partitions_def=ORG_PARTITIONS if MULTI_ORG else None,
    description="Record and field counts of every object Sonora syncs, as the run-as user sees them "
                "(table salesforce_meta.org_inventory).",
)
def org_inventory(context: dg.AssetExecutionContext, salesforce: SalesforceResource,
                  warehouse: WarehouseResource) -> dg.MaterializeResult:
    rows = []
    org = step_org(context)
    db_path = warehouse.db_path(org)
    try:
        client = salesforce.client(context.log, org=org)
        for name in synced_objects(org):
            fields = client.describe(name)["fields"]
            if not rows:
                connected_org(client, db_path, context.log)  # another org's counts: not here
            rows.append({
                "object_name": name,
                "record_count": client.count(f"SELECT COUNT() FROM {name}", include_deleted=False),
                "field_count": len(fields),
                "custom_field_count": sum(1 for f in fields if f["custom"]),
                "checked_at": datetime.now(UTC).replace(tzinfo=None),
            })
    except SalesforceError as err:
        raise dg.Failure(description=str(err)) from None
    import pandas as pd  # here, not at import: every run worker loads this module (pandas costs ~1.3 s)

    frame = pd.DataFrame(rows)
    with write_connection(db_path) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS salesforce_meta")
        conn.register("inventory", frame)
        conn.execute("CREATE OR REPLACE TABLE salesforce_meta.org_inventory AS SELECT * FROM inventory")
        conn.unregister("inventory")
        conn.execute(f"COMMENT ON TABLE salesforce_meta.org_inventory IS {quote_literal(TABLE_COMMENT)}")
        for column, text in COLUMNS.items():
            conn.execute(f"COMMENT ON COLUMN salesforce_meta.org_inventory.{column} IS {quote_literal(text)}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "dagster/table_name": "salesforce_meta.org_inventory",
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(n, description=t) for n, t in COLUMNS.items()]),
        "records_in_org": int(frame["record_count"].sum()),
        "api_calls": client.api_calls,
        "inventory": dg.MetadataValue.md(frame.drop(columns=["checked_at"]).to_markdown(index=False)),
    })
