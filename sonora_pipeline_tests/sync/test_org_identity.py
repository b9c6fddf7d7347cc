"""Which org a warehouse mirrors, and the reconcile's safety valve, against the local org.

The refusals themselves (another org's credentials on a synced warehouse, a purge over the valve) are in
test_bad_inputs.py, where they count as bad inputs; here: what is recorded, where the check sits, and the
Dagster job's override."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from sonora_pipeline.defs.jobs import salesforce_reconcile_job
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.localorg.ids import is_valid_id
from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.mirror.commit import prepare_schema
from sonora_pipeline.mirror.state import OrgIdentity
from sonora_pipeline.mirror.warehouse import write_connection
from sonora_pipeline.salesforce.auth import TokenManager
from sonora_pipeline.salesforce.errors import OrgMismatch
from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import describe_schema, sync_object
from sonora_pipeline_tests.sync.helpers import client_for, connection_for, differences, log
from sonora_pipeline_tests.sync.test_dagster_sync import resources_for

SYNC = SyncSettings(initial_import="all", lag_seconds=5)


def tables_of(db) -> dict[str, tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        names = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        return {f"{s}.{t}": conn.execute(f'SELECT count(*), bit_xor(hash(t)) FROM "{s}"."{t}" t').fetchone()
                for s, t in names}


def test_each_local_org_start_is_an_org_of_its_own():
    first, second = LocalOrg(records=0, generate=False), LocalOrg(records=0, generate=False)
    assert first.org_id != second.org_id
    assert all(o.org_id.startswith("00D") and len(o.org_id) == 18 and is_valid_id(o.org_id) for o in (first, second))
    assert LocalOrg(records=0, generate=False, org_id=first.org_id).org_id == first.org_id


def test_the_first_commit_records_the_org_the_credentials_reach(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(SYNC.lag_seconds + 3)
    client = client_for(org)
    sync_object(client, db, "Account", SYNC, window=None, partition_key=None, run_id="t", log=log)
    assert client.tokens.org_id == org.org_id  # from the token response's identity URL
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute("SELECT org_id, instance_url, first_seen_at FROM salesforce._org").fetchall()
    assert len(rows) == 1 and rows[0][:2] == (org.org_id, org.instance_url) and rows[0][2] is not None
    sync_object(client, db, "Contact", SYNC, window=None, partition_key=None, run_id="t", log=log)
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM salesforce._org").fetchone()[0] == 1


def test_every_commit_checks_the_org_in_its_own_transaction(org, tmp_path):
    """Past the check before the fetch (say another process recorded a different org meanwhile), the commit's
    own transaction still refuses, and leaves nothing of itself."""
    db = tmp_path / "m.duckdb"
    org.advance_clock(SYNC.lag_seconds + 3)
    client = client_for(org)
    sync_object(client, db, "Account", SYNC, window=None, partition_key=None, run_id="t", log=log)
    schema = describe_schema(client, "Contact")
    before = tables_of(db)
    other = OrgIdentity("00D000000000001AAA", "https://other.my.salesforce.com")
    with write_connection(db) as conn, pytest.raises(OrgMismatch) as raised:
        prepare_schema(conn, schema, org=other)
    assert org.org_id in str(raised.value) and "00D000000000001AAA" in str(raised.value)
    assert tables_of(db) == before and "salesforce.contact" not in before


def test_the_org_id_is_read_from_the_token_when_the_identity_url_says_nothing(org):
    """Salesforce prefixes access tokens with the 15-character org id: the fallback when `id` is missing."""
    tokens = TokenManager(connection_for(org), client_for(org).session)
    token = tokens.token()
    assert tokens.org_id == org.org_id
    tokens.identity_url = None
    assert tokens.org_id == org.org_id[:15] == token.split("!")[0]
    tokens.identity_url = "https://login.salesforce.com/id/not-an-org/005000000000001"
    assert tokens.org_id == org.org_id[:15]


def test_the_reconcile_job_stops_at_the_valve_and_a_run_config_override_lets_it_through(org, tmp_path):
    db = tmp_path / "m.duckdb"
    org.advance_clock(SYNC.lag_seconds + 3)
    for name in ("Account", "Case"):
        sync_object(client_for(org), db, name, SYNC, window=None, partition_key=None, run_id="t", log=log)
    cases = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Case" WHERE NOT "IsDeleted"').fetchall()]
    accounts = [r[0] for r in org.store.conn.execute('SELECT "Id" FROM "Account" WHERE NOT "IsDeleted"').fetchall()]
    for rid in cases[: len(cases) * 2 // 3]:
        org.hard_delete("Case", rid)
    org.hard_delete("Account", accounts[0])  # one of many: under the valve, marked in the same run
    assert SETTINGS.sync.max_purge_share == 0.5
    with dg.instance_for_test() as instance:
        refused = salesforce_reconcile_job.execute_in_process(resources=resources_for(org, db), instance=instance,
                                                              raise_on_error=False)
        assert not refused.success
        failure = next(e for e in refused.all_events if e.is_step_failure).step_failure_data
        text = failure.user_failure_data.description
        assert "reconciling Case would mark" in text and "Nothing was marked for Case" in text
        assert failure.user_failure_data.metadata["refused_objects"].value == "Case"
        with duckdb.connect(str(db), read_only=True) as conn:
            assert conn.execute("SELECT count(*) FROM salesforce.case WHERE _sonora_purged_at IS NOT NULL"
                                ).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM salesforce.account WHERE _sonora_purged_at IS NOT NULL"
                                ).fetchone()[0] == 1  # the other objects were reconciled
        done = salesforce_reconcile_job.execute_in_process(
            resources=resources_for(org, db), instance=instance,
            run_config={"ops": {"reconcile_deleted_ids": {"config": {"max_purge_share": 1.0}}}})
        assert done.success
    assert differences(org, db, "Case") == [] and differences(org, db, "Account") == []
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM salesforce.case WHERE _sonora_purged_at IS NOT NULL"
                            ).fetchone()[0] == len(cases) * 2 // 3
