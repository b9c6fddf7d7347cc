"""The org's daily API allowance, shared by every client in a process.

Why: the allowance (`DailyApiRequests`) is per org, not per client, and other integrations of the customer
spend it too. Running it to zero locks *everyone* out until the rolling 24-hour window frees calls, so the
pipeline stops on its own at `max_share` of the allowance, instead of at 100%.

How: every response's `Sforce-Limit-Info: api-usage=N/M` is fed to `observe()`. `before_call()` lets calls
through while the last observation leaves room under `max_share * M` for the call and one more; at the line,
one thread sleeps `pause_poll_seconds` and then lets ONE probe call through (the room kept), whose response
updates the observation; the other threads wait for that probe. Every call counts against the allowance
(only `GET /services/data/` is free, and it says nothing about usage), so a probe that finds the window not
yet freed is the only call that can take usage past the share: one per pause, when other integrations hold
usage up. `on_limit_exceeded()` (the org answered 403 REQUEST_LIMIT_EXCEEDED)
does the same, with a warning saying when the next try is. After `max_pause_seconds` of pausing without the
usage going back under the line, `QuotaExhausted` is raised so the run fails with a clear reason instead of
hanging.

Callers that must not wait (the change sensor: a tick has to end within Dagster's sensor timeout) pass
`wait=False`: instead of sleeping they get `QuotaPaused` at once, except that one call per
`pause_poll_seconds` still goes out as the probe, so a process whose only caller never waits still finds
out when the quota has freed up.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sonora_pipeline.salesforce.errors import QuotaExhausted, QuotaPaused

_USAGE = re.compile(r"(?:^|[^-])api-usage=(\d+)/(\d+)")


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """(used, max) from a `Sforce-Limit-Info` header value, ignoring any per-app-api-usage part."""
    if not value:
        return None
    match = _USAGE.search(value)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


class ApiBudget:
    """Paces API calls against the org's daily allowance. Thread-safe; share one per process."""

    def __init__(self, max_share: float = 0.8, pause_poll_seconds: float = 300.0,
                 max_pause_seconds: float = 86400.0, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.monotonic, log: Any = None):
        if not 0 < max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        self.max_share = max_share
        self.pause_poll_seconds = pause_poll_seconds
        self.max_pause_seconds = max_pause_seconds
        self._sleep = sleep
        self._now = now
        self.log = log or logging.getLogger(__name__)
        self._cond = threading.Condition()
        self._used: int | None = None
        self._max: int | None = None
        self._refused = False          # the org said REQUEST_LIMIT_EXCEEDED and nothing newer was observed
        self._probe_owner: int | None = None   # thread allowed through while over the line
        self._probe_since = 0.0
        self._paused_since_free = 0.0  # seconds paused since usage was last under the line
        self._heard_at: float | None = None  # when usage was last observed or refused (monotonic)
        # counters
        self.calls_observed = 0
        self.pauses = 0
        self.seconds_paused = 0.0
        self.limit_exceeded = 0

    # -- observations ------------------------------------------------------------------------------------
    def observe(self, used: int, max: int) -> None:  # noqa: A002 - the header's own word
        """Record the org's usage from one response's `Sforce-Limit-Info` header."""
        with self._cond:
            self._used, self._max = int(used), int(max)
            self._refused = False
            self._heard_at = self._now()
            self.calls_observed += 1
            if self._probe_owner == threading.get_ident():
                self._probe_owner = None  # the probe got its answer
            if not self._over():
                if self._paused_since_free:
                    self.log.info("Salesforce API usage is back under the limit (%d/%d); resuming.",
                                  self._used, self._max)
                self._paused_since_free = 0.0
            self._cond.notify_all()

    def observe_header(self, value: str | None) -> bool:
        """`observe()` from a raw header value; False when the header is missing or unparseable."""
        usage = parse_limit_info(value)
        if usage is None:
            return False
        self.observe(*usage)
        return True

    @property
    def used(self) -> int | None:
        return self._used

    @property
    def max(self) -> int | None:
        return self._max

    @property
    def threshold(self) -> float | None:
        return None if self._max is None else self.max_share * self._max

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"used": self._used, "max": self._max, "max_share": self.max_share,
                    "calls_observed": self.calls_observed, "pauses": self.pauses,
                    "seconds_paused": self.seconds_paused, "limit_exceeded": self.limit_exceeded}

    # -- gating calls ------------------------------------------------------------------------------------
    def before_call(self, *, wait: bool = True) -> None:
        """Return when a call may be made; block (pacing) while usage is at or over the line, or with
        `wait=False` raise `QuotaPaused` instead (see the module's docstring)."""
        if wait:
            self._await_turn(warn=False)
        else:
            self._turn_or_raise()

    @property
    def over_share(self) -> bool:
        """True while the last observation leaves no room under the pipeline's share (or was a refusal)."""
        with self._cond:
            return self._over()

    def on_limit_exceeded(self, used: int | None = None, max: int | None = None, *,  # noqa: A002
                          wait: bool = True) -> None:
        """The org answered 403 REQUEST_LIMIT_EXCEEDED: warn, pause, and return so the caller can retry
        (that retry is the probe). Raises `QuotaExhausted` once `max_pause_seconds` are spent.

        `used`/`max` are the refusal's own `Sforce-Limit-Info` numbers, if it had any; they update the
        usage shown but, unlike `observe()`, never count as the quota freeing up."""
        with self._cond:
            if used is not None and max is not None:
                self._used, self._max = int(used), int(max)
            self._refused = True
            self._heard_at = self._now()
            self.limit_exceeded += 1
            if self._probe_owner == threading.get_ident():
                self._probe_owner = None  # this thread's probe was refused: pause again
            if not wait:
                raise self._paused_error("Salesforce refused the call: API limit exceeded")
        self._await_turn(warn=True)

    def after_call(self) -> None:
        """The calling thread's request finished (with or without a response): release its probe slot."""
        with self._cond:
            if self._probe_owner == threading.get_ident():
                self._probe_owner = None
                self._cond.notify_all()

    # -- internals ---------------------------------------------------------------------------------------
    def _over(self) -> bool:
        if self._refused:
            return True
        if self._used is None or self._max is None:
            return False
        # One call of headroom is kept for the probe a pause ends with, so that the probe too stays within
        # the share: a call may go out while usage after it leaves room for that probe.
        return self._used + 2 > self.max_share * self._max

    def _stale_probe(self) -> bool:
        # A probe holder that never came back (a bug or a killed thread) must not block everyone forever.
        return self._now() - self._probe_since > self.pause_poll_seconds + 600.0

    def _await_turn(self, *, warn: bool) -> None:
        me = threading.get_ident()
        while True:
            with self._cond:
                if self._probe_owner == me:
                    return  # this thread paused already: its next call is the probe
                if not self._over():
                    return
                if self._probe_owner is not None and not self._stale_probe():
                    self._cond.wait(timeout=1.0)
                    continue
                if self._paused_since_free >= self.max_pause_seconds:
                    raise QuotaExhausted(
                        f"The Salesforce API allowance did not free up: usage is {self._usage_text()} after "
                        f"pausing {self._paused_since_free:.0f} s in total (limit {self.max_pause_seconds:.0f} s, "
                        f"pipeline share {self.max_share:.0%}).",
                        "wait for the org's rolling 24-hour window to free calls, ask Salesforce for a higher "
                        "allowance, or lower the load of other integrations (Setup > Company Information shows "
                        "API Requests, Last 24 Hours).")
                duration = min(self.pause_poll_seconds, self.max_pause_seconds - self._paused_since_free)
                self._probe_owner = me
                self._probe_since = self._now()
                self.pauses += 1
                usage = self._usage_text()
            resume = datetime.now(UTC) + timedelta(seconds=duration)
            if warn:
                self.log.warning(
                    "Salesforce refused a call: API limit exceeded (usage %s). Pausing %.1f s; next try at "
                    "about %s.", usage, duration, resume.strftime("%Y-%m-%d %H:%M:%S UTC"))
            else:
                self.log.info(
                    "Salesforce API usage %s is at or above the pipeline's share (%.0f%%). Pausing %.1f s; "
                    "next try at about %s.", usage, self.max_share * 100, duration,
                    resume.strftime("%Y-%m-%d %H:%M:%S UTC"))
            try:
                self._sleep(duration)
            finally:
                with self._cond:
                    self.seconds_paused += duration
                    self._paused_since_free += duration
            return

    def _turn_or_raise(self) -> None:
        me = threading.get_ident()
        with self._cond:
            if not self._over() or self._probe_owner == me:
                return
            since_heard = self._now() - (self._heard_at if self._heard_at is not None else float("-inf"))
            if (self._probe_owner is None or self._stale_probe()) and since_heard >= self.pause_poll_seconds:
                self._probe_owner, self._probe_since = me, self._now()  # this call is the pause's probe
                return
            raise self._paused_error(f"Salesforce API usage {self._usage_text()} is at or above the "
                                     f"pipeline's share ({self.max_share:.0%})")

    def _paused_error(self, what: str) -> QuotaPaused:
        heard_at = self._heard_at if self._heard_at is not None else self._now()
        retry_in = max(self.pause_poll_seconds - (self._now() - heard_at), 0.0)
        return QuotaPaused(f"{what}; not waiting (the usage is checked again in about {retry_in:.0f} s).",
                           "nothing to do if other integrations spend the allowance for a while; otherwise lower "
                           "their load, raise sync.max_quota_share, or ask Salesforce for a higher allowance "
                           "(Setup > Company Information shows API Requests, Last 24 Hours).")

    def _usage_text(self) -> str:
        if self._used is None or self._max is None:
            return "unknown"
        return f"{self._used}/{self._max}"
