"""The only door from the product to the local org (`sonora_pipeline.localorg`, an optional extra): the
`localorg` and `demo` commands, and the org a command gets for `SALESFORCE_INSTANCE_URL=local`.

Nothing else in the product imports the local org, so a production install without the extra runs every
other command; here, a missing extra is said with its install command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import sys
import threading
from pathlib import Path

DEFAULT_DEMO_RECORDS = 5000
DEMO_SETTINGS = Path(__file__).resolve().parent.parent / "localorg" / "demo-settings.yaml"
LOCALORG_EXTRA = ("lark", "trustme", "isal", "numpy")  # the `localorg` extra of pyproject.toml (import names)
INSTALL_LOCALORG = "pip install -e '.[localorg]'"


def missing_extra() -> str | None:
    """Why the local org cannot start here (its extra is not installed), with the install command; None if
    it can."""
    missing = [name for name in LOCALORG_EXTRA if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"the local org needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed (the optional extra 'localorg'). Nothing was started. Fix: {INSTALL_LOCALORG} in the "
            "project's folder (the dev install includes it).")


def start_org(records: int, port: int, seed: int, shape: str = "b2b", org_id: str | None = None, **variety):
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


def demo_org_id(seed: int) -> str:
    """The demo's org id follows its seed: the same seed generates the same records (same Ids), so running the
    demo again re-syncs the same org into its warehouse instead of being refused as another org."""
    from sonora_pipeline.localorg.ids import make_id

    return make_id("00D", 1_000_000 + seed, pod="dem")


def wait_for_stop() -> None:
    """Serve until Ctrl-C or SIGTERM (the caller's `finally` stops the org(s) and removes their files)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def cmd_localorg(args: argparse.Namespace) -> int:
    """Serve a local org until Ctrl-C/SIGTERM (the documented way to keep one running); its credentials go to
    .sonora/localorg.json (mode 600), where SALESFORCE_INSTANCE_URL=local finds them, and are removed on exit.
    With --orgs/--org-names/--fleet: many orgs in this one process (see `cmd_localorg_fleet`)."""
    refusal = missing_extra()
    if refusal:
        print(f"sonora-pipeline localorg: {refusal}", file=sys.stderr)
        return 2
    if args.orgs or args.org_names or args.fleet:
        return cmd_localorg_fleet(args)
    from sonora_pipeline.localorg import runtime
    from sonora_pipeline.salesforce.local_org_file import local_org_file, running_local_org

    if args.detach:
        creds = running_local_org() or runtime.start_detached(local_org_file(), args.records)
        print(f"Local org running in the background at {creds['instance_url']} (org {creds.get('org_id', '?')}, "
              f"pid {creds.get('pid', '?')}); credentials in {local_org_file()} (mode 600), log in "
              f"{runtime.log_file(local_org_file())}. Use it with SALESFORCE_INSTANCE_URL=local; stop it with: "
              f"kill {creds.get('pid', '<pid>')}", flush=True)
        return 0
    path = Path(args.credentials_file) if args.credentials_file else local_org_file()
    already = None if args.credentials_file else running_local_org()
    try:
        org = start_org(args.records, args.port, args.seed, args.shape, **_org_variety(args))
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
    try:
        wait_for_stop()
    finally:
        runtime.remove_credentials(path, credentials)
        org.stop()
    return 0


# -- many orgs in one process -----------------------------------------------------------------------------

REGISTRY_FILE = "orgs.yaml"


def default_fleet_dir() -> Path:
    """Where a fleet's credentials and registry go: beside the single org's file (`.sonora/localorgs/`)."""
    from sonora_pipeline.salesforce.local_org_file import local_org_file

    return local_org_file().with_name("localorgs")


def write_registry(directory: Path, fleet, settings: dict[str, Path] | None = None,
                   warehouse_root: Path | None = None) -> Path:
    """`orgs.yaml` in the registry format of #13, its paths relative to `directory`: each org's URL, its
    credentials file (the fleet's per-org JSON, mode 600), the fleet's one CA bundle, and the org's settings
    file when `settings` names one. The warehouses go to `warehouse_root` (default `data/orgs` under the
    current directory, where a single org's warehouse goes, not beside the credentials). Written by hand (JSON
    strings are YAML scalars; org names are checked plain words): yaml.safe_dump takes seconds at 1,000 orgs."""
    ca = json.dumps(os.path.relpath(fleet.ca_bundle, directory))
    path = directory / REGISTRY_FILE
    root = Path(warehouse_root or Path.cwd() / "data" / "orgs").resolve()
    lines = [f"# Written by `sonora-pipeline localorg` for its local orgs; use it with SONORA_ORGS={path}",
             f"warehouse_root: {json.dumps(str(root))}", "orgs:"]
    for name in fleet.names:
        lines += [f"  {name}:", f"    instance_url: {json.dumps(fleet.org(name).instance_url)}",
                  f"    credentials: {{file: {json.dumps(name + '.json')}}}", f"    ca_bundle: {ca}"]
        if settings and name in settings:
            lines.append(f"    settings: {json.dumps(os.path.relpath(Path(settings[name]).resolve(), directory))}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def fleet_specs(args: argparse.Namespace) -> list:
    """The orgs to serve: `--fleet FILE` (YAML/JSON: a list of orgs, or `orgs:` holding one), else `--orgs N`
    named org01.. or `--org-names a,b`; the flags (--records, --seed, --shape, ...) are every org's defaults."""
    from sonora_pipeline.localorg.fleet import check_specs

    if args.port:
        raise ValueError("--port serves one org; each of several orgs takes a free port of its own. Fix: drop "
                         "--port, or give each org its `port` in a --fleet file")
    specs = _specs_from_args(args)
    check_specs(specs)  # names, counts and shapes, before anything is written or started
    return specs


def _specs_from_args(args: argparse.Namespace) -> list:
    from sonora_pipeline.localorg.fleet import OrgSpec

    defaults = {"records": args.records, "seed": args.seed, "shape": args.shape, **_org_variety(args)}
    if args.daily_api_requests is not None:
        defaults["daily_api_requests"] = args.daily_api_requests
    defaults = {k: v for k, v in defaults.items() if v is not None}
    if args.fleet:
        import yaml

        try:
            data = yaml.safe_load(Path(args.fleet).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"cannot read the fleet spec {args.fleet}: {err}. Fix: name a readable YAML or JSON "
                             "file listing orgs, e.g. `orgs: [{name: acme, records: 50}]`") from None
        items = data.get("orgs") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError(f"the fleet spec {args.fleet} lists no orgs. Fix: write a list of orgs, or `orgs:` "
                             "holding one, e.g. `orgs: [{name: acme, records: 50}]`")
        return [OrgSpec.from_mapping({**defaults, **item} if isinstance(item, dict) else item, str(args.fleet))
                for item in items]
    if args.org_names:
        names = [n.strip() for n in args.org_names.split(",") if n.strip()]
    else:
        if args.orgs < 1:
            raise ValueError(f"--orgs takes a number of orgs ≥ 1, not {args.orgs}")
        names = [f"org{i:0{max(2, len(str(args.orgs)))}d}" for i in range(1, args.orgs + 1)]
    return [OrgSpec(name=name, **defaults) for name in names]


def start_fleet(specs: list, directory: Path, settings: dict[str, Path] | None = None):
    """Serve `specs` in this process, their CA in `directory`, and write there each org's credentials file,
    `index.json` and the registry `orgs.yaml` (with each org's settings file that `settings` names); returns
    (fleet, registry_path). `fleet.stop()` stops it and removes the credentials files (the registry stays)."""
    from sonora_pipeline.localorg.fleet import LocalOrgFleet

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    fleet = LocalOrgFleet(specs, state_dir=directory).start()
    try:
        registry = write_registry(directory, fleet, settings)
        fleet.write_credentials(directory)
    except BaseException:
        fleet.stop()
        raise
    return fleet, registry


DEMO_FLEET = ("acme", "globex", "initech")


def start_demo_fleet(directory: Path, records: int = DEFAULT_DEMO_RECORDS, seed: int = 7,
                     starved_quota: int = 20, quota_window_seconds: float = 120.0,
                     settings: dict[str, Path] | None = None):
    """The demo's three customers, each unlike the others: `acme` has the demo's custom fields, `globex` a
    fresh org's standard fields only, `initech` a small API quota (`starved_quota` calls per
    `quota_window_seconds`) that runs out mid-import and comes back (the initial import of a 5,000-record demo
    org takes ~39 API calls through `sonora-pipeline sync`). Org ids follow the seed, so a second
    demo re-syncs the same orgs into their warehouses. `settings` ({"globex": path}) goes into the registry as
    those orgs' settings files. Returns (fleet, registry_path); `fleet.stop()` ends it."""
    from sonora_pipeline.localorg.fleet import OrgSpec
    from sonora_pipeline.localorg.ids import make_id

    def org_id(index: int) -> str:
        return make_id("00D", 2_000_000 + seed * 10 + index, pod="dem")

    specs = [
        OrgSpec(name="acme", records=records, seed=seed, org_id=org_id(1)),
        OrgSpec(name="globex", records=records, seed=seed + 1, custom_fields=False, org_id=org_id(2)),
        OrgSpec(name="initech", records=records, seed=seed + 2, daily_api_requests=starved_quota,
                quota_window_seconds=quota_window_seconds, org_id=org_id(3)),
    ]
    return start_fleet(specs, directory, settings)


def running_fleet(directory: Path) -> dict | None:
    """The index of a fleet already serving from `directory` (its process alive), else None."""
    from sonora_pipeline.localorg.fleet import read_index

    index = read_index(directory)
    if not index:
        return None
    try:
        os.kill(int(index.get("pid", 0)), 0)
    except (OSError, ValueError):
        return None
    return index


def cmd_localorg_fleet(args: argparse.Namespace) -> int:
    """`localorg --orgs N`: N orgs in this process until Ctrl-C/SIGTERM; each org's credentials (mode 600), the
    fleet's index.json and its registry orgs.yaml in --fleet-dir; the credentials go when it stops."""
    from sonora_pipeline.localorg import runtime

    directory = Path(args.fleet_dir) if args.fleet_dir else default_fleet_dir()
    already = running_fleet(directory)
    if already:
        print(f"Local orgs are already running from {directory} (pid {already.get('pid')}, "
              f"{len(already.get('orgs', {}))} orgs); registry {directory / REGISTRY_FILE}. Stop them first "
              f"(kill {already.get('pid')}) or use --fleet-dir for another folder.", file=sys.stderr)
        return 0 if args.detach else 2
    try:
        specs = fleet_specs(args)
    except (KeyError, TypeError, ValueError) as err:
        print(f"sonora-pipeline localorg: {str(err).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2
    if args.detach:
        index = runtime.start_detached_fleet(directory, _fleet_argv(args))
        print(f"{len(index['orgs'])} local orgs running in the background (pid {index['pid']}); registry "
              f"{directory / REGISTRY_FILE}, credentials in {directory} (mode 600), log in "
              f"{runtime.log_file(directory / 'index.json')}. Use them with SONORA_ORGS={directory / REGISTRY_FILE};"
              f" stop them with: kill {index['pid']}", flush=True)
        return 0
    try:
        fleet, registry = start_fleet(specs, directory)
    except (KeyError, TypeError, ValueError) as err:
        print(f"sonora-pipeline localorg: {str(err).strip(chr(34) + chr(39))}", file=sys.stderr)
        return 2
    print(f"{len(fleet)} local orgs serving in this process: {fleet.names[0]} at {fleet.org(fleet.names[0]).instance_url}"
          f"{' ...' if len(fleet) > 1 else ''}; registry {registry} (use it with SONORA_ORGS={registry}); "
          f"credentials in {directory} (mode 600). Ctrl-C stops them.", flush=True)
    try:
        wait_for_stop()
    finally:
        fleet.stop()  # removes the credentials files and the index
    return 0


def _fleet_argv(args: argparse.Namespace) -> list[str]:
    """The same `localorg` fleet command, minus --detach, for the background process."""
    argv = ["--records", str(args.records), "--seed", str(args.seed), "--shape", args.shape,
            "--csv-nulls", args.csv_nulls]
    for flag, value in (("--orgs", args.orgs), ("--org-names", args.org_names), ("--fleet", args.fleet),
                        ("--daily-api-requests", args.daily_api_requests)):
        if value:
            argv += [flag, str(Path(value).resolve()) if flag == "--fleet" else str(value)]
    if args.standard_fields_only:
        argv.append("--standard-fields-only")
    for item in args.hide_field or []:
        argv += ["--hide-field", item]
    return argv


def cmd_demo(args: argparse.Namespace) -> int:
    """The local org, started for the demo and stopped when it ends (after the sync with --no-ui, or when the
    Dagster UI is closed, or on SIGTERM); its custom fields come from the demo's own settings file unless
    SONORA_CONFIG is set."""
    refusal = missing_extra()
    if refusal:
        print(f"sonora-pipeline demo: {refusal}", file=sys.stderr)
        return 2
    from sonora_pipeline.cli.demo import run_demo
    from sonora_pipeline.localorg.runtime import exit_on_sigterm

    if args.orgs:
        return _demo_orgs(args)
    os.environ.setdefault("SONORA_CONFIG", str(DEMO_SETTINGS))
    print(f"Settings: {os.environ['SONORA_CONFIG']}", flush=True)
    print(f"Starting the local org with {args.records:,} records ...", flush=True)
    with exit_on_sigterm():
        org = start_org(args.records, args.port, args.seed, org_id=demo_org_id(args.seed))
        try:
            return run_demo(args, org)
        finally:
            org.stop()


def _demo_orgs(args: argparse.Namespace) -> int:
    """`demo --orgs 3`: the demo's three customers in one local org process, synced by the daemon."""
    from sonora_pipeline.cli.demo_orgs import run_demo_orgs
    from sonora_pipeline.localorg.runtime import exit_on_sigterm

    if args.orgs != len(DEMO_FLEET):
        print(f"sonora-pipeline demo: --orgs {args.orgs}: the demo has {len(DEMO_FLEET)} customers "
              f"({', '.join(DEMO_FLEET)}). Fix: --orgs {len(DEMO_FLEET)}; for more orgs serve them with "
              "`sonora-pipeline localorg --orgs N` and use its orgs.yaml as SONORA_ORGS.", file=sys.stderr)
        return 2
    directory = Path(".sonora") / "demo-orgs"
    print(f"Starting {args.orgs} local orgs in one process ({', '.join(DEMO_FLEET)}), {args.records:,} records "
          "each ...", flush=True)
    with exit_on_sigterm():
        fleet, registry = start_demo_fleet(directory.resolve(), records=args.records, seed=args.seed,
                                           quota_window_seconds=60.0)
        try:
            return run_demo_orgs(args, registry, DEMO_SETTINGS)
        finally:
            fleet.stop()


ORG_COMMANDS = ("sync", "test-connection")  # the commands that talk to an org


@contextlib.contextmanager
def local_org_for(command: str):
    """Yields an error message (the command must stop) or None. An unset URL is refused before anything is
    read or written; `local` reaches the running local org, or one started for this command and stopped
    with it (refused with the install command when the extra is missing). Nothing else ever starts one."""
    from sonora_pipeline.localorg.runtime import org_for_command
    from sonora_pipeline.salesforce.connection import ENV_INSTANCE_URL, LOCAL_ORG_URL, unset_url_error
    from sonora_pipeline.salesforce.environment import ENVIRONMENT
    from sonora_pipeline.salesforce.local_org_file import running_local_org

    url = os.environ.get(ENV_INSTANCE_URL, "").strip()
    if command not in ORG_COMMANDS or (url and url.lower() != LOCAL_ORG_URL):
        yield None
        return
    if not url:
        yield str(unset_url_error())
        return
    refusal = missing_extra()
    if refusal and running_local_org() is None:
        yield refusal
        return
    saved = {name: os.environ.get(name) for name in ENVIRONMENT.values()}
    with org_for_command(running_local_org(), log=lambda line: print(line, file=sys.stderr, flush=True)) as creds:
        os.environ.update({name: creds[field] for field, name in ENVIRONMENT.items()})
        try:
            yield None
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
