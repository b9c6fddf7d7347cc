"""Jobs a person launches by name."""

import dagster as dg

main_job = dg.define_asset_job(
    name="sonora_main_job",
    selection=dg.AssetSelection.groups("salesforce"),
    description="Everything Sonora builds from the connected org.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[main_job])
