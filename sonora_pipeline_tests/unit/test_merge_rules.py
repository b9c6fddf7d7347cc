"""The mirror's merge rules on a DuckDB file of the test's own: upsert by Id unless older, soft delete keeps the
last known values, undelete resurrects, duplicates keep the newest, a short load commits nothing, the cursor
only moves over contiguous reads, and the purge valve. No org: the pages are written by hand."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from sonora_pipeline.mirror.commit import IncompleteData, commit_purges, commit_window
from sonora_pipeline.mirror.spool import Spool
from sonora_pipeline.mirror.state import OrgIdentity, read_state
from sonora_pipeline.salesforce.describe import schema_from_describe
from sonora_pipeline.salesforce.errors import OrgMismatch, TooManyPurges

SCHEMA = schema_from_describe({"name": "Thing__c", "label": "Thing", "fields": [
    {"name": "Id", "type": "id", "label": "Id"},
    {"name": "SystemModstamp", "type": "datetime", "label": "System Modstamp"},
    {"name": "IsDeleted", "type": "boolean", "label": "Deleted"},
    {"name": "Name", "type": "string", "label": "Name"},
]})
NO_SOFT_DELETE = schema_from_describe({"name": "Gadget__c", "label": "Gadget", "fields": [
    {"name": "Id", "type": "id", "label": "Id"},
    {"name": "SystemModstamp", "type": "datetime", "label": "System Modstamp"},
    {"name": "Name", "type": "string", "label": "Name"},
]})
A, B, C = "a0S000000000001AAA", "a0S000000000002AAA", "a0S000000000003AAA"


@pytest.fixture
def mirror(tmp_path):
    """commit(rows, ...) loads one page of (Id, 'YYYY-MM-DD HH:MM', IsDeleted, Name) rows; rows() reads back."""
    conn = duckdb.connect(str(tmp_path / "m.duckdb"))

    class Mirror:
        def commit(self, rows, *, schema=SCHEMA, announced=None, read_from=None, read_to=None, advance=False):
            columns = schema.field_names
            spool = Spool.create(tmp_path / "spool", schema.object_name, columns)
            lines = [",".join(columns)]
            for rid, stamp, deleted, name in rows:
                values = {"Id": rid, "SystemModstamp": f"{stamp.replace(' ', 'T')}:00.000Z",
                          "IsDeleted": "true" if deleted else "false", "Name": name or ""}
                lines.append(",".join(f'"{values[c]}"' if values[c] else "" for c in columns))
            spool.add_csv_page(("\n".join(lines) + "\n").encode(), len(rows) if announced is None else announced)
            return commit_window(conn, schema, spool, kind="window", method="bulk", partition_key=None,
                                 window_start=None, window_end=None, read_from=read_from, read_to=read_to,
                                 api_calls=1, run_id="t", advance_cursor=advance)

        def rows(self, table="thing__c"):
            return {r[0]: r[1:] for r in conn.execute(
                f'SELECT "Id", strftime("SystemModstamp", \'%Y-%m-%d %H:%M\'), "IsDeleted", "Name", '
                f'strftime(_sonora_deleted_at, \'%Y-%m-%d %H:%M\'), _sonora_purged_at IS NOT NULL '
                f'FROM salesforce."{table}"').fetchall()}

        conn_ = conn

    yield Mirror()
    conn.close()


def test_a_first_load_inserts_live_and_deleted_rows(mirror):
    result = mirror.commit([(A, "2026-01-01 10:00", False, "Acme"), (B, "2026-01-01 11:00", True, "Gone")])
    assert (result.rows_read, result.rows_upserted, result.deletes) == (2, 1, 1)
    assert mirror.rows() == {A: ("2026-01-01 10:00", False, "Acme", None, False),
                             B: ("2026-01-01 11:00", True, "Gone", "2026-01-01 11:00", False)}


def test_a_newer_version_updates_and_an_older_one_never_rolls_back(mirror):
    mirror.commit([(A, "2026-01-01 10:00", False, "Acme")])
    newer = mirror.commit([(A, "2026-01-02 10:00", False, "Acme Corp")])
    assert newer.rows_upserted == 1
    older = mirror.commit([(A, "2026-01-01 12:00", False, "Stale")])  # an old window re-read later
    assert older.rows_upserted == 0
    assert mirror.rows()[A] == ("2026-01-02 10:00", False, "Acme Corp", None, False)


def test_a_row_re_read_by_an_overlap_is_not_counted_again(mirror):
    mirror.commit([(A, "2026-01-01 10:00", False, "Acme"), (B, "2026-01-01 10:00", False, "Beta")])
    again = mirror.commit([(A, "2026-01-01 10:00", False, "Acme"), (C, "2026-01-01 10:05", False, "Gamma")])
    assert (again.rows_read, again.rows_upserted, again.deletes) == (2, 1, 0)  # only C is new
    assert set(mirror.rows()) == {A, B, C}


def test_a_delete_keeps_the_last_known_values_and_is_counted_once(mirror):
    mirror.commit([(A, "2026-01-01 10:00", False, "Acme")])
    # Salesforce blanks some fields of a deleted record: the mirror keeps what it knew.
    deleted = mirror.commit([(A, "2026-01-02 09:00", True, None)])
    assert (deleted.rows_upserted, deleted.deletes) == (0, 1)
    assert mirror.rows()[A] == ("2026-01-02 09:00", True, "Acme", "2026-01-02 09:00", False)
    seen_again = mirror.commit([(A, "2026-01-02 09:30", True, None)])  # still in the recycle bin
    assert seen_again.deletes == 0
    assert mirror.rows()[A] == ("2026-01-02 09:30", True, "Acme", "2026-01-02 09:00", False)  # first seen kept


def test_an_undeleted_row_comes_back_live_and_counts_as_an_upsert(mirror):
    mirror.commit([(A, "2026-01-01 10:00", False, "Acme")])
    mirror.commit([(A, "2026-01-02 09:00", True, None)])
    back = mirror.commit([(A, "2026-01-03 08:00", False, "Acme again")])
    assert (back.rows_upserted, back.deletes) == (1, 0)
    assert mirror.rows()[A] == ("2026-01-03 08:00", False, "Acme again", None, False)


def test_duplicates_in_one_load_keep_the_newest_version(mirror):
    result = mirror.commit([(A, "2026-01-01 10:00", False, "old"), (A, "2026-01-01 12:00", False, "new"),
                            (A, "2026-01-01 11:00", False, "middle")])
    assert result.rows_read == 3
    assert mirror.rows() == {A: ("2026-01-01 12:00", False, "new", None, False)}


def test_fewer_rows_than_announced_commits_nothing(mirror):
    mirror.commit([(A, "2026-01-01 10:00", False, "Acme")], read_to=datetime(2026, 1, 1, 11), advance=True)
    with pytest.raises(IncompleteData, match="loaded 1 rows but the org announced 2; nothing was committed"):
        mirror.commit([(A, "2026-01-02 10:00", False, "Changed")], announced=2, read_from=datetime(2026, 1, 1, 10),
                      read_to=datetime(2026, 1, 2, 11), advance=True)
    assert mirror.rows()[A] == ("2026-01-01 10:00", False, "Acme", None, False)
    assert read_state(mirror.conn_, "Thing__c").cursor_modstamp == datetime(2026, 1, 1, 11)


def test_the_cursor_moves_only_forward_over_contiguous_reads(mirror):
    def cursor():
        return read_state(mirror.conn_, "Thing__c").cursor_modstamp

    mirror.commit([], read_to=datetime(2026, 1, 1, 12), advance=True)                 # an initial import
    assert cursor() == datetime(2026, 1, 1, 12)
    mirror.commit([], read_from=datetime(2026, 1, 1, 11, 50), read_to=datetime(2026, 1, 2), advance=True)
    assert cursor() == datetime(2026, 1, 2)                                           # overlapping: moves
    mirror.commit([], read_from=datetime(2026, 1, 1), read_to=datetime(2026, 1, 1, 18), advance=True)
    assert cursor() == datetime(2026, 1, 2)                                           # behind it: stays
    mirror.commit([], read_from=datetime(2026, 1, 3), read_to=datetime(2026, 1, 4), advance=True)
    assert cursor() == datetime(2026, 1, 2)                                           # a gap before it: stays
    mirror.commit([], read_from=datetime(2026, 1, 2), read_to=datetime(2026, 1, 3), advance=False)
    assert cursor() == datetime(2026, 1, 2)                                           # not asked to move


def test_an_object_without_isdeleted_has_live_rows_and_a_row_seen_again_is_live(mirror):
    mirror.commit([(A, "2026-01-01 10:00", None, "Widget"), (B, "2026-01-01 10:00", None, "Gizmo")],
                  schema=NO_SOFT_DELETE)
    mirror.conn_.execute('CREATE TABLE live_ids AS SELECT \'' + B + '\' AS "Id"')
    assert commit_purges(mirror.conn_, NO_SOFT_DELETE, "live_ids", api_calls=1, run_id="r") == 1
    assert mirror.rows("gadget__c")[A][1:3] == (True, "Widget")
    mirror.commit([(A, "2026-01-02 10:00", None, "Widget")], schema=NO_SOFT_DELETE)
    assert mirror.rows("gadget__c")[A] == ("2026-01-02 10:00", False, "Widget", None, False)


def test_the_purge_valve_refuses_a_mass_purge_and_marks_nothing(mirror):
    mirror.commit([(A, "2026-01-01 10:00", False, "a"), (B, "2026-01-01 10:00", False, "b"),
                   (C, "2026-01-01 10:00", False, "c")])
    mirror.conn_.execute(f"CREATE TABLE live_ids AS SELECT '{C}' AS \"Id\"")
    with pytest.raises(TooManyPurges):  # 2 of 3 live rows > half
        commit_purges(mirror.conn_, SCHEMA, "live_ids", api_calls=1, run_id="r", max_purge_share=0.5)
    assert not any(row[4] for row in mirror.rows().values())
    assert commit_purges(mirror.conn_, SCHEMA, "live_ids", api_calls=1, run_id="r", max_purge_share=0.7) == 2
    purged = {rid for rid, row in mirror.rows().items() if row[4] and row[1]}
    assert purged == {A, B}


def test_a_commit_for_another_org_is_refused_and_writes_nothing(tmp_path):
    spool = Spool.create(tmp_path / "spool", "Thing__c", SCHEMA.field_names)
    with duckdb.connect(str(tmp_path / "m.duckdb")) as conn:
        first = OrgIdentity("00D5g0000012345", "https://one.my.salesforce.com")
        commit_window(conn, SCHEMA, spool, kind="initial", method="rest", partition_key=None, window_start=None,
                      window_end=None, read_from=None, read_to=datetime(2026, 1, 1), api_calls=1, run_id="a",
                      advance_cursor=True, org=first)
        # the 18-character form of the same id is the same org
        assert OrgIdentity("00D5g0000012345EAA", "https://one.my.salesforce.com").same_org(first.org_id)
        with pytest.raises(OrgMismatch):
            commit_window(conn, SCHEMA, spool, kind="window", method="rest", partition_key=None, window_start=None,
                          window_end=None, read_from=datetime(2026, 1, 1), read_to=datetime(2026, 1, 2), api_calls=1,
                          run_id="b", advance_cursor=True, org=OrgIdentity("00D5g0000099999", "https://two"))
        assert read_state(conn, "Thing__c").cursor_modstamp == datetime(2026, 1, 1)
        assert conn.execute("SELECT count(*) FROM salesforce._sync_windows").fetchone()[0] == 1
