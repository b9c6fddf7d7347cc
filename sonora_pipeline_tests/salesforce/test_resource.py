"""The Dagster resource owns the org's state for one run (one token, one HTTP session, one API budget, closed at
the end), the SALESFORCE_* variables are read in one place, and `local` reaches the local org only through the
credentials file it writes."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from sonora_pipeline.defs.resources import SalesforceResource, salesforce_resource
from sonora_pipeline.salesforce.environment import connection_from_env
from sonora_pipeline.salesforce.errors import ConfigError
from sonora_pipeline.settings import load_settings
from sonora_pipeline_tests.sync.helpers import OBJECTS
from sonora_pipeline_tests.sync.test_dagster_sync import LAG, materialize, metadata_of, today_key


def resource_for(org, **config) -> SalesforceResource:
    c = org.credentials
    return SalesforceResource(instance_url=c.instance_url, consumer_key=c.consumer_key,
                              consumer_secret=c.consumer_secret, ca_bundle=c.ca_bundle, **config)


def test_a_run_of_several_objects_asks_the_org_for_one_token(org, tmp_path):
    issued_before = org.expire_tokens()  # the org's count of access tokens issued so far
    org.advance_clock(LAG + 3)
    with dg.instance_for_test() as instance:
        result = materialize(org, tmp_path / "m.duckdb", instance, partition_key=today_key(org))
    synced = metadata_of(result)
    assert len(synced) >= len(OBJECTS) > 1 and all(m["sonora/api_calls"] > 0 for m in synced.values())
    assert org.expire_tokens() - issued_before == 1


def test_clients_of_one_run_share_the_session_token_and_budget_and_teardown_closes_them(org):
    with dg.build_resources({"salesforce": resource_for(org)}) as resources:
        first, quick = resources.salesforce.client(), resources.salesforce.client(fail_fast=True)
        assert first.count("SELECT COUNT() FROM Account") == quick.count("SELECT COUNT() FROM Account") > 0
        assert first.tokens is quick.tokens and first.session is quick.session and first.budget is quick.budget
        assert (first.api_calls, quick.api_calls) == (1, 1)  # each client counts its own calls (asset metadata)
        assert (first.timeout, quick.timeout) == ((10.0, 120.0), (3.0, 10.0))
        pools = first.session.adapters["https://"].poolmanager.pools
        assert len(pools) == 1
        assert first.tokens.fetches == 1
    assert len(pools) == 0  # teardown closed the run's connections


def test_the_budget_numbers_come_from_the_resource_config_or_else_the_settings_file(org):
    with dg.build_resources({"salesforce": resource_for(org, max_quota_share=0.5, quota_pause_seconds=7.0),
                             "defaults": resource_for(org)}) as resources:
        configured, default = resources.salesforce.client().budget, resources.defaults.client().budget
    assert (configured.max_share, configured.pause_poll_seconds) == (0.5, 7.0)
    sync = load_settings().sync
    assert (default.max_share, default.pause_poll_seconds) == (sync.max_quota_share, sync.quota_pause_seconds)
    assert default.pause_poll_seconds == 0.5  # the suite's settings file, not the 300 s default


def test_the_environment_names_the_org_in_one_place(org):
    c = org.credentials
    connection = connection_from_env({"SALESFORCE_INSTANCE_URL": c.instance_url, "SALESFORCE_CONSUMER_KEY":
                                      c.consumer_key, "SALESFORCE_CONSUMER_SECRET": c.consumer_secret,
                                      "SALESFORCE_CA_BUNDLE": c.ca_bundle})
    assert (connection.instance_url, connection.consumer_key, connection.consumer_secret, connection.ca_bundle) == \
        (c.instance_url, c.consumer_key, c.consumer_secret, c.ca_bundle)
    with pytest.raises(ConfigError) as unset:
        connection_from_env({"SALESFORCE_CONSUMER_KEY": c.consumer_key})
    assert "SALESFORCE_INSTANCE_URL is not set" in str(unset.value) and "=local" in str(unset.value)


def test_local_reaches_the_org_named_in_the_credentials_file_and_says_how_to_start_one(org, tmp_path, monkeypatch):
    home = tmp_path / "home"
    for name in ("SALESFORCE_CONSUMER_KEY", "SALESFORCE_CONSUMER_SECRET", "SALESFORCE_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "local")
    monkeypatch.setenv("SONORA_HOME", str(home))
    with dg.build_resources({"salesforce": salesforce_resource()}) as resources:
        with pytest.raises(ConfigError) as none_running:
            resources.salesforce.client()
    assert "no local org is running" in none_running.value.message
    assert str(home / "localorg.json") in none_running.value.message
    assert "sonora-pipeline localorg" in none_running.value.fix and "sonora-pipeline demo" in none_running.value.fix
    assert not home.exists()  # looked for, never created

    home.mkdir()
    (home / "localorg.json").write_text(json.dumps(org.credentials.as_dict()))  # what `localorg` writes
    with dg.build_resources({"salesforce": salesforce_resource()}) as resources:
        client = resources.salesforce.client()
        assert client.connection.instance_url == org.instance_url
        assert client.count("SELECT COUNT() FROM Account") > 0

    stale = {**org.credentials.as_dict(), "instance_url": "https://127.0.0.1:9"}  # an org that was killed
    (home / "localorg.json").write_text(json.dumps(stale))
    with dg.build_resources({"salesforce": salesforce_resource()}) as resources, pytest.raises(ConfigError):
        resources.salesforce.client()
