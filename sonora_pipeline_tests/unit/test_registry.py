"""The registry of orgs (`SONORA_ORGS`): a good file, each wrong entry with its line and fix (the others still
load), whole-file errors, where relative paths point, secrets refused, and 1,000 orgs."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from sonora_pipeline.settings import OrgEntry, RegistryError, SettingsError, load_registry, registry_path
from sonora_pipeline.settings.registry import SECRETS_REFUSED

GOOD_ENTRY = """\
  good:
    instance_url: https://good.my.salesforce.com
    credentials: {env: GOOD}
"""


def write(tmp_path: Path, text: str, name: str = "orgs.yaml") -> Path:
    path = tmp_path / "conf" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_registry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, """\
        warehouse_root: warehouses
        orgs:
          acme:
            instance_url: https://acme.my.salesforce.com/
            credentials:
              file: secrets/acme.json
            settings: acme.yaml
            ca_bundle: ../certs/ca.pem
            api_version: 61.0
          globex_sandbox:
            instance_url: https://globex--uat.sandbox.my.salesforce.com
            credentials: {env: GLOBEX}
        """)
    registry = load_registry(path)
    conf = tmp_path / "conf"
    assert list(registry.orgs) == ["acme", "globex_sandbox"] and registry.problems == {}
    assert registry.orgs["acme"] == OrgEntry(
        name="acme", instance_url="https://acme.my.salesforce.com", credentials_file=conf / "secrets" / "acme.json",
        settings_path=conf / "acme.yaml", ca_bundle=str(tmp_path / "certs" / "ca.pem"), api_version="61.0")
    assert registry.orgs["globex_sandbox"].credentials_env == "GLOBEX"
    assert registry.orgs["globex_sandbox"].credentials_file is None
    assert registry.orgs["globex_sandbox"].settings_path is None
    # warehouse_root is relative to the registry's folder, whatever the current directory (the daemon, the code
    # server and the CLI start in different ones).
    assert registry.warehouse_root == conf / "warehouses"
    assert registry.org_folder("acme") == conf / "warehouses" / "acme"
    assert registry.warehouse_path("acme") == conf / "warehouses" / "acme" / "warehouse.duckdb"


def test_the_default_warehouse_root_and_an_empty_orgs_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry = load_registry(write(tmp_path, "orgs:\n"))
    assert registry.orgs == {} and registry.problems == {}
    assert registry.warehouse_root == registry.path.parent / "data" / "orgs"  # beside the registry, not the cwd


def test_registry_path_comes_from_sonora_orgs(monkeypatch, tmp_path):
    monkeypatch.delenv("SONORA_ORGS", raising=False)
    assert registry_path() is None
    monkeypatch.setenv("SONORA_ORGS", str(tmp_path / "orgs.yaml"))
    assert registry_path() == tmp_path / "orgs.yaml"


# (entry text, the place named, words the message must hold)
BAD_ENTRIES = {
    "upper-case name": ("""\
      Acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME}
    """, "line 8, column 3 (orgs.Acme)", ["not a valid org name", "lower-case"]),
    "reserved name": ("""\
      sonora:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME}
    """, "(orgs.sonora)", ["reserved", "sonora_org"]),
    "name too long": ("a" * 41 + """:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME}
    """, "line 8, column 3", ["1 to 40"]),
    "missing instance_url": ("""\
      acme:
        credentials: {env: ACME}
    """, "line 8, column 3 (orgs.acme)", ["instance_url is missing", "instance_url: https://"]),
    "instance_url not a URL": ("""\
      acme:
        instance_url: acme.my.salesforce.com
        credentials: {env: ACME}
    """, "line 9, column 19 (orgs.acme.instance_url)", ["not an https:// address"]),
    "instance_url with a password": ("""\
      acme:
        instance_url: https://admin:CANARYpw@acme.my.salesforce.com
        credentials: {env: ACME}
    """, "line 9, column 19 (orgs.acme.instance_url)", ["user name, password or query string", "secrets never"]),
    "no credentials": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
    """, "line 8, column 3 (orgs.acme)", ["credentials is missing", "exactly one of file or env"]),
    "both credentials sources": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME, file: acme.json}
    """, "line 10, column 5 (orgs.acme.credentials)", ["both file and env", "keep exactly one"]),
    "neither credentials source": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {}
    """, "line 10, column 5 (orgs.acme.credentials)", ["neither file nor env"]),
    "bad env prefix": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME-1}
    """, "(orgs.acme.credentials.env)", ["not an environment variable prefix", "ACME_CONSUMER_KEY"]),
    "unknown key": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME}
        setings: acme.yaml
    """, "line 11, column 5 (orgs.acme.setings)", ["unknown setting 'setings'", "did you mean 'settings'"]),
    "unknown credentials key": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME, fil: x}
    """, "(orgs.acme.credentials.fil)", ["did you mean 'file'"]),
    "bad api_version": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        credentials: {env: ACME}
        api_version: v62
    """, "line 11, column 18 (orgs.acme.api_version)", ["not a Salesforce API version", '"62.0"']),
    "entry not a mapping": ("""\
      acme: https://acme.my.salesforce.com
    """, "line 8, column 9 (orgs.acme)", ["must be a mapping"]),
    "key repeated in an entry": ("""\
      acme:
        instance_url: https://acme.my.salesforce.com
        instance_url: https://acme2.my.salesforce.com
        credentials: {env: ACME}
    """, "line 10, column 5 (orgs.acme.instance_url)", ["duplicate", "also set at line 9"]),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(BAD_ENTRIES), ids=list(BAD_ENTRIES))
