"""`sonora-pipeline test-connection`: each check of the credentials and the org with its fix, then whether
the warehouse mirrors this org (so new credentials for another org are refused now, not at the next sync)."""

from __future__ import annotations

import argparse
import sys


def cmd_test_connection(args: argparse.Namespace) -> int:
    from sonora_pipeline.salesforce.diagnose import check_connection
    from sonora_pipeline.settings import SettingsError, load_settings

    try:
        objects = load_settings().sync.objects
    except SettingsError as err:
        print(f"sonora-pipeline test-connection: {err}", file=sys.stderr)
        return 2
    from sonora_pipeline.salesforce.environment import connection_from_env

    connection = connection_from_env()  # `main` has already refused an unset URL and turned `local` into an org
    report = check_connection(connection, objects=objects)
    print(report.render())
    if report.ok and report.org_id:
        return _check_warehouse_org(report.org_id, connection.instance_url)
    return 0 if report.ok else 1


def _check_warehouse_org(org_id: str, instance_url: str) -> int:
    """After new credentials, say at once whether the warehouse mirrors this org (a sync would refuse)."""
    from sonora_pipeline.mirror.state import OrgIdentity, check_org, mirrored_org
    from sonora_pipeline.mirror.warehouse import read_connection
    from sonora_pipeline.paths import duckdb_path
    from sonora_pipeline.salesforce.connection import safe_url
    from sonora_pipeline.salesforce.errors import OrgMismatch

    db = duckdb_path()
    if not db.exists():
        print(f"Warehouse {db}: not created yet (the first sync records org {org_id} in it)")
        return 0
    with read_connection(db) as conn:
        try:
            check_org(conn, OrgIdentity(org_id, safe_url(instance_url)), database=str(db))
        except OrgMismatch as err:
            print(f"Warehouse: FAIL\n  {err.message}\n  fix: {err.fix}")
            return 1
        known = mirrored_org(conn)
    print(f"Warehouse {db}: " + (f"mirrors this org ({org_id})" if known else f"no org recorded yet (the next "
                                                                            f"sync records {org_id})"))
    return 0
