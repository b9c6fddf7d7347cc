"""`sonora-pipeline`: start the local org, run the demo, sync, refresh formulas and test connections."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import threading
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _start_org(records: int, port: int, seed: int, shape: str = "b2b", org_id: str | None = None, **variety):
    from sonora_pipeline.localorg.org import LocalOrg

    return LocalOrg(records=records, seed=seed, shape=shape, org_id=org_id, **variety).start(port=port)


def _org_variety(args: argparse.Namespace) -> dict:
    """LocalOrg options from `localorg`'s variety flags (an org unlike the demo's)."""
    hidden: dict[str, list[str]] = {}
    for item in args.hide_field or []:
        object_name, _, field_name = item.partition(".")
        if not object_name or not field_name:
            raise ValueError(f"--hide-field takes Object.Field, not {item!r}. Fix: name the object and the field, "
                             "for example --hide-field Account.AnnualRevenue")
        hidden.setdefault(object_name, []).append(field_name)
    return {"custom_fields": not args.standard_fields_only, "csv_nulls": args.csv_nulls,
            "hidden_fields": hidden or None}


def _demo_org_id(seed: int) -> str:
    """The demo's org id follows its seed: the same seed generates the same records (same Ids), so running the
    demo again re-syncs the same org into its warehouse instead of being refused as another org."""
    from sonora_pipeline.localorg.ids import make_id

    return make_id("00D", 1_000_000 + seed, pod="dem")


def cmd_localorg(args: argparse.Namespace) -> int:
    """Serve a local org until Ctrl-C/SIGTERM (the documented way to keep one running); its credentials go to
    .sonora/localorg.json (mode 600), where SALESFORCE_INSTANCE_URL=local finds them, and are removed on exit."""
    from sonora_pipeline.localorg import runtime

    if args.detach:
        creds = runtime.start_detached(args.records)
        print(f"Local org running in the background at {creds['instance_url']} (org {creds.get('org_id', '?')}, "
              f"pid {creds.get('pid', '?')}); credentials in {runtime.credentials_file()} (mode 600), log in "
              f"{runtime.log_file()}. Use it with SALESFORCE_INSTANCE_URL=local; stop it with: "
              f"kill {creds.get('pid', '<pid>')}", flush=True)
        return 0
    path = Path(args.credentials_file) if args.credentials_file else runtime.credentials_file()
    already = None if args.credentials_file else runtime.running_local_org()
    try:
        org = _start_org(args.records, args.port, args.seed, args.shape, **_org_variety(args))
    except (KeyError, ValueError) as err:  # a variety flag naming what the org does not have
        print(f"sonora-pipeline localorg: {str(err).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2
    credentials = {**org.credentials.as_dict(), "org_id": org.org_id, "pid": os.getpid()}
    if already:  # never take the place of a running org that SALESFORCE_INSTANCE_URL=local already reaches
        print(f"A local org is already running at {already['instance_url']} (recorded in {path}); this one is "
              "not recorded there: use the credentials below.", file=sys.stderr, flush=True)
    else:
        runtime.write_credentials(path, credentials)
    print(json.dumps(credentials), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.remove_credentials(path, credentials)
        org.stop()
    return 0


def _failure_message(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description
            return data.error.message.strip() if data.error else "step failed"
    return "the run failed"


def _summary_rows(results) -> list[tuple[str, dict]]:
    rows = []
    for result in results:
        for event in result.get_asset_materialization_events():
            mat = event.step_materialization_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            rows.append((mat.asset_key.to_user_string(), meta))
    return rows


def _instance():
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if home:
        if not Path(home).is_dir():  # Dagster's own answer is a traceback
            raise SystemExit(f"sonora-pipeline: DAGSTER_HOME is {home}, which is not a directory. Fix: create it "
                             f"(mkdir -p {home}) to keep run history there, or unset DAGSTER_HOME.")
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def cmd_sync(args: argparse.Namespace) -> int:
    from sonora_pipeline.settings import SettingsError

    try:
        from sonora_pipeline.definitions import defs as lazy_defs
        from sonora_pipeline.defs.partitions import sync_window
        from sonora_pipeline.defs.settings import SETTINGS
    except SettingsError as err:
        print(f"sonora-pipeline sync: {err}", file=sys.stderr)
        return 2
    from sonora_pipeline.paths import duckdb_path
    from sonora_pipeline.settings import parse_initial_import
    from sonora_pipeline.sync.runner import run_sync

    try:
        lookback = parse_initial_import(args.lookback) if args.lookback else ""
    except ValueError as err:
        print(f"sonora-pipeline sync: --lookback {err}", file=sys.stderr)
        return 2
    objects = tuple(SETTINGS.sync.objects)
    if args.objects:
        wanted = [o.strip() for o in args.objects.split(",") if o.strip()]
        unknown = [o for o in wanted if o not in objects]
        if unknown:
            print(f"sonora-pipeline sync: unknown object(s) {', '.join(unknown)}. Fix: name objects the settings "
                  f"sync ({', '.join(objects)}); add custom objects under sync.custom_objects.", file=sys.stderr)
            return 2
        objects = tuple(wanted)
    defs = lazy_defs()
    db = duckdb_path()
    with _instance() as instance:
        results = run_sync(defs, db, objects, SETTINGS.sync.overlap_seconds, sync_window,
                           initial_import=lookback, instance=instance, show_progress=not args.quiet)
    failed = [r for r in results if not r.success]
    for key, meta in _summary_rows(results):
        print(f"{key:<28} {meta.get('sonora/rows_read_this_run', 0):>9,} read "
              f"{meta.get('sonora/rows_inserted_or_updated', 0):>9,} inserted/updated "
              f"{meta.get('sonora/rows_newly_marked_deleted', 0):>6,} deleted  "
              f"{meta.get('dagster/row_count', 0):>9,} rows in table {meta.get('sonora/api_calls', 0):>5} API calls  "
              f"{meta.get('sonora/sync_kind', '')}")
    if failed:
        print(f"sonora-pipeline sync failed: {_failure_message(failed[0])}", file=sys.stderr)
        return 1
    print(f"DuckDB file: {db}")
    return 0


def _connection_from_environment():
    """The configured org (SALESFORCE_* variables; `main` has already refused an unset URL and turned `local`
    into the local org's address)."""
    from sonora_pipeline.salesforce.connection import (
        ENV_CONSUMER_KEY,
        ENV_CONSUMER_SECRET,
        ENV_INSTANCE_URL,
        OrgConnection,
    )

    return OrgConnection(instance_url=os.environ.get(ENV_INSTANCE_URL, ""),
                         consumer_key=os.environ.get(ENV_CONSUMER_KEY, ""),
                         consumer_secret=os.environ.get(ENV_CONSUMER_SECRET, ""),
                         ca_bundle=os.environ.get("SALESFORCE_CA_BUNDLE") or None)


ORG_COMMANDS = ("sync", "test-connection")  # the commands that talk to an org


@contextlib.contextmanager
def _org_for(command: str):
    """Yields an error message (the command must stop) or None. An unset URL is refused before anything is
    read or written; `local` reaches the running local org, or one started for this command and stopped
    with it. Nothing else ever starts a local org."""
    from sonora_pipeline.localorg.runtime import org_for_command
    from sonora_pipeline.salesforce.connection import ENV_INSTANCE_URL, LOCAL_ORG_URL, unset_url_error

    url = os.environ.get(ENV_INSTANCE_URL, "").strip()
    if command not in ORG_COMMANDS or (url and url.lower() != LOCAL_ORG_URL):
        yield None
        return
    if not url:
        yield str(unset_url_error())
        return
    saved = {name: os.environ.get(name) for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CONSUMER_KEY",
                                                     "SALESFORCE_CONSUMER_SECRET", "SALESFORCE_CA_BUNDLE")}
    with org_for_command(log=lambda line: print(line, file=sys.stderr, flush=True)) as creds:
        os.environ.update({"SALESFORCE_INSTANCE_URL": creds["instance_url"],
                           "SALESFORCE_CONSUMER_KEY": creds["consumer_key"],
                           "SALESFORCE_CONSUMER_SECRET": creds["consumer_secret"],
                           "SALESFORCE_CA_BUNDLE": creds["ca_bundle"]})
        try:
            yield None
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def cmd_test_connection(args: argparse.Namespace) -> int:
    from sonora_pipeline.salesforce.diagnose import check_connection
    from sonora_pipeline.settings import SettingsError, load_settings

    try:
        objects = load_settings().sync.objects
    except SettingsError as err:
        print(f"sonora-pipeline test-connection: {err}", file=sys.stderr)
        return 2
    connection = _connection_from_environment()
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


