"""What the many-org benchmarks share: one local org process serving N orgs (`sonora-pipeline localorg
--orgs N --fleet-dir DIR`), a registry naming them with a warehouse root and a settings file, each org's API
usage as the org itself counts it, a fresh DAGSTER_HOME with the project's dagster.yaml, and peak memory of
processes read from /proc (psutil is not a dependency).

Not a benchmark itself: `org_tick.py`, `code_server_orgs.py` and `org_import.py` import it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_fleet(directory: Path, orgs: int, records: int, seed: int = 7,
                timeout: float = 1800) -> tuple[subprocess.Popen, float]:
    """`sonora-pipeline localorg --orgs N --records R --fleet-dir DIR` in its own process (its own session);
    returns (process, seconds until its index.json named every org)."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = open(directory / "fleet.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--orgs", str(orgs),
                                "--records", str(records), "--seed", str(seed), "--fleet-dir", str(directory)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        index = _index(directory)
        if index and len(index.get("orgs", {})) == orgs and (directory / "orgs.yaml").exists():
            return process, time.perf_counter() - started
        if process.poll() is not None:
            raise RuntimeError(f"the local org fleet exited: {(directory / 'fleet.log').read_text()[-2000:]}")
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"the local org fleet did not start within {timeout:.0f} s")


def _index(directory: Path) -> dict | None:
    try:
        return json.loads((directory / "index.json").read_text())
    except (OSError, ValueError):
        return None


def stop(process: subprocess.Popen) -> None:
    """Stop a process started here and every process of its session (the daemon's code server and runs)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, 9)
            except ProcessLookupError:
                pass


def write_registry(fleet_dir: Path, warehouse_root: Path, settings: dict) -> Path:
    """`bench-orgs.yaml` beside the fleet's own `orgs.yaml` (its relative credential and CA paths still hold),
    adding a warehouse root and one settings file for every org."""
    settings_file = fleet_dir / "bench-settings.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    data = yaml.safe_load((fleet_dir / "orgs.yaml").read_text())
    for entry in data["orgs"].values():
        entry["settings"] = str(settings_file)
    path = fleet_dir / "bench-orgs.yaml"
    path.write_text(yaml.safe_dump({"warehouse_root": str(warehouse_root), "orgs": data["orgs"]}, sort_keys=False))
    return path


class FleetAdmin:
    """Each org's admin API (`POST /__localorg/<control>` on its own port, its own admin token)."""

    def __init__(self, fleet_dir: Path):
        index = _index(fleet_dir)
        self.session = requests.Session()
        self.session.verify, self.session.trust_env = index["ca_bundle"], False
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=32)
        self.session.mount("https://", adapter)
        self.orgs = {}
        for name, info in index["orgs"].items():
            credentials = json.loads((fleet_dir / info["credentials_file"]).read_text())
            self.orgs[name] = (info["instance_url"], credentials["admin_token"])

    def call(self, name: str, control: str, body: dict | None = None) -> dict:
        url, token = self.orgs[name]
        reply = self.session.post(f"{url}/__localorg/{control}", json=body or {},
                                  headers={"X-LocalOrg-Admin": token}, timeout=60)
        reply.raise_for_status()
        return reply.json()

    def each(self, control: str, body: dict | None = None) -> dict[str, dict]:
        with ThreadPoolExecutor(16) as pool:
            return dict(zip(self.orgs, pool.map(lambda n: self.call(n, control, body), self.orgs)))

    def usage(self) -> dict[str, int]:
        """API calls each org has charged to its allowance so far (admin calls are not charged)."""
        return {name: state["api_usage"]["used"] for name, state in self.each("state").items()}


def dagster_home(directory: Path) -> Path:
    """A fresh DAGSTER_HOME with the project's dagster.yaml, its storage created here (before any daemon or
    code server: two first openers of the SQLite storage race on its alembic heads)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    home = directory / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
        pass
    return home


def environment(registry: Path | None, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SALESFORCE_") and k not in ("SONORA_DUCKDB_PATH", "SONORA_ORGS", "SONORA_CONFIG")}
    env.update({"DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), **extra})
    if registry is not None:
        env["SONORA_ORGS"] = str(registry)
    return env


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (MB) of a process from /proc, or {} when it is gone."""
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) // 1024
    except OSError:
        return {}
    return out


def session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of every process in session `sid` (a daemon started with start_new_session)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != sid:  # field 6 of stat: session id
                continue
            found[int(entry)] = open(f"/proc/{entry}/cmdline").read().replace("\0", " ")
        except (OSError, ValueError):
            continue
    return found


def role(cmdline: str) -> str:
    if "dagster-daemon" in cmdline and "run" in cmdline:
        return "daemon"
    # The default run launcher starts each run in a process the code server spawns (multiprocessing spawn).
    if "execute_run" in cmdline or "execute_step" in cmdline or "multiprocessing.spawn" in cmdline:
        return "run worker"
    if "grpc" in cmdline or "code-server" in cmdline:
        return "code server"
    return "other (compute-log tails, resource tracker)"
