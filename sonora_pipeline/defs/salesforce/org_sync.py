"""What a run for one org reads, when the partition is the org rather than a window.

With 1,000 orgs, daily windows × orgs would be over a million partitions per asset, so with a registry the
partition is the org alone, and the window comes from the org's own mirror: from its committed cursor (less
the overlap) to now. A data engineer re-reads a date range of one org (after a mapping change) by launching
the org's partition with two run tags, from the asset page's launchpad or the backfill dialog:
`sonora/resync_from: 2025-01-01` and `sonora/resync_to: 2025-03-31` (UTC days of SystemModstamp, both
included).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta

import dagster as dg

from sonora_pipeline.mirror.names import RAW_SCHEMA, table_name_for
from sonora_pipeline.mirror.state import ObjectState
from sonora_pipeline.sync.engine import SyncResult

RESYNC_FROM_TAG = "sonora/resync_from"
RESYNC_TO_TAG = "sonora/resync_to"
# The end of an open window: the read stops at the org's now less the lag (window_plan), whatever this says.
OPEN_END = datetime(9999, 12, 31)


def _day(tags: Mapping[str, str], tag: str) -> date:
    value = tags[tag].strip()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise dg.Failure(description=f"Run tag {tag}={value!r} is not a date. Fix: a UTC day as YYYY-MM-DD, "
                                     f"e.g. {tag}: 2025-01-01 (nothing was read or written).") from None


def requested_range(tags: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """The SystemModstamp range the run's tags ask to re-read, [from, to + 1 day), or None."""
    if RESYNC_FROM_TAG not in tags and RESYNC_TO_TAG not in tags:
        return None
    if RESYNC_FROM_TAG not in tags:
        raise dg.Failure(description=f"Run tag {RESYNC_TO_TAG} is set without {RESYNC_FROM_TAG}. Fix: give both "
                                     "(UTC days, both included), e.g. 2025-01-01 and 2025-03-31.")
    start = _day(tags, RESYNC_FROM_TAG)
    end = _day(tags, RESYNC_TO_TAG) if RESYNC_TO_TAG in tags else date.today()
    if end < start:
        raise dg.Failure(description=f"Run tags ask for {start}..{end}: {RESYNC_TO_TAG} is before "
                                     f"{RESYNC_FROM_TAG}. Fix: swap them (nothing was read or written).")
    return datetime.combine(start, datetime.min.time()), datetime.combine(end + timedelta(days=1),
                                                                          datetime.min.time())


def org_window(tags: Mapping[str, str], state: ObjectState) -> tuple[datetime, datetime] | None:
    """The window a run for one org reads on top of any initial import: the requested range, else from the
    committed cursor on; None before the object's first import (the initial import is all it reads)."""
    requested = requested_range(tags)
    if requested is not None:
        return requested
    if state.cursor_modstamp is None:
        return None
    return state.cursor_modstamp, OPEN_END


def org_materialize_result(result: SyncResult, org: str, window: tuple[datetime, datetime] | None,
                           column_schema: Callable) -> dg.MaterializeResult:
    """The run's materialization of the org's partition: what it read, in words and figures."""
    meta = result.metadata()
    if result.initial_import:
        kind, covers = "initial", (f"Initial import ({result.initial_import}) of {result.object_name} for org {org}, "
                                   f"SystemModstamp up to {meta['read_to']}.")
    elif window is not None and window[1] != OPEN_END:
        kind, covers = "resync", (f"Re-read of {result.object_name} for org {org}: SystemModstamp from "
                                  f"{meta['read_from']} to {meta['read_to']}.")
    else:
        kind, covers = "incremental", (f"{result.object_name} for org {org}: SystemModstamp from "
                                       f"{meta['read_from']} to {meta['read_to']} (from the committed cursor).")
    metadata = {"sonora/sync_kind": kind, "sonora/covers": covers, "sonora/org": org}
    metadata.update({f"sonora/{k}": v for k, v in meta.items()})
    metadata.update({"dagster/table_name": f"{RAW_SCHEMA}.{table_name_for(result.object_name)}",
                     "dagster/row_count": result.rows_in_table})
    if result.schema is not None:
        metadata["dagster/column_schema"] = column_schema(result.schema)
    return dg.MaterializeResult(metadata=metadata)
