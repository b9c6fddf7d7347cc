"""What many local orgs in one process cost: start time and memory of `sonora-pipeline localorg --orgs N`,
and the time of one token + one REST query per org, one org after the other, as a tick over every org
meets them.

    .venv/bin/python benchmarks/localorg_fleet.py                  # 100 and 1,000 orgs of 20 records
    .venv/bin/python benchmarks/localorg_fleet.py --orgs 300 --records 50

The fleet runs in its own process (as a Dagster sensor meets it), its files in a temp folder removed at
the end. Figures:

  start s        from launching the command to its index.json (every org answering): interpreter start,
                 imports, one generated org shared by all (same records), N ports
  RSS MB         the fleet process's resident memory after start, and after the round trips (VmRSS), and its
                 peak (VmHWM)
  round trips    N × (client-credentials token on a new TLS connection + SELECT Id, Name FROM Account on the
                 same connection), sequential, one requests.Session
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def _status_mb(pid: int, key: str) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(orgs: int, records: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as work:
        folder = Path(work) / "orgs"
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "sonora_pipeline.cli", "localorg", "--orgs", str(orgs),
                                   "--records", str(records), "--fleet-dir", str(folder)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (folder / "index.json").exists():
                if server.poll() is not None:
                    raise RuntimeError(f"the fleet exited with {server.returncode}")
                time.sleep(0.05)
            start_s = time.perf_counter() - started
            rss_start = _status_mb(server.pid, "VmRSS")
            index = json.loads((folder / "index.json").read_text())
            session = requests.Session()
            session.verify, session.trust_env = index["ca_bundle"], False
            t0 = time.perf_counter()
            for entry in index["orgs"].values():
                creds = json.loads((folder / entry["credentials_file"]).read_text())
                token = session.post(f"{entry['instance_url']}/services/oauth2/token",
                                     data={"grant_type": "client_credentials"},
                                     auth=(creds["consumer_key"], creds["consumer_secret"]))
                token.raise_for_status()
                reply = session.get(f"{entry['instance_url']}/services/data/v62.0/query",
                                    params={"q": "SELECT Id, Name FROM Account"},
                                    headers={"Authorization": f"Bearer {token.json()['access_token']}"})
                reply.raise_for_status()
            trips_s = time.perf_counter() - t0
            return {"orgs": orgs, "records_each": records, "start_s": round(start_s, 2),
                    "rss_after_start_mb": round(rss_start), "round_trips_s": round(trips_s, 2),
                    "ms_per_org": round(1000 * trips_s / orgs, 1),
                    "rss_after_round_trips_mb": round(_status_mb(server.pid, "VmRSS")),
                    "peak_rss_mb": round(_status_mb(server.pid, "VmHWM"))}
        finally:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, action="append", help="fleet size (repeatable; default 100 and 1000)")
    parser.add_argument("--records", type=int, default=20, help="records per org (default 20)")
    args = parser.parse_args()
    for orgs in args.orgs or [100, 1000]:
        print(json.dumps(measure(orgs, args.records)), flush=True)


if __name__ == "__main__":
    main()
