"""Row progress of the syncs running in this process, for whoever shows it (the command line's bar).

Why: the run log gets a progress line per page, but a terminal wants one bar redrawn in place, and the
command line runs the sync through Dagster in its own process. The engine reports here; a listener, if
one is registered, draws. Nothing in the sync depends on anyone listening.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

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
