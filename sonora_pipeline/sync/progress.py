"""Row progress of the syncs running in this process, and the command line's bar that shows it.

Why: the run log gets a progress line per page, but a terminal wants one bar redrawn in place, and the
command line runs the sync through Dagster in its own process. The engine reports here; a listener, if
one is registered, draws. Nothing in the sync depends on anyone listening.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

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


class _PlainLines(tqdm):
    """tqdm where the stream is not a terminal (a CI log, a pipe): each display is a line of its own, never a
    carriage return; nothing before the first object, and no clearing at the end."""

    def display(self, msg=None, pos=None):
        if msg is None and self.desc:
            msg = str(self)
        if not msg:
            return False
        self.fp.write(msg + "\n")
        self.fp.flush()
        return True


def _columns(stream) -> int:
    """The terminal's width, or 80 where it does not say (tqdm would drop the bar's layout at 0)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


class ProgressBar:
    """Objects done, then the current object's rows, rate and time left, on stderr (drawn by tqdm).

    Fed by the runner (which object is next) and by the engine's row reports (`report`). On a terminal one
    line is redrawn in place, also every half second in between, so elapsed time and time left move while a
    page or a Bulk job is awaited (an object read in one page would otherwise only ever show 0/N and N/N).
    Elsewhere (a CI log, a pipe) it writes plain lines: one per object, and one every LINE_SECONDS while an
    object is read. The Dagster console log is turned down to warnings while it draws; the run log in the
    Dagster instance keeps every line."""

    REDRAW_SECONDS = 0.5
    LINE_SECONDS = 30.0
    FORMAT = "[{bar:20}] {n_fmt}/{total_fmt} {elapsed} {desc}"

    def __init__(self, total_objects: int, stream=None):
        stream = stream or sys.stderr
        self.on_terminal = bool(getattr(stream, "isatty", lambda: False)())
        kind = tqdm if self.on_terminal else _PlainLines
        self._bar = kind(total=total_objects, file=stream, bar_format=self.FORMAT, ascii=".#", mininterval=0,
                         leave=self.on_terminal, ncols=_columns(stream) if self.on_terminal else None)
        self.label = ""
        self._rows: tuple[int, int] | None = None  # (read, to read) of the current object's current read
        self._rows_started = time.monotonic()
        self._rows_ended: float | None = None
        self._read_rows = 0  # rows read, and seconds spent reading them, by this command's finished reads
        self._read_seconds = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        interval = self.REDRAW_SECONDS if self.on_terminal else self.LINE_SECONDS
        self._ticker = threading.Thread(target=self._tick, args=(interval,), name="progress-bar", daemon=True)
        self._ticker.start()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.draw()

    def next_object(self, done: int, label: str) -> None:
        with self._lock:
            self.label, self._rows = label, None
            self._bar.n = done
        self.draw()

    def rows_read(self, object_name: str, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if done == 0:
                self._rows_started, self._rows_ended = now, None
            elif done >= total:
                self._rows_ended = now  # the rate shown stays the read's while its commit runs
                self._read_rows += done
                self._read_seconds += now - self._rows_started
            self._rows = (done, total) if total else None
        if self.on_terminal:  # elsewhere a page is no news: the next line comes with the next object or tick
            self.draw()

    def rows_text(self, now: float) -> str:
        if self._rows is None:
            return ""
        done, total = self._rows
        elapsed = max((self._rows_ended or now) - self._rows_started, 1e-6)
        earlier = self._read_rows / self._read_seconds if self._read_seconds > 0 else None
        left = time_left(done, total, elapsed, earlier)
        return f"{done:,}/{total:,} rows, {done / elapsed:,.0f}/s" + (f", {left}" if left else "")

    def draw(self) -> None:
        with self._lock:
            rows = self.rows_text(time.monotonic())
            self._bar.set_description_str(f"{self.label}: {rows}" if rows else self.label)

    def stop(self) -> None:
        """No more redraws, and the terminal's line ended (also when the command ends on an error)."""
        self._stop.set()
        self._ticker.join()
        with self._lock:
            self._bar.close()

    def finish(self) -> None:
        self.next_object(self._bar.total, "done")
        self.stop()
