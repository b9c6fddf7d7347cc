"""A canary consumer secret run through a full sync, a failing sync and test-connection must not appear
in stdout, stderr, the Dagster event log and run storage, DuckDB, or error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CANARY = "CANARYsecret5f2b9e1d7c0a4466"


def _run(args, org, tmp_path, home, secret=CANARY):
    env = {**os.environ, **org.credentials.as_environment(), "SALESFORCE_CONSUMER_SECRET": secret,
           "SONORA_DUCKDB_PATH": str(tmp_path / "mirror.duckdb"), "DAGSTER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


@pytest.mark.secret_canary
def test_canary_secret_never_leaks(tmp_path, local_org_factory):
    org = local_org_factory(records=400, seed=5, consumer_secret=CANARY)
    home = tmp_path / "dagster_home"
    home.mkdir()
    org.advance_clock(8)
    outputs = []
    ok = _run(["sync", "--lookback", "all", "--quiet"], org, tmp_path, home)
    assert ok.returncode == 0, ok.stderr[-2000:]
    outputs.append(ok)
    outputs.append(_run(["test-connection"], org, tmp_path, home))
    outputs.append(_run(["model"], org, tmp_path, home))
    # A failing sync: the org rotated the secret, we still send the canary.
    org.configure_app(rotate_secret=True)
    org.expire_tokens()
    org.advance_clock(8)
    failing = _run(["sync", "--quiet"], org, tmp_path, home)
    assert failing.returncode == 1 and "secret" in failing.stderr.lower()
    outputs.append(failing)
    outputs.append(_run(["test-connection"], org, tmp_path, home))
    for result in outputs:
        assert CANARY not in result.stdout and CANARY not in result.stderr
    assert list(home.rglob("*.db")), "the runs were recorded in DAGSTER_HOME"
    assert _files_containing(home, CANARY.encode()) == []          # event log, run storage, compute logs
    assert (tmp_path / "mirror.duckdb").is_file()  # the first sync wrote the mirror: the search below reads it
    assert _files_containing(tmp_path, CANARY.encode()) == []
