"""The org's clock: real time plus an offset that tests and demos can move, so time-window behaviour
(sync windows, quota resets, recycle-bin expiry) can be exercised without waiting."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    return datetime.now(UTC)


class OrgClock:
    def __init__(self, start: datetime | None = None):
        self._lock = threading.Lock()
        self._offset = timedelta(0) if start is None else start - utc_now()
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        """Aware UTC time, millisecond precision, never going backwards between two calls (like a real
        org's SystemModstamp, which is monotonic per record)."""
        with self._lock:
            t = utc_now() + self._offset
            t = t.replace(microsecond=(t.microsecond // 1000) * 1000)
            if t < self._last:
                t = self._last
            self._last = t
            return t

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._offset += delta
        return self.now()

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            self._offset = when - utc_now()
            self._last = datetime.min.replace(tzinfo=UTC)
        return self.now()
