"""Faults the org can be told to inject, so retry, resume and refresh paths are exercised for real."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class FaultPlan:
    """What to do to incoming API requests. Rates are probabilities per request; `next_*` counters hit
    the next N requests deterministically (what tests usually want)."""

    latency_seconds: float = 0.0
    spike_rate: float = 0.0          # share of requests that wait `spike_seconds` more (a latency spike)
    spike_seconds: float = 0.0
    expire_tokens_every: int = 0     # every Nth API request finds every access token expired (a session timeout)
    error_rate: float = 0.0          # answer 503 SERVER_UNAVAILABLE (or 500/502 as chosen below)
    error_status: int = 503
    drop_rate: float = 0.0           # close the connection without an answer
    next_errors: int = 0
    next_drops: int = 0
    fail_next_bulk_jobs: int = 0     # Bulk query jobs that end in state Failed
    truncate_next_json: int = 0      # answer the next N JSON bodies cut in half (a malformed response)
    short_next_csv: int = 0          # drop the last row of the next N Bulk result pages
    miscount_next_csv: int = 0       # announce one row too many in the next N pages' Sforce-NumberOfRecords
    path_contains: str = ""          # restrict faults to paths containing this text
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _api_requests: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def decide(self, path: str) -> str | None:
        """'error', 'drop' or None for a request to `path`."""
        if self.path_contains and self.path_contains not in path:
            return None
        with self._lock:
            if self.next_drops > 0:
                self.next_drops -= 1
                return "drop"
            if self.next_errors > 0:
                self.next_errors -= 1
                return "error"
            roll = self._rng.random()
            if roll < self.drop_rate:
                return "drop"
            if roll < self.drop_rate + self.error_rate:
                return "error"
        return None

    def delay(self, path: str) -> float:
        """Seconds to wait before answering `path`: the constant latency, plus a spike now and then."""
        if self.path_contains and self.path_contains not in path:
            return 0.0
        if not self.spike_rate:
            return self.latency_seconds
        with self._lock:
            spike = self._rng.random() < self.spike_rate
        return self.latency_seconds + (self.spike_seconds if spike else 0.0)

    def expire_tokens_now(self, path: str) -> bool:
        """True on every `expire_tokens_every`-th API request (the org then expires every token first)."""
        if not self.expire_tokens_every or not path.startswith("/services/data/v"):
            return False
        with self._lock:
            self._api_requests += 1
            return self._api_requests % self.expire_tokens_every == 0

    def corruption(self, path: str, content_type: str | None) -> str | None:
        """'truncate', 'short' or 'miscount' for a response about to be sent, or None."""
        if path.startswith("/__localorg/") or (self.path_contains and self.path_contains not in path):
            return None
        with self._lock:
            if content_type and "json" in content_type and self.truncate_next_json > 0:
                self.truncate_next_json -= 1
                return "truncate"
            if content_type == "text/csv" and path.endswith("/results"):
                if self.short_next_csv > 0:
                    self.short_next_csv -= 1
                    return "short"
                if self.miscount_next_csv > 0:
                    self.miscount_next_csv -= 1
                    return "miscount"
        return None

    def take_bulk_failure(self) -> bool:
        with self._lock:
            if self.fail_next_bulk_jobs > 0:
                self.fail_next_bulk_jobs -= 1
                return True
        return False
