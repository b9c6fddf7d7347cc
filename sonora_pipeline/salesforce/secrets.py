"""An org's OAuth client credentials from where the registry of orgs says they are: a secrets file or a
pair of environment variables. The registry itself never holds them.

Why so careful: these are the keys to a customer's Salesforce. A secrets file others can read is refused
with the `chmod` that fixes it; no message, repr or exception carries a value (a YAML error's excerpt of the
file would, so only its line and column are said, and the parser's exception is not chained). A local
org's credentials JSON (instance_url, ca_bundle, tokens beside the two keys) works as is: other keys are
ignored.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import yaml

from sonora_pipeline.salesforce.errors import ConfigError

KEY_FIELDS = ("consumer_key", "consumer_secret")


class ClientCredentials(NamedTuple):
    """(consumer_key, consumer_secret); unpacks like a tuple, and its repr shows neither."""

    consumer_key: str
    consumer_secret: str

    def __repr__(self) -> str:
        return "ClientCredentials(consumer_key=<hidden>, consumer_secret=<hidden>)"

    __str__ = __repr__


def read_secrets_file(path: Path | str) -> ClientCredentials:
    """The consumer key and secret in a YAML or JSON mapping at `path` (mode 600: only its owner may read)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"The secrets file {path} does not exist.",
                          "create it (mode 600) with consumer_key and consumer_secret, or correct credentials.file "
                          "in the registry of orgs.") from None
    except OSError as err:
        raise ConfigError(f"The secrets file {path} cannot be read ({err.strerror}).",
                          "make it a file readable by the user that runs the pipeline.") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"The secrets file {path} is not a regular file.",
                          "point credentials.file in the registry of orgs at the org's secrets file.")
    if info.st_mode & 0o077:
        raise ConfigError(f"The secrets file {path} can be read or written by other users (mode "
                          f"{stat.S_IMODE(info.st_mode):o}); secrets must be readable by their owner only.",
                          f"chmod 600 {path}")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"The secrets file {path} cannot be read ({reason}).",
                          "make it a UTF-8 text file readable by the user that runs the pipeline.") from None
    data = _parse(path, text)
    missing = [name for name in KEY_FIELDS if not isinstance(data.get(name), str) or not data[name].strip()]
    if missing:
        raise ConfigError(f"The secrets file {path} has no {' and no '.join(missing)} (or an empty one, or one "
                          "that is not text).",
                          f"add {', '.join(f'{name}: ...' for name in missing)} to it: the External Client App's "
                          "Consumer Key and Secret (Setup > External Client App Manager > your app > Settings > "
                          "OAuth Settings).")
    return ClientCredentials(data["consumer_key"].strip(), data["consumer_secret"].strip())


def _parse(path: Path, text: str) -> dict:
    """The file's mapping (JSON is YAML). A syntax error names its line only: the parser's own message quotes
    the file, which holds the secret."""
    try:
        data = json.loads(text)  # the usual form, ~50x faster than the YAML parser (a tick reads 1,000 of them)
    except ValueError:
        data = None
    try:
        data = yaml.safe_load(text) if data is None else data
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"The secrets file {path} is not valid YAML or JSON{where}.",
                          "write it as a mapping, e.g. {\"consumer_key\": \"...\", \"consumer_secret\": \"...\"} "
                          "or one 'consumer_key: ...' line per key.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The secrets file {path} is not a mapping of names to values.",
                          "write it as {\"consumer_key\": \"...\", \"consumer_secret\": \"...\"} (JSON) or one "
                          "'consumer_key: ...' line per key (YAML).")
    return data


def env_names(prefix: str) -> tuple[str, str]:
    """(`<PREFIX>_CONSUMER_KEY`, `<PREFIX>_CONSUMER_SECRET`)."""
    return f"{prefix}_CONSUMER_KEY", f"{prefix}_CONSUMER_SECRET"


def secrets_from_env(prefix: str, environ: Mapping[str, str] | None = None) -> ClientCredentials:
    """The consumer key and secret from `<PREFIX>_CONSUMER_KEY` / `<PREFIX>_CONSUMER_SECRET` (of `environ`,
    default the process's); an error names the variables that are unset or empty, never a value."""
    env = os.environ if environ is None else environ
    names = env_names(prefix)
    values = [(env.get(name) or "").strip() for name in names]
    missing = [name for name, value in zip(names, values) if not value]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set (or empty); the "
                          f"registry of orgs reads this org's credentials from {names[0]} and {names[1]}.",
                          f"set {' and '.join(missing)} in the environment of Dagster and the command line to the "
                          "External Client App's Consumer Key and Secret, or use credentials.file instead.")
    return ClientCredentials(*values)


def read_client_credentials(file: Path | str | None, env_prefix: str | None,
                            environ: Mapping[str, str] | None = None) -> ClientCredentials:
    """The credentials from the one source a registry entry names (`OrgEntry.credentials_file` or
    `.credentials_env`), so every caller reads them the same way."""
    if file is not None:
        return read_secrets_file(file)
    if env_prefix:
        return secrets_from_env(env_prefix, environ)
    raise ConfigError("No credentials source: neither a secrets file nor an environment prefix was given.",
                      "give the org's registry entry credentials: {file: ...} or credentials: {env: ...}.")
