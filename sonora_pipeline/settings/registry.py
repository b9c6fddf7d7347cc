"""The registry of orgs (YAML, path from `SONORA_ORGS`): which Salesforce orgs one deployment serves, where
each one's credentials come from, its settings file, and the folder its warehouse lives in.

Why a file of its own, re-read at every sensor tick: adding or removing a customer must need no code change
and no reload. A wrong entry is reported with its line and fix in `Registry.problems` and skipped, so one
customer's typo never stops the others; only a file that cannot be read as a registry at all (missing, not
YAML, no `orgs:` mapping, an org named twice) raises `RegistryError`. Secrets never live here: an entry
holding one is refused, without echoing it. Loads are cached by the file's (path, mtime, size), so a tick
over 1,000 orgs costs one `stat` when nothing changed.

Every relative path (`warehouse_root`, default `data/orgs`, and an entry's `credentials.file`, `settings`,
`ca_bundle`) is relative to the registry file's folder, not to a current directory: the CLI, the daemon, the
code server and the run workers start in different folders, and must all find the same files.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from sonora_pipeline.settings.lake import LakeSettings, LakeSettingsError, check_catalog, check_data_path
from sonora_pipeline.settings.positions import SettingPath, SettingsSource, locate
from sonora_pipeline.settings.problems import SettingsError, described, did_you_mean
from sonora_pipeline.settings.source import _not_yaml, _read_yaml

ENV_ORGS = "SONORA_ORGS"
DEFAULT_WAREHOUSE_ROOT = Path("data") / "orgs"
WAREHOUSE_FILE = "warehouse.duckdb"
SNAPSHOT_FILE = "warehouse-analyst.duckdb"
# A name is a Dagster partition key, a folder and a DuckDB ATTACH alias: plain lower-case identifiers only,
# none that DuckDB or our schemas already use (an alias `sonora` would make `sonora.customers` ambiguous).
ORG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED_NAMES = frozenset({"salesforce", "sonora", "main", "warehouse", "memory", "system", "temp",
                            "public", "information_schema"})  # the last two: PostgreSQL's, where a lake's catalog lives
ENTRY_KEYS = ("instance_url", "credentials", "settings", "ca_bundle", "api_version")
CREDENTIALS_KEYS = ("file", "env")
TOP_KEYS = ("warehouse_root", "ducklake", "orgs")
LAKE_KEYS = ("catalog", "data_path")
_ENV_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_API_VERSION = re.compile(r"^\d{2,3}\.\d$")
_SECRET_KEY = re.compile(r"secret|password|passwd|token|private_key|consumer_key|client_key|api_key", re.IGNORECASE)
SECRETS_REFUSED = "secrets never live in the registry; use credentials.file or credentials.env"
# libyaml when installed (PyYAML's wheels have it): 1,000 orgs read in ~0.1 s instead of ~1 s.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RegistryError(SettingsError):
    """The registry file cannot be used at all (every org waits): missing, unreadable, not YAML, no `orgs:`
    mapping, an org named twice. One line per problem, each with the file, line and fix."""


@dataclass(frozen=True)
class OrgEntry:
    """One registered org. Holds where its secrets are (a file or an environment prefix), never the secrets."""

    name: str
    instance_url: str
    credentials_file: Path | None = None   # absolute
    credentials_env: str | None = None     # reads <PREFIX>_CONSUMER_KEY / <PREFIX>_CONSUMER_SECRET
    settings_path: Path | None = None      # absolute; None: SONORA_CONFIG or the built-in defaults
    ca_bundle: str | None = None           # absolute
    api_version: str | None = None

    @property
    def credentials_source(self) -> str:
        """Where the secrets come from, as shown to a person: `file <path>` or `env ACME_CONSUMER_KEY/_SECRET`."""
        if self.credentials_file is not None:
            return f"file {self.credentials_file}"
        return f"env {self.credentials_env}_CONSUMER_KEY/_SECRET"


@dataclass(frozen=True)
class Registry:
    path: Path
    warehouse_root: Path                                                 # absolute
    orgs: dict[str, OrgEntry] = dc_field(default_factory=dict)          # in registry order
    problems: dict[str, str] = dc_field(default_factory=dict)           # org name -> why it is skipped
    ducklake: LakeSettings | None = None  # the shared warehouse (one DuckLake catalog per org); None: DuckDB files

    def org_folder(self, name: str) -> Path:
        """The org's namespace: `<warehouse_root>/<name>/` (its warehouse, spool, lock and snapshots)."""
        return self.warehouse_root / name

    def warehouse_path(self, name: str) -> Path:
        return self.org_folder(name) / WAREHOUSE_FILE

    def snapshot_path(self, name: str) -> Path:
        """The org's analyst snapshot, named as `sonora-pipeline snapshot` names one next to its warehouse."""
        return self.org_folder(name) / SNAPSHOT_FILE

    def is_registered(self, name: str) -> bool:
        """True for a usable entry and for a wrong one alike: a typo in an entry must not make it look removed."""
        return name in self.orgs or name in self.problems

    def unregistered_folders(self) -> list[str]:
        """Org folders under warehouse_root whose org is no longer in the registry (data kept until a purge)."""
        try:
            children = sorted(self.warehouse_root.iterdir())
        except OSError:
            return []
        return [child.name for child in children
                if org_name_problem(child.name) is None and child.is_dir() and not self.is_registered(child.name)]