def _missing_warehouse(command: str, db: Path) -> bool:
    """True (and said, with the fix) when there is no warehouse yet for a command that only reads one."""
    if db.exists():
        return False
    print(f"sonora-pipeline {command}: {db} does not exist yet; run `sonora-pipeline sync` first.", file=sys.stderr)
    return True


def _run_job(name: str, *, failure: str):
    """Run one of the definitions' jobs in process on the instance, quietly; its result, or None once its
    failure is printed after `failure`."""
    from sonora_pipeline.definitions import defs as lazy_defs
    from sonora_pipeline.sync.runner import QUIET_CONSOLE

    with _instance() as instance:
        result = lazy_defs().resolve_job_def(name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE)
    if not result.success:
        print(f"{failure}: {_failure_message(result)}", file=sys.stderr)
        return None
    return result


def cmd_snapshot(args: argparse.Namespace) -> int:
    from sonora_pipeline.mirror.warehouse import WarehouseBusy, publish_snapshot
    from sonora_pipeline.paths import duckdb_path

    db = duckdb_path()
    if _missing_warehouse("snapshot", db):
        return 2
    target = Path(args.output) if args.output else db.with_name(db.stem + "-analyst.duckdb")
    try:
        publish_snapshot(db, target)
    except WarehouseBusy as err:
        print(f"sonora-pipeline snapshot: {err}", file=sys.stderr)
        return 1
    print(f"Snapshot for analysts: {target}\nOpen it read-only, e.g. {_duckdb_cli()} -readonly {target}")
    return 0


