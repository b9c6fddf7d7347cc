"""API usage as a real org counts it: every authenticated REST call spends one request from a daily
allowance; when it is spent the org answers 403 REQUEST_LIMIT_EXCEEDED until the window resets."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sonora_pipeline.localorg.clock import OrgClock


@dataclass
class UsageSnapshot:
    used: int
    max: int
    window_resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(self.max - self.used, 0)


class ApiQuota:
    """A rolling allowance. `window` is 24 hours in a real org; tests shorten it or call `reset()`."""

    def __init__(self, clock: OrgClock, daily_max: int = 100_000, window: timedelta = timedelta(hours=24)):
        self._clock = clock
        self._lock = threading.Lock()
        self.daily_max = daily_max
        self.window = window
        self._used = 0
        self._window_start = clock.now()
        self.bulk_jobs_used = 0
        self.peak_used = 0  # the most requests counted in one window: what a quota-share test checks

    def _roll(self) -> None:
        now = self._clock.now()
        if now >= self._window_start + self.window:
            self._used = 0
            self.bulk_jobs_used = 0
            self._window_start = now

    def try_spend(self) -> bool:
        """Count one call; False when the allowance is already spent (the call is refused, not counted)."""
        with self._lock:
            self._roll()
            if self._used >= self.daily_max:
                return False
            self._used += 1
            self.peak_used = max(self.peak_used, self._used)
            return True

    def snapshot(self) -> UsageSnapshot:
        with self._lock:
            self._roll()
            return UsageSnapshot(self._used, self.daily_max, self._window_start + self.window)

    def header(self) -> str:
        snap = self.snapshot()
        return f"api-usage={snap.used}/{snap.max}"

    def configure(self, daily_max: int | None = None, window_seconds: float | None = None,
                  used: int | None = None) -> None:
        with self._lock:
            if daily_max is not None:
                self.daily_max = daily_max
            if window_seconds is not None:
                self.window = timedelta(seconds=window_seconds)
            if used is not None:
                self._used = used
            self.peak_used = self._used

    def reset(self) -> None:
        with self._lock:
            self._used = 0
            self.peak_used = 0
            self.bulk_jobs_used = 0
            self._window_start = self._clock.now()