def registry_path() -> Path | None:
    """`SONORA_ORGS`, or None (single-org mode)."""
    value = os.environ.get(ENV_ORGS)
    return Path(value) if value else None


def org_name_problem(name: Any) -> str | None:
    """Why `name` cannot name an org (with the fix), or None when it can."""
    if not isinstance(name, str) or not ORG_NAME.match(name):
        return (f"{described(name)} is not a valid org name; use 1 to 40 lower-case letters, digits or _, "
                "starting with a letter (e.g. acme_sandbox): it is a folder, a Dagster partition and a DuckDB name")
    if name in RESERVED_NAMES:
        return (f"'{name}' is reserved (DuckDB, the warehouse or a DuckLake catalog in PostgreSQL use it: {', '.join(sorted(RESERVED_NAMES))}); "
                f"pick another name, e.g. {name}_org")
    return None


_cache: dict[str, tuple[tuple, Registry]] = {}  # absolute path -> (the file's stamp, its registry)
_cache_lock = threading.Lock()


def load_registry(path: Path | None = None) -> Registry:
    """Read and check the registry at `path` (default `SONORA_ORGS`). Cached while the file's inode, size,
    mtime and ctime and the current directory stay the same; each call gets its own `orgs`/`problems` dicts."""
    named_by = "" if path else f" (from {ENV_ORGS})"
    path = path or registry_path()
    if path is None:
        raise RegistryError(f"No registry of orgs: {ENV_ORGS} is not set. Fix: set {ENV_ORGS} to your orgs.yaml, "
                            "or pass --registry PATH.")
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise RegistryError(f"Registry of orgs {path}{named_by} does not exist. Fix: point {ENV_ORGS} (or "
                            "--registry) at your orgs.yaml, or unset SONORA_ORGS to serve the single org of the "
                            "SALESFORCE_* variables.") from None
    except OSError as err:
        raise RegistryError(f"Registry of orgs {path}{named_by} cannot be read ({err.strerror}). Fix: make it a "
                            "readable file.") from None
    key = str(path.absolute())
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, os.getcwd())
    with _cache_lock:
        cached_stamp, cached = _cache.get(key, (None, None))
    if cached is None or cached_stamp != stamp:
        cached = _parse(path)
        with _cache_lock:
            if len(_cache) >= 16:  # a deployment has one registry; tests make many
                _cache.clear()
            _cache[key] = (stamp, cached)
    return replace(cached, orgs=dict(cached.orgs), problems=dict(cached.problems))


def _parse(path: Path) -> Registry:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryError(f"Registry of orgs {path} cannot be read ({err}). Fix: make it a readable UTF-8 "
                            "text file.") from None
    try:
        raw, source, duplicates = _read_yaml(path, text, _LOADER)
    except yaml.YAMLError as err:
        raise RegistryError(str(_not_yaml(path, text, err))) from None
    file_problems, entry_duplicates = _split_duplicates(duplicates)
    if not isinstance(raw, dict) or "orgs" not in raw:
        raise RegistryError(f"{path} line 1, column 1: the registry needs an 'orgs:' mapping (one entry per org: "
                            "name, then instance_url and credentials under it); see the README's 'Many orgs'")
    for key in raw:
        if key not in TOP_KEYS:
            file_problems.append(f"{locate(source, (key,), on_key=True)}: unknown setting '{key}'"
                                 f"{did_you_mean(str(key), TOP_KEYS)}; the registry's top level has: "
                                 f"{', '.join(TOP_KEYS)}")
    orgs = raw["orgs"] if raw["orgs"] is not None else {}
    if not isinstance(orgs, dict):
        file_problems.append(f"{locate(source, ('orgs',))}: 'orgs' must be a mapping of org name to its entry, "
                             f"not {described(orgs)}")
    root = _warehouse_root(raw.get("warehouse_root", None), source, file_problems, path.parent.absolute())
    lake = _ducklake(raw, source, file_problems, path.parent.absolute())
    if file_problems:
        header = f"Registry of orgs {path} has {len(file_problems)} problems:" if len(file_problems) > 1 else None
        raise RegistryError(*file_problems, header=header)
    registry = Registry(path=path, warehouse_root=root, ducklake=lake)
    base = str(path.absolute().parent)
    for raw_name, entry in orgs.items():
        name = str(raw_name)  # the YAML reader records places under the key's text
        bad_name = org_name_problem(raw_name)
        problems = [f"{locate(source, ('orgs', name), on_key=True)}: {bad_name}"] if bad_name else []
        problems += entry_duplicates.get(name, [])
        parsed = _entry(name, entry, source, base, problems)
        if problems:
            registry.problems[name] = "; ".join(problems)
        else:
            registry.orgs[name] = parsed
    return registry


