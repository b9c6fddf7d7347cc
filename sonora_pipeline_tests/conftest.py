"""Shared fixtures: a local org served over real HTTPS on loopback, and HTTP sessions that trust its CA."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sonora_pipeline.localorg.org import LocalOrg

# Temp files in memory when the machine has room: the suite's DuckDB files, Dagster's SQLite instances and the
# servers' data live in tmp_path, and each commit there is an fsync (one sync file ~9,000, ~3 ms apiece on this
# machine's disk). Nothing the tests prove depends on the disk: a killed process loses nothing the page cache
# holds, on tmpfs as on ext4. TMPDIR set by the caller wins; child processes (daemons, `dg dev`) inherit it.
_MEMORY_TMP, _MEMORY_TMP_FREE_BYTES = Path("/dev/shm"), 4 << 30


def _use_memory_tmp() -> None:
    if "TMPDIR" in os.environ or not (_MEMORY_TMP.is_dir() and os.access(_MEMORY_TMP, os.W_OK | os.X_OK)):
        return
    stat = os.statvfs(_MEMORY_TMP)
    if stat.f_bavail * stat.f_frsize >= _MEMORY_TMP_FREE_BYTES:
        os.environ["TMPDIR"] = str(_MEMORY_TMP)
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again (pytest's tmp_path base is made after this)


_use_memory_tmp()

# The settings file is read when the Dagster definitions load: point it at the suite's own before that.
os.environ["SONORA_CONFIG"] = str(Path(__file__).parent / "fixtures" / "test-settings.yaml")
for _name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CONSUMER_KEY", "SALESFORCE_CONSUMER_SECRET",
              "SALESFORCE_CA_BUNDLE", "SONORA_AUTOMATION", "DAGSTER_HOME"):
    os.environ.pop(_name, None)


def trusting_session(org: LocalOrg) -> requests.Session:
    """A plain requests session that trusts the org's CA.

    `trust_env = False` because an environment REQUESTS_CA_BUNDLE would otherwise replace `verify`
    (psf/requests#3829) and simple-salesforce never passes `verify` per request.
    """
    session = requests.Session()
    session.verify = org.ca_bundle
    session.trust_env = False
    return session


@contextlib.contextmanager
def running_org(state_dir: Path, *, records: int, seed: int, **options: Any) -> Iterator[LocalOrg]:
    """A local org serving over HTTPS for the `with` block, stopped however the block ends. Options are
    `LocalOrg`'s (consumer_secret, shape, now, custom_fields, ...)."""
    org = LocalOrg(records=records, seed=seed, state_dir=state_dir, **options).start()
    try:
        yield org
    finally:
        org.stop()


@pytest.fixture
def local_org_factory(tmp_path):
    """`start(records=, seed=, name=, **options)`: a started org of the test's own (its files in tmp_path/name),
    every one stopped when the test ends, passed or failed. Wider scopes use `running_org` directly."""
    with contextlib.ExitStack() as stack:
        def start(*, records: int, seed: int, name: str = "org", **options: Any) -> LocalOrg:
            return stack.enter_context(running_org(tmp_path / name, records=records, seed=seed, **options))

        yield start


@pytest.fixture(scope="session")
def shared_org(tmp_path_factory):
    """One read-mostly org for the whole run. Tests that change quota, faults, auth or clock use `org`."""
    with running_org(tmp_path_factory.mktemp("shared-org"), records=3000, seed=11) as org:
        yield org


@pytest.fixture
def org(local_org_factory):
    """A small org of the test's own, free to be broken."""
    return local_org_factory(records=400, seed=3)


@pytest.fixture
def big_org(local_org_factory):
    """An org of the test's own with enough rows for several REST pages of 200 (Contact ~500, Task ~500)."""
    return local_org_factory(records=2000, seed=5, name="big-org")


@pytest.fixture
def canary_org(local_org_factory):
    """A small org whose consumer secret is CANARY_SECRET (it must never show up in an error, repr or log)."""
    from sonora_pipeline_tests.salesforce.conftest import CANARY_SECRET

    return local_org_factory(records=50, seed=2, name="canary-org", consumer_secret=CANARY_SECRET)


@pytest.fixture
def session_for():
    return trusting_session


# -- the proof suites' counts, printed at the end of every run ---------------------------------------------------

PROOF_MARKERS = {
    "sigkill_trial": "SIGKILL trials (sync or write-back killed, run again: same result as an unbroken run)",
    "fault": "injected faults (result equals a clean run)",
    "bad_input": "bad inputs (named message, nothing written)",
    "secret_canary": "secret canary runs (no leak anywhere)",
    "ui": "Dagster UI runs in headless Chromium",
}


def pytest_terminal_summary(terminalreporter):
    """Print how many trials, faults and bad inputs were proven, so CI logs carry the figures."""
    outcomes: dict[str, tuple[str, object]] = {}
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if outcome == "passed" and report.when != "call":
                continue
            if outcomes.get(report.nodeid, ("passed",))[0] == "passed":
                outcomes[report.nodeid] = (outcome, report.keywords)
    terminalreporter.section("proof under pressure")
    for name, label in PROOF_MARKERS.items():
        marked = [outcome for outcome, keywords in outcomes.values() if name in keywords]
        failed = len(marked) - marked.count("passed")
        terminalreporter.write_line(f"{marked.count('passed'):>4} {label}" + (f", {failed} FAILED" if failed else ""))


# -- the order files run in under `--dist loadfile` --------------------------------------------------------------

# Files measured to take longest (summed test time of one run), longest first; the rest keep collection order.
# With `--dist loadfile` a file runs whole on one worker, and xdist by default queues the files with the most
# tests first (pyproject turns that off: `--no-loadscope-reorder`), so the one-test files of minutes (daemon, UI,
# demo) came last, one after another on one worker while the other sat idle. Longest first lets the many short
# files fill in around them, and both workers finish together. A file missing here only runs later.
LONGEST_FIRST = tuple(f"sonora_pipeline_tests/{name}" for name in (
    # The model's catch-up test after files that outlast the distributed test's import on the other worker:
    # beside that import, its daemon's runs took minutes.
    "distributed/test_celery_workers.py", "ducklake/test_lake_warehouse.py",
    "orgs/test_many_orgs.py", "orgs/test_org_faults.py", "test_model_catches_up.py", "test_quiet_start.py",
    "orgs/test_ui_many_orgs.py",
    "sync/test_initial_import_status.py", "test_orgs_cli.py", "ducklake/test_lake_purge.py",
    "sync/test_concurrency.py", "sync/test_fault_matrix.py",
    "sync/test_dagster_sync.py", "sync/test_kill_and_rerun.py", "sync/test_engine.py", "writeback/test_writeback.py",
    "test_secrets.py",
    "sync/test_sensor.py", "test_cli.py", "sync/test_org_varieties.py", "test_dagster_ui.py",
    "writeback/test_writeback_sigkill.py", "model/test_column_comments.py", "test_project.py",
    "sync/test_formula_refresh.py",
))


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order
