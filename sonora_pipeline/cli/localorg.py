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


def cmd_localorg(args: argparse.Namespace) -> int:
    """Serve a local org until Ctrl-C/SIGTERM (the documented way to keep one running); its credentials go to
    .sonora/localorg.json (mode 600), where SALESFORCE_INSTANCE_URL=local finds them, and are removed on exit."""
    refusal = missing_extra()
    if refusal:
        print(f"sonora-pipeline localorg: {refusal}", file=sys.stderr)
        return 2
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

    os.environ.setdefault("SONORA_CONFIG", str(DEMO_SETTINGS))
    print(f"Settings: {os.environ['SONORA_CONFIG']}", flush=True)
    print(f"Starting the local org with {args.records:,} records ...", flush=True)
    with exit_on_sigterm():
        org = start_org(args.records, args.port, args.seed, org_id=demo_org_id(args.seed))
        try:
            return run_demo(args, org)
        finally:
            org.stop()


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