def test_a_wrong_entry_is_skipped_with_its_line_and_fix_and_the_others_load(tmp_path, case):
    entry, place, words = BAD_ENTRIES[case]
    other = "  other:\n    instance_url: https://other.my.salesforce.com\n    credentials: {env: OTHER}\n"
    path = write(tmp_path, "orgs:\n" + GOOD_ENTRY + other + textwrap.indent(textwrap.dedent(entry), "  "))
    registry = load_registry(path)
    assert list(registry.orgs) == ["good", "other"]
    assert len(registry.problems) == 1
    name, problem = next(iter(registry.problems.items()))
    assert f"{path} line " in problem and place in problem, problem
    for word in words:
        assert word in problem, problem
    assert "CANARY" not in problem and "ACME-1" not in problem  # a value that may be a secret is never quoted
    assert registry.is_registered(name)  # a wrong entry is still registered: its data must not look removed


@pytest.mark.bad_input
@pytest.mark.secret_canary
def test_an_entry_holding_a_secret_is_refused_without_echoing_it(tmp_path):
    canary = "CANARYregistry9d8e7f"
    path = write(tmp_path, textwrap.dedent(f"""\
        orgs:
          leaky:
            instance_url: https://leaky.my.salesforce.com
            credentials:
              env: LEAKY
              consumer_secret: {canary}
          tokened:
            instance_url: https://t.my.salesforce.com
            refresh_token: {canary}
            credentials: {{file: t.json}}
        """) + GOOD_ENTRY)
    registry = load_registry(path)
    assert list(registry.orgs) == ["good"]
    assert SECRETS_REFUSED in registry.problems["leaky"]
    assert "line 6, column 7 (orgs.leaky.credentials.consumer_secret)" in registry.problems["leaky"]
    assert "line 9, column 5 (orgs.tokened.refresh_token)" in registry.problems["tokened"]
    assert canary not in repr(registry)


