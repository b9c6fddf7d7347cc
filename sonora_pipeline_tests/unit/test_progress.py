"""The progress bar's figures: durations read at a glance, and time left from the rate of the read."""

from __future__ import annotations

from sonora_pipeline.sync.progress import duration, time_left


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0, 0.4, 45, 60, 125, 3600, 3660, 7325)] == \
        ["0 s", "0 s", "45 s", "1 min", "2 min 5 s", "1 h", "1 h 1 min", "2 h 2 min"]


def test_time_left_from_the_objects_own_rate():
    assert time_left(400_000, 1_000_000, 20.0) == "~30 s left"  # 20,000 rows/s, 600,000 to go
    assert time_left(1_000, 100_000, 10.0) == "~16 min 30 s left"


def test_time_left_before_the_first_page_uses_the_rate_of_earlier_objects():
    assert time_left(0, 60_000, 5.0, earlier_rate=1_000.0) == "~1 min left"
    assert time_left(0, 60_000, 5.0) is None  # nothing read yet in this command: no rate to go by


def test_no_time_left_when_there_is_nothing_to_estimate():
    assert time_left(10, 0, 5.0, 100.0) is None  # total unknown
    assert time_left(500, 500, 5.0, 100.0) is None  # all read
    assert time_left(100, 1_000, 0.5, 100.0) is None  # under a second: the bar does not need it
