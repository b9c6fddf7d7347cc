"""Which daily windows a change or a cursor makes due: the sensor's `partitions_between` and `plan_runs`, and
the CLI's `due_runs`. Daily partitions from the suite's settings (partitions_start 2025-01-01, today included)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.salesforce.assets import asset_key_for
from sonora_pipeline.defs.salesforce.sensors import partitions_between, plan_runs
from sonora_pipeline.mirror.state import ObjectState, ensure_state_tables, write_state
from sonora_pipeline.sync.runner import DueRun, due_runs


def last_key() -> date:
    return date.fromisoformat(sync_window.get_partition_keys()[-1])


def test_the_windows_start_at_partitions_start_and_include_today():
    keys = sync_window.get_partition_keys()
    assert keys[0] == "2025-01-01"
    assert len(keys) == (last_key() - date(2025, 1, 1)).days + 1 == len(set(keys))


@pytest.mark.parametrize(("start", "end", "keys"), [
    (datetime(2025, 3, 1, 0, 0), datetime(2025, 3, 1, 23, 59, 59), ["2025-03-01"]),
    (datetime(2025, 3, 1, 23, 59), datetime(2025, 3, 3, 0, 0), ["2025-03-01", "2025-03-02", "2025-03-03"]),
    (datetime(2025, 2, 28, 23, 50), datetime(2025, 3, 1, 0, 0, 1), ["2025-02-28", "2025-03-01"]),  # overlap
    (datetime(2024, 12, 30), datetime(2025, 1, 2), ["2025-01-01", "2025-01-02"]),  # before the first window
    (datetime(2024, 1, 1), datetime(2024, 1, 2), []),                              # wholly before it
    (datetime(2025, 3, 3), datetime(2025, 3, 1), []),                              # end before start
])
def test_partitions_between_holds_start_and_end_windows(start, end, keys):
    assert partitions_between(start, end) == keys


def test_a_clock_ahead_of_ours_never_asks_for_a_window_not_yet_defined():
    today = last_key()
    midday = datetime.combine(today, datetime.min.time()) + timedelta(hours=12)
    assert partitions_between(midday - timedelta(days=1), midday + timedelta(days=2)) == [
        (today - timedelta(days=1)).isoformat(), today.isoformat()]
    assert partitions_between(midday + timedelta(days=2), midday + timedelta(days=3)) == [today.isoformat()]


# -- the sensor's plan: one run per window, oldest first, capped ------------------------------------------------

def test_a_capped_tick_says_what_is_left():
    due = {f"2026-11-{day:02d}": {"Account", "Case"} for day in range(1, 21)}
    busy = {(asset_key_for("Case"), "2026-11-01"), (asset_key_for("Account"), "2026-11-01")}
    requests, message = plan_runs(due, busy, cap=5)
    assert [r.partition_key for r in requests] == [f"2026-11-{day:02d}" for day in range(2, 7)]
    assert all(r.asset_selection == [asset_key_for("Account"), asset_key_for("Case")] for r in requests)
    assert "14 more window(s) left for the next tick(s) (at most 5 runs per tick)" in message
    assert "2 object window(s) already have a run queued or in progress" in message


def test_a_window_partly_in_flight_runs_only_its_other_objects():
    due = {"2026-11-03": {"Task", "Account"}, "2026-11-02": {"Case"}}
    busy = {(asset_key_for("Task"), "2026-11-03")}
    requests, message = plan_runs(due, busy, cap=8)
    assert [(r.partition_key, r.asset_selection) for r in requests] == [
        ("2026-11-02", [asset_key_for("Case")]), ("2026-11-03", [asset_key_for("Account")])]
    assert requests[1].tags == {"sonora/trigger": "salesforce_changes", "sonora/objects": "Account"}
    assert message == ("2 run(s) for window(s) 2026-11-02, 2026-11-03; "
                       "1 object window(s) already have a run queued or in progress")


def test_nothing_due_but_in_flight_requests_no_run():
    requests, message = plan_runs({"2026-11-02": {"Case"}}, {(asset_key_for("Case"), "2026-11-02")})
    assert requests == []
    assert message == "no run; 1 object window(s) already have a run queued or in progress"


# -- the CLI's due runs, from the committed cursors -------------------------------------------------------------

FIXED = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-11", timezone="UTC")  # to 01-10


def with_states(path, *states: ObjectState):
    with duckdb.connect(str(path)) as conn:
        ensure_state_tables(conn)
        for state in states:
            write_state(conn, state)
    return path


def test_due_runs_from_each_cursor_minus_overlap_to_the_last_window(tmp_path):
    db = with_states(
        tmp_path / "m.duckdb",
        ObjectState("Account", cursor_modstamp=datetime(2026, 1, 3, 0, 5), initial_import="all"),   # 00:05 - 10 min
        ObjectState("Case", cursor_modstamp=datetime(2026, 1, 3, 0, 10), initial_import="all"),     # exactly 00:00
        ObjectState("Task", cursor_modstamp=datetime(2025, 12, 1), initial_import="all"),           # before start
        ObjectState("Event", cursor_modstamp=None, initial_import="all"),                           # no cursor yet
    )
    runs = due_runs(("Account", "Case", "Task", "Event", "Contact"), db, FIXED, overlap_seconds=600)
    assert runs == [
        DueRun("Account", "2026-01-02", "2026-01-10", False),
        DueRun("Case", "2026-01-03", "2026-01-10", False),
        DueRun("Task", "2026-01-01", "2026-01-10", False),
        DueRun("Event", "2026-01-01", "2026-01-10", True),
        DueRun("Contact", "2026-01-01", "2026-01-10", True),
    ]


def test_an_initial_import_on_a_light_instance_covers_only_the_last_window(tmp_path):
    runs = due_runs(("Account",), tmp_path / "absent.duckdb", FIXED, 600, initial_covers_range=False)
    assert runs == [DueRun("Account", "2026-01-10", "2026-01-10", True)]
