"""Row progress of the syncs running in this process, for whoever shows it (the command line's bar).

Why: the run log gets a progress line per page, but a terminal wants one bar redrawn in place, and the
command line runs the sync through Dagster in its own process. The engine reports here; a listener, if
one is registered, draws. Nothing in the sync depends on anyone listening.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

SHOW_AFTER_SECONDS = 1.0  # an object read faster than this needs no estimate

Listener = Callable[[str, int, int], None]  # (object name, rows read so far, rows to read)

_listeners: list[Listener] = []
_lock = threading.Lock()


def report(object_name: str, done: int, total: int) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(object_name, done, total)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def duration(seconds: float) -> str:
    """'45 s', '12 min 5 s', '2 h 10 min': a time a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def time_left(done: int, total: int, elapsed: float, earlier_rate: float | None = None) -> str | None:
    """'~2 min 5 s left' for rows still to read, or None when there is nothing to say: no total, all read, or
    read in under a second. The rate is this object's own once a page is in; before that, the rate earlier
    objects of the same command were read at (a Bulk job or a slow first page can take minutes)."""
    if total <= 0 or done >= total or elapsed < SHOW_AFTER_SECONDS:
        return None
    rate = done / elapsed if done > 0 else earlier_rate
    if not rate:
        return None
    return f"~{duration((total - done) / rate)} left"
