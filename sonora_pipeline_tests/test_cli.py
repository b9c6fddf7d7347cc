"""The command line as a person uses it: test-connection, sync and their errors (no tracebacks)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sonora_pipeline_tests.sync.helpers import differences


def run_cli(args, org=None, tmp_path=None, **env_overrides):
    env = {**os.environ}
    if org is not None:
        env.update(org.credentials.as_environment())
    if tmp_path is not None:
        env["SONORA_DUCKDB_PATH"] = str(tmp_path / "mirror.duckdb")
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


def test_test_connection_reports_ok(org, tmp_path):
    result = run_cli(["test-connection"], org, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Salesforce connection test: OK" in result.stdout


@pytest.mark.parametrize("change, expected", [
    ({"SALESFORCE_CONSUMER_SECRET": "not-the-secret-canary-7f3a"}, "secret"),
    ({"SALESFORCE_CONSUMER_KEY": "3MVG9wrongkey"}, "consumer key"),
    ({"SALESFORCE_INSTANCE_URL": "http://example.com"}, "http"),
])
def test_test_connection_names_the_problem_and_the_fix(org, tmp_path, change, expected):
    result = run_cli(["test-connection"], org, tmp_path, **change)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "fix:" in result.stdout
    assert expected in result.stdout.lower()
    assert "Traceback" not in result.stdout + result.stderr
    assert "not-the-secret-canary-7f3a" not in result.stdout + result.stderr


def test_flow_disabled_and_no_run_as_user_each_get_their_message(org, tmp_path):
    org.configure_app(client_credentials_enabled=False)
    disabled = run_cli(["test-connection"], org, tmp_path)
    org.configure_app(client_credentials_enabled=True, run_as_user=False)
    no_user = run_cli(["test-connection"], org, tmp_path)
    assert "Client Credentials" in disabled.stdout or "client credentials" in disabled.stdout.lower()
    assert "run as" in no_user.stdout.lower() or "run-as" in no_user.stdout.lower()
    assert disabled.stdout != no_user.stdout


def test_sync_then_resync_through_the_cli(org, tmp_path):
    org.advance_clock(8)
    first = run_cli(["sync", "--lookback", "all", "--quiet"], org, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "salesforce/account" in first.stdout
    for name in ("Account", "Contact", "Task"):
        assert differences(org, tmp_path / "mirror.duckdb", name) == []
    rid = org.store.conn.execute('SELECT "Id" FROM "Contact" WHERE NOT "IsDeleted" LIMIT 1').fetchone()[0]
    org.update("Contact", rid, {"Title": "Chief Renewal Officer"})
    org.advance_clock(8)
    second = run_cli(["sync", "--quiet"], org, tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert differences(org, tmp_path / "mirror.duckdb", "Contact") == []


def test_sync_with_a_broken_settings_file_stops_before_anything_is_written(org, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sync:\n  initial_import: sometimes\n  lag_secondz: 5\n")
    result = run_cli(["sync"], org, tmp_path, SONORA_CONFIG=str(bad))
    assert result.returncode == 2
    assert "initial_import" in result.stderr and "lag_secondz" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mirror.duckdb").exists()


def test_sync_of_an_unknown_object_is_refused(org, tmp_path):
    result = run_cli(["sync", "--objects", "Acount"], org, tmp_path)
    assert result.returncode == 2 and "Acount" in result.stderr and "Account" in result.stderr