def _split_duplicates(duplicates: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Duplicated keys: at the top level or an org named twice stop the whole file (which entry is meant?);
    a key repeated inside one entry is that entry's problem only."""
    whole: list[str] = []
    per_org: dict[str, list[str]] = {}
    for problem in duplicates:
        match = re.search(r"\(orgs\.([^.)]+)\.", problem)
        if match:
            per_org.setdefault(match.group(1), []).append(problem)
        else:
            whole.append(problem.replace("duplicate setting", "duplicate name") if "(orgs." in problem else problem)
    return whole, per_org


def _warehouse_root(value: Any, source: SettingsSource, problems: list[str], base: Path) -> Path:
    """Relative to the registry's folder (`base`), so every process finds the same data wherever it started."""
    if value is None:
        return Path(os.path.abspath(base / DEFAULT_WAREHOUSE_ROOT))
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{locate(source, ('warehouse_root',))}: warehouse_root must be a folder path, not "
                        f"{described(value)} (e.g. warehouse_root: data/orgs)")
        return Path()
    return Path(os.path.abspath(base / Path(value.strip()).expanduser()))


def _ducklake(raw: dict, source: SettingsSource, problems: list[str], base: Path) -> LakeSettings | None:
    """The optional `ducklake:` block (catalog, data_path relative to the registry's folder), or None. A problem
    stops the whole file: every org's warehouse is in it."""
    if raw.get("ducklake") is None:
        return None
    block = raw["ducklake"]
    example = 'ducklake: {catalog: "dbname=sonora host=127.0.0.1 port=5432 user=sonora", data_path: lake/}'
    if not isinstance(block, dict):
        problems.append(f"{locate(source, ('ducklake',))}: ducklake must be a mapping with catalog and data_path "
                        f"(e.g. {example})")
        return None
    found = len(problems)
    for key in block:
        if key not in LAKE_KEYS:
            problems.append(f"{locate(source, ('ducklake', key), on_key=True)}: unknown setting '{key}'"
                            f"{did_you_mean(str(key), LAKE_KEYS)}; ducklake has: {', '.join(LAKE_KEYS)}")
    values = {}
    for key, check in (("catalog", check_catalog), ("data_path", lambda v, s: check_data_path(v, s, base))):
        if key not in block:
            problems.append(f"{locate(source, ('ducklake',), on_key=True)}: ducklake.{key} is missing (e.g. {example})")
            continue
        try:
            values[key] = check(block[key], f"ducklake.{key}")
        except LakeSettingsError as err:
            problems.append(f"{locate(source, ('ducklake', key))}: {err}")
    return None if len(problems) > found else LakeSettings(values["catalog"], values["data_path"])


