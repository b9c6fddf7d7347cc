"""User is mirrored (the owners behind every owner_id), although it has no IsDeleted field: users are
deactivated, never deleted. The mirror must still equal the org field by field, follow changes, and answer
"is this row live?" through the same IsDeleted column as every other table."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from sonora_pipeline.settings import SyncSettings
from sonora_pipeline.sync.engine import reconcile_ids, sync_object
from sonora_pipeline_tests.sync.helpers import client_for, differences, log


def _sync_users(org, db, settings, *, window=None):
    return sync_object(client_for(org), db, "User", settings, window=window, partition_key=None, run_id="t",
                       log=log)


def _today_window(org):
    start = org.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def test_user_has_no_isdeleted_in_the_org_and_is_mirrored_field_by_field(org, tmp_path):
    assert org.catalog.object("User").field_named("IsDeleted") is None  # as in a real org
    db = tmp_path / "m.duckdb"
    settings = SyncSettings(initial_import="all", lag_seconds=5)
    org.advance_clock(settings.lag_seconds + 3)
    result = _sync_users(org, db, settings)
    users = org.store.count("User")
    assert users > 1 and result.rows_read == users and result.rows_upserted == users and result.deletes == 0
    assert differences(org, db, "User") == []
    with duckdb.connect(str(db), read_only=True) as conn:
        live = conn.execute('SELECT count(*) FROM salesforce."user" WHERE NOT "IsDeleted"').fetchone()[0]
        comment = conn.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = 'salesforce' "
                               "AND table_name = 'user' AND column_name = 'IsDeleted'").fetchone()[0]
    assert live == users
    assert "no IsDeleted in Salesforce" in comment


def test_the_active_initial_import_takes_every_user(org, tmp_path):
    """Owners of old records are often deactivated users: the 'active' import keeps them all."""
    db = tmp_path / "m.duckdb"
    settings = SyncSettings(initial_import="active", lag_seconds=5)
    org.advance_clock(settings.lag_seconds + 3)
    result = _sync_users(org, db, settings)
    assert result.rows_read == org.store.count("User")
    assert differences(org, db, "User") == []


def test_user_changes_reach_the_mirror_by_window(org, tmp_path):
    db = tmp_path / "m.duckdb"
    settings = SyncSettings(initial_import="all", lag_seconds=5, overlap_seconds=60)
    org.advance_clock(settings.lag_seconds + 3)
    _sync_users(org, db, settings)
    rows = org.store.conn.execute('SELECT "Id" FROM "User" WHERE "IsActive" ORDER BY "Id" LIMIT 2').fetchall()
    renamed, deactivated = rows[0][0], rows[1][0]
    org.update("User", renamed, {"FirstName": "Renamed", "LastName": "Owner", "Email": "renamed.owner@example.com"})
    org.update("User", deactivated, {"IsActive": False})
    new_user = org.create("User", {"Username": "new.owner@example.com.sonora", "LastName": "Newowner",
                                   "FirstName": "Nia", "Email": "new.owner@example.com"})
    org.advance_clock(settings.lag_seconds + 3)
    result = _sync_users(org, db, settings, window=_today_window(org))
    assert result.rows_upserted == 3 and result.deletes == 0
    assert differences(org, db, "User") == []
    with duckdb.connect(str(db), read_only=True) as conn:
        got = dict((r[0], r[1:]) for r in conn.execute(
            'SELECT "Id", "Name", "Email", "IsActive", "IsDeleted" FROM salesforce."user" WHERE "Id" IN (?, ?, ?)',
            [renamed, deactivated, new_user]).fetchall())
    assert got[renamed] == ("Renamed Owner", "renamed.owner@example.com", True, False)
    assert got[deactivated][2:] == (False, False)  # deactivated, not deleted
    assert got[new_user][:2] == ("Nia Newowner", "new.owner@example.com")


def test_reconciling_users_marks_only_users_that_are_gone(org, tmp_path):
    db = tmp_path / "m.duckdb"
    settings = SyncSettings(initial_import="all", lag_seconds=5)
    org.advance_clock(settings.lag_seconds + 3)
    _sync_users(org, db, settings)
    client = client_for(org)
    assert reconcile_ids(client, db, "User", run_id="r", log=log) == 0
    gone = org.store.conn.execute('SELECT "Id" FROM "User" WHERE NOT "IsActive" ORDER BY "Id" DESC LIMIT 1'
                                  ).fetchone() or org.store.conn.execute(
        'SELECT "Id" FROM "User" ORDER BY "Id" DESC LIMIT 1').fetchone()
    org.hard_delete("User", gone[0])
    assert reconcile_ids(client, db, "User", run_id="r2", log=log) == 1
    assert differences(org, db, "User") == []
    with duckdb.connect(str(db), read_only=True) as conn:
        row = conn.execute('SELECT "IsDeleted", _sonora_purged_at IS NOT NULL FROM salesforce."user" WHERE "Id" = ?',
                           [gone[0]]).fetchone()
    assert row == (True, True)
