"""A write-back process killed with SIGKILL part-way, then run again, writes each value exactly once.

The kill comes after the org has received the k-th API call of the run, so it lands before the first batch,
while a batch is in flight (the org applies it anyway), between the org applying a batch and the ledger
recording it, or between batches.
Writes are counted on the org's side (a validation rule that only watches); the processes are forked from
the warm host in `kill_host.py`.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from sonora_pipeline.localorg.faults import FaultPlan
from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline_tests.kill_host import KillHost
from sonora_pipeline_tests.suite_settings import write_suite_settings
from sonora_pipeline_tests.writeback.test_writeback import (
    Writes,
    assert_org_has_model_values,
    build,
    model_values,
    settings,
    sync,
)

TRIALS = 4
PATCH_LATENCY = 8.0  # how long the org sits on each PATCH before applying it, in the in-flight trial


@dataclass
class DelayAndNoteArrival(FaultPlan):
    """The org's fault plan, which also notes when a delayed request arrives: the test kills the run while its
    PATCH is known to be waiting at the org, however slow the machine is, rather than after a guessed pause."""

    arrived: threading.Event = field(default_factory=threading.Event)

    def delay(self, path: str) -> float:
        seconds = super().delay(path)
        if seconds:
            self.arrived.set()
        return seconds


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    h = KillHost(tmp_path_factory.mktemp("writeback-kill-host"), "sync:\n  initial_import: all\n")
    yield h
    h.close()


@pytest.mark.sigkill_trial
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_write_back_killed_part_way_then_rerun_writes_each_value_once(host, tmp_path, trial):
    rng = random.Random(trial)
    org = LocalOrg(records=600, seed=40 + trial, shape="accounts", state_dir=tmp_path / "org").start()
    try:
        db = tmp_path / "m.duckdb"
        sync(org, db)
        build(db, settings())
        expected = {a for a, v in model_values(db).items() if any(x is not None for x in v)}
        assert len(expected) > 200  # two collections batches at least
        settings_file = write_suite_settings(tmp_path / "sonora.yaml", writeback={"enabled": True,
                                                                                  "settle_seconds": 2})
        request = {"writeback": {"db": str(db), "settings": str(settings_file), "run_id": f"trial-{trial}"}}
        writes = Writes(org)
        org.set_faults(latency_seconds=rng.choice([0.0, 0.01, 0.03]))
        # The org counts a call when it arrives: describe 1, read-back 2-3, then one PATCH per 200 Accounts. Killing
        # at the 3rd to 5th call stops the run before its first batch, or while a batch is in flight (the org
        # applies it anyway, as Salesforce does), or between batches; a few random ms move it further.
        kill_at = 3 + trial % 3
        before = org.quota.snapshot().used
        log = tmp_path / "writeback.log"
        pid = host.start(org, db, log, **request)
        deadline = time.monotonic() + 60
        while org.quota.snapshot().used - before < kill_at and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(pid, signal.SIGKILL)
        assert host.wait() == -signal.SIGKILL, "the write-back ended before it was killed"
        assert '"status"' not in log.read_text(), "the killed run had already finished"
        org.clear_faults()
        assert host.run(org, db, log, **request) == 0, log.read_text()[-3000:]
        assert Counter(writes.ids) == Counter({a: 1 for a in expected})
        assert_org_has_model_values(org, db)
    finally:
        org.stop()


@pytest.mark.parametrize("settle_seconds, writes_per_account", [
    pytest.param(PATCH_LATENCY + 2, 1, id="waits for the send in flight", marks=pytest.mark.sigkill_trial),
    pytest.param(0, 2, id="control: without the wait it writes twice"),
])
def test_a_batch_still_in_flight_when_the_run_died_is_waited_for(host, tmp_path, settle_seconds,
                                                                 writes_per_account):
    """The org takes 8 s to start on each PATCH. The run is killed while its first batch waits there; the
    re-run starts at once. With `settle_seconds` it reads the accounts back only after that batch landed
    and sends the rest; without (the control) it reads too early and writes the first batch again."""
    org = LocalOrg(records=600, seed=40, shape="accounts", state_dir=tmp_path / "org").start()
    try:
        db = tmp_path / "m.duckdb"
        sync(org, db)
        build(db, settings())
        expected = {a for a, v in model_values(db).items() if any(x is not None for x in v)}
        assert 200 < len(expected) <= 400  # two batches, two read-back queries
        settings_file = write_suite_settings(tmp_path / "sonora.yaml", writeback={
            "enabled": True, "settle_seconds": settle_seconds})
        request = {"writeback": {"db": str(db), "settings": str(settings_file), "run_id": "in-flight"}}
        writes = Writes(org)
        org.faults = faults = DelayAndNoteArrival(latency_seconds=PATCH_LATENCY, path_contains="/composite/sobjects")
        log = tmp_path / "writeback.log"
        pid = host.start(org, db, log, **request)
        assert faults.arrived.wait(60), log.read_text()[-3000:]  # the first PATCH now waits at the org
        arrived_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        assert host.wait() == -signal.SIGKILL and len(writes) == 0  # the first batch is still waiting at the org
        org.clear_faults()
        assert host.run(org, db, log, **request) == 0, log.read_text()[-3000:]
        time.sleep(max(0.0, arrived_at + PATCH_LATENCY + 0.5 - time.monotonic()))  # the dead run's PATCH landed
        first_batch = {a for a, n in Counter(writes.ids).items() if n > 1}
        if writes_per_account == 1:
            assert Counter(writes.ids) == Counter({a: 1 for a in expected})
            assert_org_has_model_values(org, db)
        else:
            assert len(first_batch) == 200
    finally:
        org.stop()
