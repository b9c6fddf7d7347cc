"""The named job every Salesforce sync runs as: the change sensor's runs, the schedule's, the CLI's
(`sonora-pipeline sync`, `demo`) and a backfill launched from the UI all show `salesforce_sync_job` in the
run list, instead of Dagster's `__anonymous_asset_job_…` / `__ephemeral_asset_job__`.

Its own module because both the sensor (sensors.py) and the schedule (jobs.py, which imports the sensor's
`automation_status`) target it."""

import dagster as dg

from sonora_pipeline.defs.orgs import MULTI_ORG

SYNC_JOB_NAME = "salesforce_sync_job"

# With a registry, a run is one org's: its objects, then its customer model (the change sensor selects the
# changed objects and the model); without, one window's objects, and the model's automation follows.
salesforce_sync_job = dg.define_asset_job(
    name=SYNC_JOB_NAME,
    selection=(dg.AssetSelection.groups("salesforce", "customer_model") if MULTI_ORG
               else dg.AssetSelection.groups("salesforce")),  # partitioned like the assets it selects
    description=("Sync one org's Salesforce objects (its initial import the first time), then rebuild its "
                 "customer model. A run may select a subset of the objects." if MULTI_ORG else
                 "Sync Salesforce objects for one window or a range of windows (the object's initial import "
                 "included the first time). A run may select a subset of the objects."),
)
