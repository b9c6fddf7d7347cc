"""Many local orgs in one process (`LocalOrgFleet`): each answers on its own port as its own org (org id,
credentials, records, quota), none accepts another's credentials, and stop() closes every port."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from sonora_pipeline.cli.localorg import start_demo_fleet
from sonora_pipeline.localorg.fleet import LocalOrgFleet, OrgSpec, tiny_specs

V = "62.0"


def _session(fleet: LocalOrgFleet) -> requests.Session:
    session = requests.Session()
    session.verify = fleet.ca_bundle  # one CA file for the whole fleet
    session.trust_env = False  # an environment REQUESTS_CA_BUNDLE would replace `verify`
    return session


def _token(session: requests.Session, url: str, key: str, secret: str) -> requests.Response:
    return session.post(f"{url}/services/oauth2/token", data={"grant_type": "client_credentials"}, auth=(key, secret))


def _query(session: requests.Session, url: str, token: str, soql: str) -> requests.Response:
    return session.get(f"{url}/services/data/v{V}/query", params={"q": soql},
                       headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def three_orgs(tmp_path):
    specs = [
        OrgSpec(name="acme", records=60, seed=1),
        OrgSpec(name="globex", records=30, seed=2, custom_fields=False),
        OrgSpec(name="initech", records=10, seed=3, daily_api_requests=3),
    ]
    with LocalOrgFleet(specs, state_dir=tmp_path / "fleet") as fleet:
        yield fleet


def test_each_org_answers_as_itself(three_orgs):
    session = _session(three_orgs)
    seen_ids, seen_ports = set(), set()
    for name in ("acme", "globex", "initech"):
        org = three_orgs.org(name)
        creds = org.credentials
        reply = _token(session, creds.instance_url, creds.consumer_key, creds.consumer_secret)
        assert reply.status_code == 200, reply.text
        token = reply.json()
        assert token["instance_url"] == creds.instance_url
        assert f"/id/{org.org_id}/" in token["id"]
        accounts = _query(session, creds.instance_url, token["access_token"], "SELECT Id, Name FROM Account")
        assert accounts.status_code == 200, accounts.text
        assert accounts.json()["totalSize"] == org.store.count("Account", include_deleted=False)
        seen_ids.add(org.org_id)
        seen_ports.add(urlsplit(creds.instance_url).port)
    assert len(seen_ids) == 3 and len(seen_ports) == 3
    # shapes differ: the standard-only org has no custom field, the others do
    custom = _query(session, three_orgs.org("acme").instance_url,
                    _token(session, three_orgs.org("acme").instance_url, three_orgs.org("acme").credentials.consumer_key,
                           three_orgs.org("acme").credentials.consumer_secret).json()["access_token"],
                    "SELECT Id FROM Subscription__c LIMIT 1")
    assert custom.status_code == 200, custom.text
    assert three_orgs.org("globex").catalog.object("Subscription__c") is None


def test_one_orgs_credentials_are_refused_by_another(three_orgs):
    session = _session(three_orgs)
    acme, globex = three_orgs.org("acme"), three_orgs.org("globex")
    refused = _token(session, globex.instance_url, acme.credentials.consumer_key, acme.credentials.consumer_secret)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client_id"
    # a token acme issued is no session on globex either
    token = _token(session, acme.instance_url, acme.credentials.consumer_key,
                   acme.credentials.consumer_secret).json()["access_token"]
    reply = _query(session, globex.instance_url, token, "SELECT Id FROM Account")
    assert reply.status_code == 401 and reply.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_one_orgs_spent_quota_leaves_the_others_alone(three_orgs):
    session = _session(three_orgs)
    starved, other = three_orgs.org("initech"), three_orgs.org("acme")
    tokens = {org.org_id: _token(session, org.instance_url, org.credentials.consumer_key,
                                 org.credentials.consumer_secret).json()["access_token"] for org in (starved, other)}
    codes = [_query(session, starved.instance_url, tokens[starved.org_id], "SELECT COUNT() FROM Account").status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 403]
    for _ in range(4):
        reply = _query(session, other.instance_url, tokens[other.org_id], "SELECT COUNT() FROM Account")
        assert reply.status_code == 200, reply.text
    assert other.quota.snapshot().used == 4 and starved.quota.snapshot().used == 3


def test_each_org_keeps_its_admin_api_on_its_own_port(three_orgs):
    session = _session(three_orgs)
    acme, globex = three_orgs.org("acme"), three_orgs.org("globex")
    state = session.post(f"{acme.instance_url}/__localorg/state", json={},
                         headers={"X-LocalOrg-Admin": acme.admin_token})
    assert state.status_code == 200 and state.json()["org_id"] == acme.org_id
    wrong = session.post(f"{globex.instance_url}/__localorg/state", json={},
                         headers={"X-LocalOrg-Admin": acme.admin_token})
    assert wrong.status_code == 401


def test_stop_closes_every_port(tmp_path):
    fleet = LocalOrgFleet(tiny_specs(3, records=5), state_dir=tmp_path).start()
    session = _session(fleet)
    org = fleet.org("org01")
    assert _token(session, org.instance_url, org.credentials.consumer_key, org.credentials.consumer_secret).ok
    ports = [urlsplit(o.instance_url).port for o in fleet]
    fleet.stop()
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    # the kept-alive connection of the session is closed too: nothing answers after stop()
    with pytest.raises(requests.ConnectionError):
        _token(session, org.instance_url, org.credentials.consumer_key, org.credentials.consumer_secret)


def test_two_hundred_tiny_orgs_in_one_process_all_answer(tmp_path):
    with LocalOrgFleet(tiny_specs(200, records=5), state_dir=tmp_path) as fleet:
        session = _session(fleet)
        org_ids = set()
        for org in fleet:
            reply = _token(session, org.instance_url, org.credentials.consumer_key, org.credentials.consumer_secret)
            assert reply.status_code == 200, (org.instance_url, reply.text)
            org_ids.add(reply.json()["id"].split("/")[-2])
        assert len(org_ids) == 200 and len({o.credentials.consumer_key for o in fleet}) == 200


def test_credentials_files_and_registry(tmp_path):
    standard_only = tmp_path / "standard.yaml"
    fleet, registry = start_demo_fleet(tmp_path / "orgs", records=20, settings={"globex": standard_only})
    try:
        folder = tmp_path / "orgs"
        data = yaml.safe_load(registry.read_text())
        assert set(data["orgs"]) == {"acme", "globex", "initech"}
        assert (folder / data["orgs"]["globex"]["settings"]).resolve() == standard_only
        assert "settings" not in data["orgs"]["acme"]
        index = json.loads((folder / "index.json").read_text())
        session = _session(fleet)
        for name, entry in data["orgs"].items():
            secrets_file = folder / entry["credentials"]["file"]
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            creds = json.loads(secrets_file.read_text())
            assert set(fleet.org(name).credentials.as_dict()) <= set(creds)
            assert creds["org_id"] == index["orgs"][name]["org_id"] == fleet.org(name).org_id
            assert (folder / entry["ca_bundle"]).resolve() == (folder / "localorg-ca.pem").resolve()
            session.verify = str(folder / entry["ca_bundle"])
            reply = _token(session, entry["instance_url"], creds["consumer_key"], creds["consumer_secret"])
            assert reply.status_code == 200, reply.text
        assert fleet.org("globex").catalog.object("Subscription__c") is None
        assert fleet.org("initech").quota.snapshot().max < fleet.org("acme").quota.snapshot().max
    finally:
        fleet.stop()
    # the secrets go with the orgs they open; the registry stays
    assert not list(folder.glob("*.json")) and registry.exists()


@pytest.mark.parametrize(("specs", "fix"), [
    ([OrgSpec(name="Acme")], "lower-case letter"),
    ([OrgSpec(name="acme"), OrgSpec(name="acme")], "appears twice"),
    ([OrgSpec(name="a", org_id="00D5g0000000001AAA"), OrgSpec(name="b", org_id="00D5g0000000001AAA")], "same org_id"),
    ([OrgSpec(name="acme", shape="b2c")], "shape 'b2c'"),
    ([OrgSpec(name="acme", records=-1)], "records must be"),
])
def test_bad_specs_are_refused_before_anything_starts(specs, fix):
    with pytest.raises(ValueError, match=fix):
        LocalOrgFleet(specs).start()


def test_orgs_of_one_shape_start_alike_and_part_at_their_first_write(tmp_path):
    """Orgs with the same records share them until one is written to; then only that one changes."""
    with LocalOrgFleet(tiny_specs(3, records=40), state_dir=tmp_path) as fleet:
        first, second, third = (fleet.org(name) for name in fleet.names)
        accounts = first.store.count("Account")
        assert accounts > 0 and second.store.count("Account") == third.store.count("Account") == accounts
        created = first.create("Account", {"Name": "Only in the first org"})
        second.add_field("Account", "Only_Here__c", "string", "Only Here", length=20)
        some_id = _query_ids(fleet, third, "SELECT Id FROM Account ORDER BY Id LIMIT 1")[0]
        third.update("Account", some_id, {"Name": "Renamed in the third org"})

        assert first.store.get("Account", created)["Name"] == "Only in the first org"
        assert second.store.get("Account", created) is None and third.store.get("Account", created) is None
        assert first.store.count("Account") == accounts + 1 and second.store.count("Account") == accounts
        assert second.catalog.object("Account").field_named("Only_Here__c") is not None
        assert first.catalog.object("Account").field_named("Only_Here__c") is None
        assert _query_ids(fleet, second, "SELECT Id FROM Account WHERE Only_Here__c = null LIMIT 1")
        assert third.store.get("Account", some_id)["Name"] == "Renamed in the third org"
        assert first.store.get("Account", some_id)["Name"] != "Renamed in the third org"
        # a new record's Id is fresh in each org (each continues the generator's numbering on its own)
        assert second.create("Account", {"Name": "x"}) == created


def _query_ids(fleet: LocalOrgFleet, org, soql: str) -> list[str]:
    session = _session(fleet)
    token = _token(session, org.instance_url, org.credentials.consumer_key,
                   org.credentials.consumer_secret).json()["access_token"]
    reply = _query(session, org.instance_url, token, soql)
    assert reply.status_code == 200, reply.text
    return [r["Id"] for r in reply.json()["records"]]


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "localorg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_serves_a_fleet_spec_in_the_background_until_killed(tmp_path):
    spec = tmp_path / "fleet.yaml"
    spec.write_text("orgs:\n  - {name: acme, records: 30, seed: 1}\n  - {name: globex, custom_fields: false}\n"
                    "  - {name: initech, daily_api_requests: 5}\n")
    folder = tmp_path / "orgs"
    done = _cli("--fleet", str(spec), "--records", "10", "--detach", "--fleet-dir", str(folder), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    index = json.loads((folder / "index.json").read_text())
    try:
        registry = yaml.safe_load((folder / "orgs.yaml").read_text())
        assert list(registry["orgs"]) == ["acme", "globex", "initech"]
        session = requests.Session()
        session.trust_env = False
        for name, entry in registry["orgs"].items():
            session.verify = str(folder / entry["ca_bundle"])
            creds = json.loads((folder / entry["credentials"]["file"]).read_text())
            reply = _token(session, entry["instance_url"], creds["consumer_key"], creds["consumer_secret"])
            assert reply.status_code == 200, reply.text
            assert f"/id/{index['orgs'][name]['org_id']}/" in reply.json()["id"]
        again = _cli("--orgs", "2", "--fleet-dir", str(folder), cwd=tmp_path)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        os.kill(index["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while (folder / "acme.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (folder / "acme.json").exists() and not (folder / "index.json").exists()


@pytest.mark.parametrize(("args", "named"), [
    (["--fleet", "fleet.yaml"], "recrods"),
    (["--org-names", "acme,Globex"], "'Globex'"),
    (["--orgs", "3", "--port", "8443"], "--port"),
])
def test_cli_refuses_a_bad_fleet_before_anything_is_written(tmp_path, args, named):
    (tmp_path / "fleet.yaml").write_text("- {name: acme, recrods: 30}\n")
    done = _cli(*args, "--fleet-dir", str(tmp_path / "orgs"), cwd=tmp_path)
    assert done.returncode == 2
    assert named in done.stderr and "Fix:" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "orgs").exists()


def test_an_all_or_none_write_over_the_api_changes_only_its_own_org(tmp_path):
    with LocalOrgFleet(tiny_specs(2, records=40), state_dir=tmp_path) as fleet:
        writer, other = fleet.org("org01"), fleet.org("org02")
        session = _session(fleet)
        token = _token(session, writer.instance_url, writer.credentials.consumer_key,
                       writer.credentials.consumer_secret).json()["access_token"]
        reply = session.post(f"{writer.instance_url}/services/data/v{V}/composite/sobjects",
                             headers={"Authorization": f"Bearer {token}"},
                             json={"allOrNone": True, "records": [
                                 {"attributes": {"type": "Account"}, "Name": "Written over the API"},
                                 {"attributes": {"type": "Account"}, "Name": "And its sibling"}]})
        assert reply.status_code == 200 and all(r["success"] for r in reply.json()), reply.text
        soql = "SELECT Id FROM Account WHERE Name = 'Written over the API'"
        assert len(_query_ids(fleet, writer, soql)) == 1
        assert _query_ids(fleet, other, soql) == []