def _duckdb_cli() -> str:
    """The DuckDB CLI installed with the project (package duckdb-cli, next to this python: the same release
    that writes the file), or `duckdb` from PATH when it is not there."""
    cli = Path(sys.executable).parent / "duckdb"
    return str(cli) if cli.exists() else "duckdb"


def cmd_refresh_formulas(args: argparse.Namespace) -> int:
    """Refresh the mirror's formula columns (salesforce_formula_refresh_job, in process)."""
    from sonora_pipeline.paths import duckdb_path
    from sonora_pipeline.settings import SettingsError

    if _missing_warehouse("refresh-formulas", duckdb_path()):
        return 2
    try:
        import sonora_pipeline.definitions  # noqa: F401  (settings are read here: a mistake stops before any run)
    except SettingsError as err:
        print(f"sonora-pipeline refresh-formulas: {err}", file=sys.stderr)
        return 2
    result = _run_job("salesforce_formula_refresh_job", failure="sonora-pipeline refresh-formulas failed")
    if result is None:
        return 1
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            obs = event.asset_observation_data.asset_observation
            meta = {k.rsplit("/", 1)[-1]: getattr(v, "value", v) for k, v in obs.metadata.items()}
            if meta.get("formula_fields", "none") != "none":
                print(f"{obs.asset_key.to_user_string():<28} {meta['rows_changed']:>9,} changed of "
                      f"{meta['rows_read']:>9,} read {meta['api_calls']:>5} API calls  {meta['formula_fields']}")
        if event.event_type_value == "STEP_OUTPUT":
            total = {k: getattr(v, "value", v) for k, v in event.event_specific_data.metadata.items()}
    print(f"Formula refresh: {total['rows_changed']:,} rows changed, {total['api_calls']} API calls "
          f"({total['objects_with_formulas']})")
    return 0


AT_RISK_QUERY = """
SELECT c.name, h.score, h.band, c.arr, s.open_cases_total
FROM sonora.customers c
JOIN sonora.health_scores h ON h.customer_id = c.external_id
JOIN sonora.engagement_signals s ON s.customer_id = c.external_id
WHERE c.is_paying
ORDER BY h.score NULLS LAST, c.arr DESC, c.name
LIMIT 5
"""


