"""A local org leaves nothing behind: the temp folder with its CA goes when it stops, and on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sonora_pipeline.localorg.org import LocalOrg


def org_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("sonora-localorg-*"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_gone(pid: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_an_org_removes_its_own_folder_on_stop_and_keeps_a_given_one(tmp_path):
    org = LocalOrg(records=20, seed=1).start()
    folder = Path(org.ca_bundle).parent
    assert folder.name.startswith("sonora-localorg-") and (folder / "localorg-ca.pem").exists()
    org.stop()
    assert not folder.exists()
    org.start()  # started again: a new folder, removed again
    again = Path(org.ca_bundle).parent
    assert again.exists() and again != folder
    org.stop()
    assert not again.exists()

    given = tmp_path / "given"
    kept = LocalOrg(records=20, seed=1, state_dir=given).start()
    kept.stop()
    assert (given / "localorg-ca.pem").exists()  # the caller's folder is the caller's to remove


def test_a_detached_local_org_removes_its_folder_on_sigterm(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "SONORA_HOME": str(tmp_path / "sonora")}
    started = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--detach", "--records", "50"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=200)
    assert started.returncode == 0, started.stdout + started.stderr
    creds = json.loads((tmp_path / "sonora" / "localorg.json").read_text())
    pid = creds["pid"]
    try:
        assert [Path(creds["ca_bundle"]).parent] == org_folders(temp)
        os.kill(pid, signal.SIGTERM)
        assert wait_until_gone(pid), "the detached org did not stop on SIGTERM"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert org_folders(temp) == []
    assert not (tmp_path / "sonora" / "localorg.json").exists()


def test_an_org_started_for_a_command_removes_its_folder_on_sigterm(tmp_path):
    """`SALESFORCE_INSTANCE_URL=local` with no org running: the command's own org, then SIGTERM mid-command."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "SONORA_HOME": str(tmp_path / "sonora"),
           "SALESFORCE_INSTANCE_URL": "local", "PYTHONUNBUFFERED": "1"}
    code = ("import time, sys\n"
            "from sonora_pipeline.localorg.runtime import org_for_command\n"
            "with org_for_command(records=50) as creds:\n"
            "    print(creds['ca_bundle'], flush=True)\n"
            "    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        ca_bundle = Path(proc.stdout.readline().strip())
        assert ca_bundle.exists() and org_folders(temp) == [ca_bundle.parent]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert org_folders(temp) == []
