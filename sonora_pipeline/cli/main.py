"""The command line's entry: its arguments, which command runs, and the errors any command can meet (a bad
warehouse path, a warehouse too new) turned into a message with the fix and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import sys

from sonora_pipeline.cli.connection import cmd_test_connection
from sonora_pipeline.cli.localorg import cmd_demo, cmd_localorg, local_org_for
from sonora_pipeline.cli.orgs import add_orgs_parser
from sonora_pipeline.cli.sync import cmd_model, cmd_refresh_formulas, cmd_snapshot, cmd_sync

DESCRIPTION = ("Mirror a Salesforce org into DuckDB and build the customer model from it; the local org and the demo "
               "show it end to end. Each command's --help says more.")


class _WithoutStackTraces:
    """stderr for Dagster's console log in a terminal, minus the stack traces of failed steps.

    Every failure a user can cause (credentials, settings, another org, a quota) ends the command with its own
    message and fix, printed last; the trace above it is noise to them, and the run's event log in
    $DAGSTER_HOME keeps it whole. Dagster's console handler (coloredlogs) looks up sys.stderr for each record
    and writes a record in one call, so cutting each write at its trace is enough."""

    MARKERS = ("\nStack Trace:", "\nThe above exception was caused by")

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        cuts = [i for i in (text.find(m) for m in self.MARKERS) if i != -1]
        if cuts:
            text = text[:min(cuts)].rstrip("\n") + "\n"
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonora-pipeline", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("localorg", help="serve a local Salesforce-compatible org over HTTPS on loopback until "
                                        "Ctrl-C (use it with SALESFORCE_INSTANCE_URL=local)")
    p.add_argument("--records", type=int, default=5000, help="approximate number of records (default 5000)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument("--seed", type=int, default=7, help="data generator seed")
    p.add_argument("--credentials-file", help="write the JSON line to this file (mode 600) instead of "
                                              ".sonora/localorg.json, where SALESFORCE_INSTANCE_URL=local looks")
    p.add_argument("--detach", action="store_true", help="serve in the background until killed (log in "
                                                         ".sonora/localorg.log, mode 600)")
    p.add_argument("--shape", choices=["b2b", "accounts"], default="b2b",
                   help="mix of objects: b2b (default) or accounts (~97%% Accounts, for benchmarks)")
    p.add_argument("--standard-fields-only", action="store_true",
                   help="a fresh org's schema: no custom field on any object and no custom object")
    p.add_argument("--csv-nulls", choices=["empty", "quoted"], default="empty",
                   help='how Bulk CSV results write a null: an empty field (default) or ""')
    p.add_argument("--hide-field", action="append", metavar="OBJECT.FIELD",
                   help="a field the run-as user cannot read (field-level security); repeatable")
    p.add_argument("--orgs", type=int, default=0, metavar="N",
                   help="serve N orgs (org01..) in this one process, each on its own port with its own org id, "
                        "credentials and quota; the other flags apply to each")
    p.add_argument("--org-names", metavar="A,B,C", help="serve these orgs (instead of --orgs N)")
    p.add_argument("--fleet", metavar="FILE", help="serve the orgs a YAML/JSON file lists (name, records, seed, "
                                                   "custom_fields, daily_api_requests, quota_window_seconds, ...)")
    p.add_argument("--fleet-dir", metavar="DIR", help="with several orgs: where each org's credentials (mode 600) "
                                                      "and the registry orgs.yaml go (default .sonora/localorgs)")
    p.add_argument("--daily-api-requests", type=int, help="each org's daily API allowance (default 100000)")
    p.set_defaults(func=cmd_localorg)
    d = sub.add_parser("demo", help="start the local org, run the main job on it, open the Dagster UI")
    d.add_argument("--records", type=int, default=5000)
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--ui-port", type=int, default=3000)
    d.add_argument("--no-ui", action="store_true", help="stop after the initial sync instead of opening the UI")
    d.add_argument("--lookback", default="all", help="initial import for the demo (default: all)")
    d.add_argument("--orgs", type=int, default=0, metavar="3",
                   help="three customers' orgs (one with the demo's custom fields, one standard-only, one with a "
                        "small API quota) in one local org process, synced side by side by the Dagster daemon "
                        "from a registry (SONORA_ORGS)")
    d.set_defaults(func=cmd_demo)
    s = sub.add_parser("sync", help="materialize every object's due sync windows in process")
    s.add_argument("--lookback", help="initial import: all | active | YYYY-MM-DD (overrides sync.initial_import)")
    s.add_argument("--objects", help="comma-separated objects (default: all configured)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sync)
    m = sub.add_parser("model", help="rebuild the customer model (schema sonora) from the mirror")
    m.set_defaults(func=cmd_model)
    n = sub.add_parser("snapshot", help="copy the warehouse to a file analysts can keep open during syncs")
    n.add_argument("--output", help="snapshot path (default: <db>-analyst.duckdb next to the warehouse)")
    n.set_defaults(func=cmd_snapshot)
    f = sub.add_parser("refresh-formulas", help="re-read formula fields into the mirror (values that change "
                                                "without SystemModstamp moving); the sync cursor does not move")
    f.set_defaults(func=cmd_refresh_formulas)
    t = sub.add_parser("test-connection", help="check credentials, URL, OAuth policy, API access and object access")
    t.set_defaults(func=cmd_test_connection)
    add_orgs_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from sonora_pipeline.mirror.lake import LakeUnavailable
    from sonora_pipeline.mirror.warehouse import WarehouseTooNew
    from sonora_pipeline.paths import WarehousePathError
    from sonora_pipeline.settings.lake import LakeSettingsError

    try:
        with local_org_for(args.command) as refusal, contextlib.redirect_stderr(_WithoutStackTraces(sys.stderr)):
            if refusal:
                print(f"sonora-pipeline {args.command}: {refusal}", file=sys.stderr)
                return 2
            return args.func(args)
    except (WarehousePathError, WarehouseTooNew, LakeSettingsError, LakeUnavailable) as err:
        print(f"sonora-pipeline {args.command}: {err}", file=sys.stderr)
        return 2
