"""An org's client credentials from its secrets file or its environment prefix: the mode check with its chmod,
each missing piece named, a local org's credentials JSON read as is, and no value in any message or repr."""

from __future__ import annotations

import json

import pytest

from sonora_pipeline.salesforce.errors import ConfigError
from sonora_pipeline.salesforce.secrets import read_secrets_file, secrets_from_env

CANARY = "CANARYorgsecret4c1d0e"


def secrets(tmp_path, text: str, mode: int = 0o600, name: str = "acme.json"):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_local_orgs_credentials_json_is_read_as_is(tmp_path):
    path = secrets(tmp_path, json.dumps({"instance_url": "https://127.0.0.1:9443", "consumer_key": "3MVGkey",
                                         "consumer_secret": CANARY, "ca_bundle": "/x/ca.pem", "admin_token": "t",
                                         "refresh_token": "r"}))
    key, secret = read_secrets_file(path)
    assert (key, secret) == ("3MVGkey", CANARY)
    assert CANARY not in repr(read_secrets_file(path)) and CANARY not in str(read_secrets_file(path))


def test_a_yaml_secrets_file(tmp_path):
    path = secrets(tmp_path, f"consumer_key: 3MVGkey\nconsumer_secret: '{CANARY}'\n", name="acme.yaml")
    assert read_secrets_file(str(path)) == ("3MVGkey", CANARY)


@pytest.mark.bad_input
@pytest.mark.secret_canary
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused_with_the_chmod(tmp_path, mode):
    path = secrets(tmp_path, json.dumps({"consumer_key": "k", "consumer_secret": CANARY}), mode=mode)
    with pytest.raises(ConfigError) as err:
        read_secrets_file(path)
    assert f"chmod 600 {path}" in str(err.value)
    assert f"mode {mode:o}" in str(err.value)
    assert CANARY not in str(err.value)


BAD_FILES = {
    "no consumer_secret": ('{"consumer_key": "k"}', ["no consumer_secret", "add consumer_secret: ..."]),
    "both missing": ('{"instance_url": "https://x"}', ["no consumer_key and no consumer_secret"]),
    "empty key": (f'{{"consumer_key": " ", "consumer_secret": "{CANARY}"}}', ["no consumer_key"]),
    "key not text": (f'{{"consumer_key": 12, "consumer_secret": "{CANARY}"}}', ["not text"]),
    "not a mapping": (f'["{CANARY}"]', ["not a mapping"]),
    "not YAML or JSON": (f'{{"consumer_key": "k", "consumer_secret": "{CANARY}"', ["not valid YAML or JSON",
                                                                                   "at line 1"]),
    "empty file": ("", ["not a mapping"]),
}


@pytest.mark.bad_input
@pytest.mark.secret_canary
@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_secrets_file_is_named_with_the_fix_and_never_echoed(tmp_path, case):
    text, words = BAD_FILES[case]
    path = secrets(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        read_secrets_file(path)
    message = str(err.value)
    assert str(path) in message and "Fix:" in message
    for word in words:
        assert word in message, message
    assert CANARY not in message and CANARY not in repr(err.value)
    # No parser error (whose excerpt of the file holds the secret) chained into a traceback.
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)


@pytest.mark.bad_input
def test_a_missing_secrets_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*correct credentials.file"):
        read_secrets_file(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secrets_file(tmp_path)


def test_secrets_from_the_environment():
    env = {"ACME_CONSUMER_KEY": " 3MVGkey ", "ACME_CONSUMER_SECRET": CANARY}
    credentials = secrets_from_env("ACME", env)
    assert credentials == ("3MVGkey", CANARY)
    assert CANARY not in repr(credentials)


@pytest.mark.bad_input
@pytest.mark.secret_canary
def test_missing_variables_are_named_and_no_value_is_shown():
    with pytest.raises(ConfigError) as err:
        secrets_from_env("ACME", {"ACME_CONSUMER_KEY": CANARY, "ACME_CONSUMER_SECRET": "  "})
    assert "ACME_CONSUMER_SECRET is not set (or empty)" in str(err.value)
    assert "ACME_CONSUMER_KEY" not in str(err.value).split(";")[0]
    assert CANARY not in str(err.value)
    with pytest.raises(ConfigError, match="ACME_CONSUMER_KEY and ACME_CONSUMER_SECRET are not set"):
        secrets_from_env("ACME", {})


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("GLOBEX_CONSUMER_KEY", "k")
    monkeypatch.setenv("GLOBEX_CONSUMER_SECRET", CANARY)
    assert secrets_from_env("GLOBEX") == ("k", CANARY)


def test_the_one_source_a_registry_entry_names_is_read(tmp_path):
    from sonora_pipeline.salesforce.secrets import read_client_credentials

    path = secrets(tmp_path, json.dumps({"consumer_key": "from-file", "consumer_secret": CANARY}))
    env = {"ACME_CONSUMER_KEY": "from-env", "ACME_CONSUMER_SECRET": CANARY}
    assert read_client_credentials(path, None, env) == ("from-file", CANARY)
    assert read_client_credentials(None, "ACME", env) == ("from-env", CANARY)
    with pytest.raises(ConfigError, match="No credentials source"):
        read_client_credentials(None, None, env)