def cmd_model(args: argparse.Namespace) -> int:
    """Rebuild the customer model from the mirror (no Salesforce calls)."""
    from sonora_pipeline.paths import duckdb_path
    from sonora_pipeline.settings import SettingsError

    duckdb_path()  # a file name DuckDB would confuse with a schema is refused here, not half-way through the job

    try:
        import sonora_pipeline.definitions  # noqa: F401  (settings are read here: a mistake stops before any run)
    except SettingsError as err:
        print(f"sonora-pipeline model: {err}", file=sys.stderr)
        return 2
    result = _run_job("customer_model_job", failure="sonora-pipeline model failed")
    if result is None:
        return 1
    tables = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    print(f"Customer model built: {', '.join(tables)}")
    return 0


def _org_inventory() -> int:
    """Materialize `salesforce/org_inventory` (org_inventory_job, in process): what the org holds per synced
    object, as the run-as user sees it, in salesforce_meta.org_inventory — to compare with the mirror."""
    result = _run_job("org_inventory_job", failure="sonora-pipeline: org inventory failed")
    if result is None:
        return 1
    for _, meta in _summary_rows([result]):
        print(f"Org inventory: {meta['records_in_org']:,} records in {meta['dagster/row_count']} objects "
              "(table salesforce_meta.org_inventory)")
    return 0


DEMO_SETTINGS = Path(__file__).resolve().parent / "localorg" / "demo-settings.yaml"


def cmd_demo(args: argparse.Namespace) -> int:
    """The local org, started for the demo and stopped when it ends (after the sync with --no-ui, or when the
    Dagster UI is closed, or on SIGTERM); its custom fields come from the demo's own settings file unless
    SONORA_CONFIG is set."""
    from sonora_pipeline.localorg.runtime import exit_on_sigterm

    os.environ.setdefault("SONORA_CONFIG", str(DEMO_SETTINGS))
    print(f"Settings: {os.environ['SONORA_CONFIG']}", flush=True)
    print(f"Starting the local org with {args.records:,} records ...", flush=True)
    with exit_on_sigterm():
        org = _start_org(args.records, args.port, args.seed, org_id=_demo_org_id(args.seed))
        try:
            return _demo_with_org(args, org)
        finally:
            org.stop()


def _demo_with_org(args: argparse.Namespace, org) -> int:
    os.environ.update(org.credentials.as_environment())
    os.environ.setdefault("SONORA_AUTOMATION", "on")
    home = _demo_dagster_home()
    from sonora_pipeline.paths import duckdb_path

    db = duckdb_path().resolve()
    os.environ["SONORA_DUCKDB_PATH"] = str(db)  # the UI's runs write the file the demo just filled
    print(f"Local org at {org.instance_url}; running the initial sync ...", flush=True)
    code = cmd_sync(argparse.Namespace(lookback=args.lookback, objects="", quiet=False))
    if code == 0:
        code = _org_inventory()
    if code != 0:
        return code
    code = cmd_model(argparse.Namespace())
    if code != 0:
        return code
    import duckdb

    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(AT_RISK_QUERY).fetchall()
    print(f"\nExample query (top at-risk paying customers):\n{AT_RISK_QUERY.strip()}")
    print(f"  {'customer':<34} {'score':>6} {'band':<7} {'ARR':>12} {'open cases':>10}")
    for name, score, band, arr, cases in rows:
        print(f"  {str(name)[:34]:<34} {score if score is not None else '-':>6} {band:<7} {arr or 0:>12,.0f} {cases:>10}")
    if args.no_ui:
        return 0
    print(f"\nOpening the Dagster UI on http://127.0.0.1:{args.ui_port} with the change sensor on "
          "(Ctrl-C to stop) ...", flush=True)
    _start_run_retries_at_the_newest_event()
    ui = subprocess.Popen(ui_command(args.ui_port), env=ui_environment(), cwd=home)
    try:
        return ui.wait()
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM: the UI stops with the demo
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=30)
        _let_runs_in_flight_finish(RUNS_IN_FLIGHT_WAIT_SECONDS)
        return 0


RUNS_IN_FLIGHT_WAIT_SECONDS = 30.0