WHOLE_FILE = {
    "not YAML": ("orgs:\n  acme: [unclosed\n", ["line 3, column 1: not valid YAML"]),
    "no orgs mapping": ("warehouse_root: data\n", ["line 1, column 1", "needs an 'orgs:' mapping"]),
    "a list, not a mapping": ("- acme\n- globex\n", ["needs an 'orgs:' mapping"]),
    "orgs is a list": ("orgs:\n  - acme\n", ["line 2, column 3 (orgs)", "'orgs' must be a mapping"]),
    "an org named twice": ("orgs:\n" + GOOD_ENTRY + GOOD_ENTRY,
                           ["line 5, column 3 (orgs.good)", "duplicate name 'good', also set at line 2"]),
    "unknown top-level key": ("warehose_root: x\norgs:\n" + GOOD_ENTRY,
                              ["line 1, column 1 (warehose_root)", "did you mean 'warehouse_root'"]),
    "warehouse_root not a path": ("warehouse_root: [a]\norgs:\n" + GOOD_ENTRY,
                                  ["line 1, column 17 (warehouse_root)", "must be a folder path"]),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(WHOLE_FILE), ids=list(WHOLE_FILE))
def test_a_file_that_is_no_registry_raises_with_the_fix(tmp_path, case):
    text, words = WHOLE_FILE[case]
    path = write(tmp_path, text)
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert isinstance(err.value, SettingsError)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value), str(err.value)


@pytest.mark.bad_input
def test_a_missing_registry_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SONORA_ORGS", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(RegistryError, match=r"nowhere.yaml \(from SONORA_ORGS\) does not exist. Fix: point SONORA_ORGS"):
        load_registry()
    monkeypatch.delenv("SONORA_ORGS")
    with pytest.raises(RegistryError, match="SONORA_ORGS is not set"):
        load_registry()


def test_an_edit_is_seen_at_the_next_load(tmp_path):
    path = write(tmp_path, "orgs:\n" + GOOD_ENTRY)
    first = load_registry(path)
    first.orgs.clear()  # a caller's change to its copy does not reach the cache
    assert list(load_registry(path).orgs) == ["good"]
    stat = path.stat()
    path.write_text("orgs:\n" + GOOD_ENTRY.replace("good", "gold"))  # same size, and the same mtime below
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert list(load_registry(path).orgs) == ["gold"]  # the ctime moved
    replacement = path.with_name("new.yaml")  # an editor's save: a new file renamed over the old one
    replacement.write_text("orgs:\n" + GOOD_ENTRY + GOOD_ENTRY.replace("good", "newer"))
    os.replace(replacement, path)
    assert list(load_registry(path).orgs) == ["good", "newer"]


def test_unregistered_folders_are_listed_and_wrong_entries_are_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "orgs:\n" + GOOD_ENTRY + "  broken:\n    instance_url: https://b\n")
    registry = load_registry(path)
    for name in ("good", "broken", "gone", "Not_An_Org"):
        (registry.warehouse_root / name).mkdir(parents=True)
    (registry.warehouse_root / "stray.txt").write_text("")
    assert "broken" in registry.problems
    assert registry.unregistered_folders() == ["gone"]


def test_a_thousand_orgs_load_quickly(tmp_path):
    lines = ["warehouse_root: data/orgs", "orgs:"]
    for i in range(1000):
        lines += [f"  org_{i:04d}:", f"    instance_url: https://org{i}.my.salesforce.com",
                  f"    credentials: {{file: secrets/org_{i}.json}}", f"    settings: settings/org_{i}.yaml"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    started = time.perf_counter()
    registry = load_registry(path)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = load_registry(path)
    cached = time.perf_counter() - started
    assert len(registry.orgs) == len(again.orgs) == 1000 and not registry.problems
    assert registry.orgs["org_0999"].settings_path == tmp_path / "conf" / "settings" / "org_999.yaml"
    print(f"1,000-org registry: {cold * 1000:.0f} ms to read, {cached * 1000:.2f} ms from the cache")
    assert cached < cold  # the sensor's tick re-reads it; a file that did not change is not parsed again
