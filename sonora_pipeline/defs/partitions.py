"""Sync windows: one partition per UTC day of `SystemModstamp`, the current day included."""

import dagster as dg

from sonora_pipeline.defs.settings import SETTINGS

sync_window = dg.DailyPartitionsDefinition(
    start_date=SETTINGS.sync.partitions_start.isoformat(),
    end_offset=1,  # today is a partition too: the sensor keeps it current as changes arrive
    timezone="UTC",
)
