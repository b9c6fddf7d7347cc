"""A write-back process killed with SIGKILL part-way, then run again, writes each value exactly once.

The kill comes after the org has applied the k-th Account write (k drawn over the whole push), so it lands
inside a batch's request, between the org applying a batch and the ledger recording it, or between batches.
Writes are counted on the org's side (a validation rule that only watches); the processes are forked from
the warm host in `kill_host.py`.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest

from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline_tests.kill_host import KillHost
from sonora_pipeline_tests.writeback.test_writeback import (
    Writes,
    assert_org_has_model_values,
    build,
    model_values,
    settings,
    sync,
)

TRIALS = 4


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
        settings_file = tmp_path / "sonora.yaml"
        settings_file.write_text("writeback:\n  enabled: true\n  settle_seconds: 2\n")
        request = {"writeback": {"db": str(db), "settings": str(settings_file), "run_id": f"trial-{trial}"}}
        writes = Writes(org)
        org.set_faults(latency_seconds=rng.choice([0.0, 0.01, 0.03]))
        kill_after = rng.randint(1, len(expected) - 1)
        pid = host.start(org, db, tmp_path / "writeback.log", **request)
        deadline = time.monotonic() + 60
        while len(writes) < kill_after and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(pid, signal.SIGKILL)
        assert host.wait() == -signal.SIGKILL, "the write-back ended before it was killed"
        assert 0 < len(writes) < len(expected)
        org.clear_faults()
        assert host.run(org, db, tmp_path / "writeback.log", **request) == 0, \
            (tmp_path / "writeback.log").read_text()[-3000:]
        assert Counter(writes.ids) == Counter({a: 1 for a in expected})
        assert_org_has_model_values(org, db)
    finally:
        org.stop()
