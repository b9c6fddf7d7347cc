"""What the connected org holds: each synced object's record count and fields, as seen by the run-as
user. The first asset a newcomer materializes, and a cheap proof that connection and warehouse work."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from sonora_pipeline.defs.resources import SalesforceResource

SYNCED_OBJECTS = ["Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event"]


@dg.asset(
    key=["salesforce", "org_inventory"],
    group_name="salesforce_meta",
    kinds={"salesforce", "duckdb"},
    description="Record and field counts of every object Sonora syncs, as the run-as user sees them.",
)
def org_inventory(salesforce: SalesforceResource, duckdb: DuckDBResource) -> dg.MaterializeResult:
    sf = salesforce.connection().client()
    rows = []
    for name in SYNCED_OBJECTS:
        fields = sf.restful(f"sobjects/{name}/describe")["fields"]
        count = sf.query(f"SELECT COUNT() FROM {name}")["totalSize"]
        rows.append({
            "object_name": name,
            "record_count": count,
            "field_count": len(fields),
            "custom_field_count": sum(1 for f in fields if f["custom"]),
            "checked_at": datetime.now(timezone.utc),
        })
    frame = pd.DataFrame(rows)
    with duckdb.get_connection() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS salesforce_meta")
        conn.register("inventory", frame)
        conn.execute("CREATE OR REPLACE TABLE salesforce_meta.org_inventory AS SELECT * FROM inventory")
        conn.unregister("inventory")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "records_in_org": int(frame["record_count"].sum()),
        "inventory": dg.MetadataValue.md(frame.drop(columns=["checked_at"]).to_markdown(index=False)),
    })
