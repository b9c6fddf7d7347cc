"""The command line as a person uses it: test-connection, sync and their errors (no tracebacks)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

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


def table(output: str) -> dict[str, dict[str, str]]:
    """A table the CLI prints (columns two spaces apart, a header first) as {first column: {header: cell}}."""
    lines = [line for line in output.splitlines() if "  " in line.strip()]
    header, *rows = (re.split(r"\s{2,}", line.strip()) for line in lines)
    return {row[0]: dict(zip(header[1:], row[1:])) for row in rows}


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
    assert "does not have the client credentials flow enabled" in disabled.stdout.lower(), disabled.stdout
    assert "no run as user" in no_user.stdout.lower(), no_user.stdout
    assert disabled.stdout != no_user.stdout


def test_sync_then_resync_through_the_cli(org, tmp_path):
    home = tmp_path / "home"  # a persistent instance, to read the runs' job names afterwards
    home.mkdir()
    org.advance_clock(8)
    first = run_cli(["sync", "--lookback", "all", "--quiet"], org, tmp_path, DAGSTER_HOME=str(home))
    assert first.returncode == 0, first.stderr[-2000:]
    live, rows = org.store.count("Account", include_deleted=False), org.store.count("Account")
    account = table(first.stdout)["salesforce/account"]
    assert re.fullmatch(r"[\d,]+", account.pop("read")) and account.pop("API calls").isdigit(), first.stdout
    assert account == {"inserted/updated": f"{live:,}", "deleted": f"{rows - live:,}", "rows in table": f"{rows:,}",
                       "sync": "initial"}, first.stdout
    for name in ("Account", "Contact", "Task"):
        assert differences(org, tmp_path / "mirror.duckdb", name) == []
    rid = org.store.conn.execute('SELECT "Id" FROM "Contact" WHERE NOT "IsDeleted" LIMIT 1').fetchone()[0]
    org.update("Contact", rid, {"Title": "Chief Renewal Officer"})
    org.advance_clock(8)
    second = run_cli(["sync", "--quiet"], org, tmp_path, DAGSTER_HOME=str(home))
    assert second.returncode == 0, second.stderr[-2000:]
    contact = table(second.stdout)["salesforce/contact"]
    assert (contact["inserted/updated"], contact["deleted"], contact["sync"]) == ("1", "0", "incremental"), \
        second.stdout
    assert differences(org, tmp_path / "mirror.duckdb", "Contact") == []
    # Every CLI sync run shows in the UI as the named job (not Dagster's __ephemeral_asset_job__).
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
    assert len(runs) == first.stdout.count("salesforce/") + second.stdout.count("salesforce/") >= 2 * 8
    assert {r.job_name for r in runs} == {"salesforce_sync_job"}


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


# -- the local org only when asked for, and never left behind ------------------------------------------------------

def _wait_for(path, process=None, timeout=120.0):
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process is None or process.poll() is None, "the local org exited"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_localorg_serves_local_url_until_stopped_with_private_credentials(tmp_path):
    import json
    import signal

    import duckdb

    home = tmp_path / ".sonora"
    env = {**os.environ, "SONORA_HOME": str(home)}
    server = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--records", "300"],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        credentials = home / "localorg.json"
        _wait_for(credentials, server)
        assert _mode(credentials) == 0o600
        org_id = json.loads(credentials.read_text())["org_id"]
        synced = run_cli(["sync", "--lookback", "all", "--quiet", "--objects", "Account"], None, tmp_path,
                         SALESFORCE_INSTANCE_URL="local", SONORA_HOME=str(home))
        assert synced.returncode == 0, synced.stderr[-2000:]
        assert "started one for this command" not in synced.stderr  # it used the running org
        with duckdb.connect(str(tmp_path / "mirror.duckdb"), read_only=True) as conn:
            assert conn.execute("SELECT org_id FROM salesforce._org").fetchone()[0] == org_id
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert not credentials.exists()  # its secret does not outlive it


def test_local_url_without_a_running_org_starts_one_for_the_command_only(tmp_path):
    home = tmp_path / ".sonora"
    result = run_cli(["test-connection"], None, tmp_path, SALESFORCE_INSTANCE_URL="local", SONORA_HOME=str(home))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started one for this command" in result.stderr and "sonora-pipeline localorg" in result.stderr
    assert "Salesforce connection test: OK" in result.stdout
    assert not home.exists()  # nothing left to find: the org lived in the command's process


def test_a_detached_local_org_keeps_its_credentials_and_log_private(tmp_path):
    import json
    import signal

    home = tmp_path / ".sonora"
    started = run_cli(["localorg", "--detach", "--records", "100"], None, tmp_path, SONORA_HOME=str(home))
    assert started.returncode == 0, started.stderr
    credentials = json.loads((home / "localorg.json").read_text())
    try:
        assert f"kill {credentials['pid']}" in started.stdout
        assert credentials["consumer_secret"] not in started.stdout
        assert _mode(home / "localorg.json") == 0o600 and _mode(home / "localorg.log") == 0o600
        connected = run_cli(["test-connection"], None, tmp_path, SALESFORCE_INSTANCE_URL="local",
                            SONORA_HOME=str(home))
        assert connected.returncode == 0 and credentials["org_id"] in connected.stdout
    finally:
        os.kill(credentials["pid"], signal.SIGTERM)


def test_test_connection_says_when_the_warehouse_mirrors_another_org(org, tmp_path, local_org_factory):
    org.advance_clock(8)
    synced = run_cli(["sync", "--lookback", "all", "--quiet", "--objects", "Account"], org, tmp_path)
    assert synced.returncode == 0, synced.stderr[-2000:]
    same = run_cli(["test-connection"], org, tmp_path)
    assert same.returncode == 0 and f"mirrors this org ({org.org_id})" in same.stdout, same.stdout
    other = local_org_factory(records=50, seed=5, name="other")
    result = run_cli(["test-connection"], other, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Warehouse: FAIL" in result.stdout and f"mirrors org {org.org_id}" in result.stdout
    assert f"reach org {other.org_id}" in result.stdout and "SONORA_DUCKDB_PATH" in result.stdout


def test_a_refusal_inside_a_run_ends_with_its_message_and_no_stack_trace(org, tmp_path, local_org_factory):
    """A failure raised in a Dagster step (here: the warehouse mirrors another org) reaches the terminal as the
    refusal and its fix, without the stack trace Dagster's console log would print above it."""
    first = run_cli(["sync", "--objects", "Account", "--lookback", "all", "--quiet"], org, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    other = local_org_factory(records=60, seed=4, name="other")
    refused = run_cli(["sync", "--objects", "Account", "--quiet"], other, tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"mirrors org {org.org_id}" in refused.stderr and "Fix:" in refused.stderr, refused.stderr
    for trace in ("Stack Trace", "Traceback", 'File "'):
        assert trace not in refused.stderr, refused.stderr


@pytest.mark.bad_input
def test_a_dagster_home_that_does_not_exist_is_named_with_the_fix(org, tmp_path):
    missing = tmp_path / "no-such-home"
    result = run_cli(["sync", "--quiet"], org, tmp_path, DAGSTER_HOME=str(missing))
    assert result.returncode != 0
    assert f"DAGSTER_HOME is {missing}, which is not a directory" in result.stderr and "mkdir -p" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "mirror.duckdb").exists()


# -- the local org is an optional extra: without it, its commands say how to install it -----------------------------

# The CLI in a Python where the local org's own packages cannot be imported (None in sys.modules: what an
# install without the `localorg` extra sees). numpy stays: pandas and DuckDB bring it to every install.
WITHOUT_LOCALORG_EXTRA = ("import sys\n"
                          "for name in ('lark', 'trustme', 'isal'):\n"
                          "    sys.modules[name] = None\n"
                          "from sonora_pipeline.cli import main\n"
                          "sys.exit(main(sys.argv[1:]))\n")


def run_cli_without_localorg_extra(args, tmp_path, org=None, **env_overrides):
    env = {**os.environ, "SONORA_DUCKDB_PATH": str(tmp_path / "mirror.duckdb"),
           "SONORA_HOME": str(tmp_path / ".sonora"), **(org.credentials.as_environment() if org else {}),
           **env_overrides}
    return subprocess.run([sys.executable, "-c", WITHOUT_LOCALORG_EXTRA, *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)


@pytest.mark.bad_input
@pytest.mark.parametrize("args, env", [
    (["demo", "--no-ui"], {}),
    (["localorg"], {}),
    (["localorg", "--detach"], {}),
    (["test-connection"], {"SALESFORCE_INSTANCE_URL": "local"}),
    (["sync", "--quiet"], {"SALESFORCE_INSTANCE_URL": "local"}),
])
def test_without_the_localorg_extra_its_commands_give_the_install_command(tmp_path, args, env):
    result = run_cli_without_localorg_extra(args, tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"sonora-pipeline {args[0]}: the local org needs lark, trustme, isal" in result.stderr, result.stderr
    assert "Fix: pip install -e '.[localorg]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # refused before the demo says anything
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no warehouse, no credentials file, no log


def test_the_product_runs_without_the_localorg_extra(org, tmp_path):
    """Only the local org needs the extra: a sync against an org and its check work in an install without it."""
    org.advance_clock(8)
    synced = run_cli_without_localorg_extra(["sync", "--quiet", "--lookback", "all", "--objects", "Account"],
                                            tmp_path, org)
    assert synced.returncode == 0, synced.stderr[-2000:]
    checked = run_cli_without_localorg_extra(["test-connection"], tmp_path, org)
    assert checked.returncode == 0 and f"mirrors this org ({org.org_id})" in checked.stdout, checked.stdout
    assert differences(org, tmp_path / "mirror.duckdb", "Account") == []


def test_the_extra_the_cli_checks_is_the_one_pyproject_declares():
    import tomllib
    from pathlib import Path

    from sonora_pipeline.cli.localorg import LOCALORG_EXTRA

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["localorg"]
    declared = [re.split(r"[=<>~!\[; ]", requirement, maxsplit=1)[0] for requirement in extra]
    assert tuple(declared) == LOCALORG_EXTRA
