"""`sonora-pipeline`: start the local org, run the demo, and (later) sync and test connections."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _start_org(records: int, port: int, seed: int):
    from sonora_pipeline.localorg.org import LocalOrg

    return LocalOrg(records=records, seed=seed).start(port=port)


def cmd_localorg(args: argparse.Namespace) -> int:
    org = _start_org(args.records, args.port, args.seed)
    print(json.dumps(org.credentials.as_dict()), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    org.stop()
    return 0


def _org_environment(org) -> dict[str, str]:
    creds = org.credentials
    return {
        "SALESFORCE_INSTANCE_URL": creds.instance_url,
        "SALESFORCE_CONSUMER_KEY": creds.consumer_key,
        "SALESFORCE_CONSUMER_SECRET": creds.consumer_secret,
        "SALESFORCE_CA_BUNDLE": creds.ca_bundle,
    }


def cmd_demo(args: argparse.Namespace) -> int:
    import dagster as dg

    from sonora_pipeline.definitions import defs as lazy_defs
    from sonora_pipeline.paths import duckdb_path

    print(f"Starting the local org with {args.records:,} records ...", flush=True)
    org = _start_org(args.records, args.port, args.seed)
    os.environ.update(_org_environment(org))
    db = duckdb_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    print(f"Local org at {org.instance_url}; running the main job ...", flush=True)
    defs = lazy_defs()
    job = defs.resolve_job_def("sonora_main_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
    if not result.success:
        print("The main job failed; see the log above.", file=sys.stderr)
        org.stop()
        return 1
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "SELECT object_name, record_count FROM salesforce_meta.org_inventory ORDER BY object_name").fetchall()
    print(f"\nDuckDB file: {db}")
    print("Example query: SELECT object_name, record_count FROM salesforce_meta.org_inventory ORDER BY object_name")
    for name, count in rows:
        print(f"  {name:<12} {count:>8,}")
    if args.no_ui:
        org.stop()
        return 0
    home = PROJECT_ROOT / ".dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    print(f"\nOpening the Dagster UI on http://127.0.0.1:{args.ui_port} (Ctrl-C to stop) ...", flush=True)
    ui = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
                           "-h", "127.0.0.1", "-p", str(args.ui_port)], env=env, cwd=PROJECT_ROOT)
    try:
        return ui.wait()
    except KeyboardInterrupt:
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=30)
        return 0
    finally:
        org.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sonora-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("localorg", help="serve a local Salesforce-compatible org over HTTPS on loopback")
    p.add_argument("--records", type=int, default=5000, help="approximate number of records (default 5000)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument("--seed", type=int, default=7, help="data generator seed")
    p.set_defaults(func=cmd_localorg)
    d = sub.add_parser("demo", help="start the local org, run the main job on it, open the Dagster UI")
    d.add_argument("--records", type=int, default=5000)
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--ui-port", type=int, default=3000)
    d.add_argument("--no-ui", action="store_true", help="stop after the main job instead of opening the UI")
    d.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
