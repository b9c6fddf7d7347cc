"""What a write-back run reports: its outcome counts and API calls (asset metadata) and each value it touched.

Kept apart from the run so the asset, the CLI and the benchmark read one shape, and the table an operator
sees in the Dagster UI (account, field, old -> new) is built in one place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sonora_pipeline.writeback.ledger import canonical


@dataclass
class Change:
    """One value of the report: account, field, the org's value before (as read) and the new value."""

    account_id: str
    field: str
    old: Any
    new: Any
    result: str
    status_code: str | None = None
    message: str | None = None


@dataclass
class WritebackReport:
    """A run's outcome: filled as the run goes, so a run that fails part-way still reports its API calls."""

    status: str                      # disabled | nothing_to_write | written | dry_run
    method: str | None = None        # collections | bulk
    read_method: str | None = None   # rest | bulk (the conflict check's read)
    counts: Counter = field(default_factory=Counter)  # by result
    api_calls: int = 0
    unchanged: int = 0
    batches: int = 0
    seconds: float = 0.0
    changes: list[Change] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {"status": self.status, "method": self.method or "none", "read_method": self.read_method or "none",
                "api_calls": self.api_calls, "unchanged_values": self.unchanged, "batches": self.batches,
                **{f"result_{k}": int(self.counts.get(k, 0))
                   for k in ("success", "error", "skipped_conflict", "dry_run")}}


def changes_table(changes: Iterable[Change], limit: int = 500) -> str:
    """Markdown table of account, field, old -> new, result (for run metadata)."""
    lines = ["| account | field | old | new | result | status |", "|---|---|---|---|---|---|"]
    count = 0
    for c in changes:
        count += 1
        if count <= limit:
            lines.append(f"| {c.account_id} | {c.field} | {canonical(c.old) if not isinstance(c.old, str) else c.old}"
                         f" | {canonical(c.new) if not isinstance(c.new, str) else c.new} | {c.result} | "
                         f"{c.status_code or ''} |")
    if count > limit:
        lines.append(f"| … {count - limit} more | | | | | |")
    return "\n".join(lines)
