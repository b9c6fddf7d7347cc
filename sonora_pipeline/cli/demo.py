"""What `sonora-pipeline demo` does with its local org: sync it, take its inventory, build the model, show
an example query's answer, then open the Dagster UI on the same warehouse and instance.

The org comes from `cli.localorg` (the one door to the local org); this module only uses its credentials.
"""

from __future__ import annotations

import argparse
import os

from tabulate import tabulate

from sonora_pipeline.cli.sync import cmd_model, cmd_sync, org_inventory
from sonora_pipeline.cli.ui import demo_dagster_home, open_ui

AT_RISK_QUERY = """
SELECT c.name, h.score, h.band, c.arr, s.open_cases_total
FROM sonora.customers c
JOIN sonora.health_scores h ON h.customer_id = c.external_id
JOIN sonora.engagement_signals s ON s.customer_id = c.external_id
WHERE c.is_paying
ORDER BY h.score NULLS LAST, c.arr DESC, c.name
LIMIT 5
"""


def run_demo(args: argparse.Namespace, org) -> int:
    os.environ.update(org.credentials.as_environment())
    os.environ.setdefault("SONORA_AUTOMATION", "on")
    home = demo_dagster_home()
    from sonora_pipeline.paths import duckdb_path

    db = duckdb_path().resolve()
    os.environ["SONORA_DUCKDB_PATH"] = str(db)  # the UI's runs write the file the demo just filled
    print(f"Local org at {org.instance_url}; running the initial sync ...", flush=True)
    code = cmd_sync(argparse.Namespace(lookback=args.lookback, objects="", quiet=False))
    if code == 0:
        code = org_inventory()
    if code != 0:
        return code
    code = cmd_model(argparse.Namespace())
    if code != 0:
        return code
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(AT_RISK_QUERY).fetchall()
    print(f"\nExample query (top at-risk paying customers):\n{AT_RISK_QUERY.strip()}")
    table = tabulate([(str(name)[:34], score, band, arr or 0, cases) for name, score, band, arr, cases in rows],
                     headers=["customer", "score", "band", "ARR", "open cases"], tablefmt="plain",
                     floatfmt=("", "g", "", ",.0f", ""), missingval="-")
    print("\n".join(f"  {line}" for line in table.splitlines()))
    if args.no_ui:
        return 0
    return open_ui(args.ui_port, home)