def _entry(name: str, entry: Any, source: SettingsSource, base: str, problems: list[str]) -> OrgEntry | None:
    """The entry's OrgEntry; every problem found goes to `problems` (then the result is not used)."""
    here: SettingPath = ("orgs", name)
    if not isinstance(entry, dict):
        problems.append(f"{locate(source, here)}: an org's entry must be a mapping with instance_url and "
                        f"credentials indented below its name, not {described(entry)}")
        return None
    secret_keys = _secret_keys(entry, here)
    if secret_keys:
        # Neither the values nor the lines' text: only where they are and what to do.
        for path in secret_keys:
            problems.append(f"{locate(source, path, on_key=True)}: {SECRETS_REFUSED} (remove this line)")
        return None
    for key in entry:
        if key not in ENTRY_KEYS:
            problems.append(f"{locate(source, (*here, key), on_key=True)}: unknown setting '{key}'"
                            f"{did_you_mean(str(key), ENTRY_KEYS)}; an org's entry has: {', '.join(ENTRY_KEYS)}")
    url = entry.get("instance_url")
    url_problem = _url_problem(url, "instance_url" in entry)
    if url_problem:
        missing = "instance_url" not in entry
        where = locate(source, here if missing else (*here, "instance_url"), on_key=missing)
        problems.append(f"{where}: {url_problem}")
    file, env = _credentials(entry.get("credentials"), "credentials" in entry, source, here, base, problems)
    settings = _file_path(entry, "settings", source, here, base, problems)
    ca_bundle = _file_path(entry, "ca_bundle", source, here, base, problems)
    api_version = entry.get("api_version")
    if api_version is not None:
        api_version = f"{api_version:.1f}" if isinstance(api_version, float) else str(api_version).strip()
        if not _API_VERSION.match(api_version):
            problems.append(f"{locate(source, (*here, 'api_version'))}: {described(entry['api_version'])} is not a "
                            'Salesforce API version; write one like api_version: "62.0", or remove it')
    if problems:
        return None
    return OrgEntry(name=name, instance_url=url.strip().rstrip("/"), credentials_file=file, credentials_env=env,
                    settings_path=settings, ca_bundle=str(ca_bundle) if ca_bundle else None,
                    api_version=api_version)


def _url_problem(url: Any, present: bool) -> str | None:
    """What is wrong with an instance URL (never quoting it: `orgs list` shows it, so no user:password@ or
    query string may be in it); the full check of the host is the connection's, before the first request."""
    example = "add the org's My Domain address (e.g. instance_url: https://acme.my.salesforce.com)"
    if not present:
        return f"instance_url is missing; {example}"
    if not isinstance(url, str) or not url.strip().lower().startswith(("https://", "http://")):
        return f"instance_url is not an https:// address; {example}"
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return f"instance_url is not a valid URL; {example}"
    if "@" in parts.netloc or parts.query or parts.fragment:
        return ("instance_url holds a user name, password or query string; write only https:// and the host "
                f"({SECRETS_REFUSED})")
    return None


def _secret_keys(entry: dict, here: SettingPath) -> list[SettingPath]:
    """Paths of keys in the entry (any depth) whose name says they hold a secret."""
    found: list[SettingPath] = []
    for key, value in entry.items():
        if _SECRET_KEY.search(str(key)):
            found.append((*here, key))
        elif isinstance(value, dict):
            found += _secret_keys(value, (*here, key))
    return found


def _credentials(value: Any, present: bool, source: SettingsSource, here: SettingPath, base: str,
                 problems: list[str]) -> tuple[Path | None, str | None]:
    where = (*here, "credentials")
    example = "credentials: {file: secrets/acme.json} or credentials: {env: ACME}"
    if not present or not isinstance(value, dict):
        what = "missing" if not present else f"{described(value)}, not a mapping"
        problems.append(f"{locate(source, where if present else here, on_key=True)}: credentials is {what}; say "
                        "where the secrets are "
                        f"with exactly one of file or env (e.g. {example})")
        return None, None
    for key in value:
        if key not in CREDENTIALS_KEYS:
            problems.append(f"{locate(source, (*where, key), on_key=True)}: unknown setting '{key}'"
                            f"{did_you_mean(str(key), CREDENTIALS_KEYS)}; credentials has file or env")
    given = [key for key in CREDENTIALS_KEYS if value.get(key) is not None]
    if len(given) != 1:
        what = "both file and env" if given else "neither file nor env"
        problems.append(f"{locate(source, where, on_key=True)}: credentials has {what}; keep exactly one (e.g. "
                        f"{example})")
        return None, None
    if given == ["env"]:
        prefix = value["env"]
        if not isinstance(prefix, str) or not _ENV_PREFIX.match(prefix):
            # Not echoed: a secret pasted here by mistake must not reach a log.
            problems.append(f"{locate(source, (*where, 'env'))}: credentials.env is not an environment variable "
                            "prefix; write letters, digits and _ (e.g. env: ACME reads ACME_CONSUMER_KEY and "
                            "ACME_CONSUMER_SECRET)")
            return None, None
        return None, prefix
    return _file_path(value, "file", source, where, base, problems), None


def _file_path(mapping: dict, key: str, source: SettingsSource, here: SettingPath, base: str,
               problems: list[str]) -> Path | None:
    """An optional path, made absolute against the registry's folder."""
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{locate(source, (*here, key))}: {key} must be a file path, not {described(value)}")
        return None
    return Path(os.path.normpath(os.path.join(base, os.path.expanduser(value.strip()))))  # str ops: 1,000 orgs