def _let_runs_in_flight_finish(timeout: float) -> None:
    """A run the sensor launched just before Ctrl-C lives in its own process and outlives the UI; stopping the
    local org under it would fail it with a vanished CA file. So the org waits (bounded) for it to end."""
    import dagster as dg

    in_flight = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                                        dg.DagsterRunStatus.CANCELING])
    deadline = time.monotonic() + timeout
    with _instance() as instance:
        runs = instance.get_runs_count(filters=in_flight)
        if runs:
            print(f"Waiting up to {timeout:.0f} s for {runs} run(s) in progress to finish before stopping the "
                  "local org ...", flush=True)
        while runs and time.monotonic() < deadline:
            time.sleep(0.5)
            runs = instance.get_runs_count(filters=in_flight)


def _demo_dagster_home() -> Path:
    """The demo's Dagster instance: $DAGSTER_HOME when set, else `.dagster_home/` in the project. The project's
    dagster.yaml (run queue, retries) is the instance's settings: copied into `.dagster_home/` at every start,
    and into a DAGSTER_HOME of the user's only if it has none (theirs stays theirs). A DAGSTER_HOME that is not
    a directory is left for the sync to refuse with its fix."""
    own = "DAGSTER_HOME" not in os.environ
    home = (PROJECT_ROOT / ".dagster_home") if own else Path(os.environ["DAGSTER_HOME"]).resolve()
    if own:
        home.mkdir(exist_ok=True)
    if home.is_dir() and (own or not (home / "dagster.yaml").exists()):
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _start_run_retries_at_the_newest_event() -> None:
    """Dagster's run-retry daemon (`run_retries` in dagster.yaml) logs "No cursor for event type ..., ignoring
    older events" the first time it runs on an instance: for the demo, every first start, as its syncs came
    first. Nobody can act on it: without a cursor the daemon starts at the newest event anyway. So record that
    same start point where it looks (its own cursor keys), only where none is recorded yet: it starts quietly
    and retries exactly what it would have. Should Dagster rename them, the warning merely comes back."""
    with contextlib.suppress(ImportError, AttributeError):
        from dagster._daemon.auto_run_reexecution.event_log_consumer import DAGSTER_EVENT_TYPES, _create_cursor_key

        with _instance() as instance:
            keys = {_create_cursor_key(event_type) for event_type in DAGSTER_EVENT_TYPES}
            missing = keys - set(instance.daemon_cursor_storage.get_cursor_values(keys))
            if missing:
                newest = instance.event_log_storage.get_maximum_record_id() or 0
                instance.daemon_cursor_storage.set_cursor_values({key: str(newest) for key in missing})


def ui_command(port: int) -> list[str]:
    """`dg dev` (dagster-dg-cli; `dagster dev` is superseded and says so on every start) on the project's
    workspace.yaml: the Dagster webserver plus the daemon (sensors, run queue), on loopback."""
    dg_script = Path(sys.executable).with_name("dg")
    dg = [str(dg_script)] if dg_script.exists() else [shutil.which("dg") or "dg"]
    return [*dg, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]


def ui_environment() -> dict[str, str]:
    """The UI runs in $DAGSTER_HOME (where its dagster.yaml is, so Dagster has no other dagster.yaml in the
    current folder to warn about), importing this same project, with the settings named by absolute paths."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    for name in ("SONORA_CONFIG", "SONORA_HOME"):
        if env.get(name):
            env[name] = str(Path(env[name]).resolve())
    return env


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sonora-pipeline", description=__doc__)
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
    p.set_defaults(func=cmd_localorg)
    d = sub.add_parser("demo", help="start the local org, run the main job on it, open the Dagster UI")
    d.add_argument("--records", type=int, default=5000)
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--ui-port", type=int, default=3000)
    d.add_argument("--no-ui", action="store_true", help="stop after the initial sync instead of opening the UI")
    d.add_argument("--lookback", default="all", help="initial import for the demo (default: all)")
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
    args = parser.parse_args(argv)
    from sonora_pipeline.mirror.warehouse import WarehouseTooNew
    from sonora_pipeline.paths import WarehousePathError

    try:
        with _org_for(args.command) as refusal, contextlib.redirect_stderr(_WithoutStackTraces(sys.stderr)):
            if refusal:
                print(f"sonora-pipeline {args.command}: {refusal}", file=sys.stderr)
                return 2
            return args.func(args)
    except (WarehousePathError, WarehouseTooNew) as err:
        print(f"sonora-pipeline {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
