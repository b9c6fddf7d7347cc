"""Owners by name: the model's owner_name/owner_email come from the org's own User records, synced like any
object; without a User mirror the model still builds, with the owner columns NULL."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import duckdb
import pytest

from sonora_pipeline.model.build import build_all
from sonora_pipeline.settings import Settings
from sonora_pipeline_tests.model.helpers import mirrored_org, org_rows, query, sync_into

TODAY = datetime.now(UTC).date()
# contract rules on standard fields only (the defaults may name custom fields)
SETTINGS = Settings.model_validate({"contracts": {"match": "all", "account_conditions": [],
                                                  "won_opportunity_within_days": 365}})
OWNED = {"customers": ("external_id", "Account"), "opportunities": ("opportunity_id", "Opportunity"),
         "cases": ("case_id", "Case")}


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    db = tmp_path_factory.mktemp("owners-model") / "m.duckdb"
    with mirrored_org(tmp_path_factory.mktemp("owners-org"), db, records=1500, seed=8) as org:
        yield org, db


def build(db) -> None:
    with duckdb.connect(str(db)) as conn:
        build_all(conn, SETTINGS, TODAY)


def owners(db, table: str, key: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in query(db, f"SELECT {key}, owner_id, owner_name, owner_email FROM sonora.{table}")}


def test_owner_names_and_emails_are_the_orgs_users(mirrored, tmp_path):
    """End to end: User synced from the org into salesforce."user", then the model; every owner column equals
    what the org's own User rows say (a queue or unknown owner has no name)."""
    org, synced = mirrored
    db = tmp_path / "m.duckdb"
    shutil.copy(synced, db)
    sync_into(org, db, ["User"])
    build(db)
    users = {u["Id"]: (u["Name"], u["Email"]) for u in org_rows(org, "User")}
    named = 0
    for table, (key, object_name) in OWNED.items():
        got = owners(db, table, key)
        records = {r["Id"]: r for r in org_rows(org, object_name) if not r["IsDeleted"]}
        assert got and set(got) <= set(records)
        for rid, (owner_id, name, email) in got.items():
            assert owner_id == records[rid]["OwnerId"]
            assert (name, email) == users.get(owner_id, (None, None)), (table, rid)
            named += name is not None
    assert named > 0
    renewals = query(db, "SELECT r.owner_id, r.owner_name, r.owner_email, c.owner_name, c.owner_email "
                         "FROM sonora.renewals r JOIN sonora.customers c ON c.external_id = r.customer_id")
    assert all(r[1:3] == r[3:5] == users.get(r[0], (None, None)) for r in renewals)
    # names as the org wrote them (non-ASCII included)
    assert any(not n.isascii() for n, _ in users.values()) and \
        {n for t, (k, _) in OWNED.items() for _, n, _ in owners(db, t, k).values()} - {None} <= {n for n, _ in users.values()}


def test_the_model_builds_without_a_user_mirror(mirrored, tmp_path):
    org, synced = mirrored
    db = tmp_path / "m.duckdb"
    shutil.copy(synced, db)
    with duckdb.connect(str(db)) as conn:
        conn.execute('DROP TABLE IF EXISTS salesforce."user"')
    build(db)
    for table, (key, _) in {**OWNED, "renewals": ("customer_id", "Account")}.items():
        got = owners(db, table, key)
        assert all(name is None and email is None for _, name, email in got.values()), table
        assert all(owner_id for owner_id, _, _ in got.values()), table
    assert owners(db, "customers", "external_id")
    comments = dict(query(db, "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'sonora' "
                              "AND table_name = 'cases'"))
    assert "User not mirrored" in comments["owner_name"] and "Email" in comments["owner_email"]


def test_an_unreadable_user_email_leaves_only_the_email_empty(mirrored, tmp_path):
    """Field-level security can hide User.Email from the run-as user: the mirror then has no Email column."""
    org, synced = mirrored
    db = tmp_path / "m.duckdb"
    shutil.copy(synced, db)
    sync_into(org, db, ["User"])
    with duckdb.connect(str(db)) as conn:
        conn.execute('ALTER TABLE salesforce."user" DROP COLUMN "Email"')
    build(db)
    users = {u["Id"]: u["Name"] for u in org_rows(org, "User")}
    got = owners(db, "customers", "external_id")
    assert all(email is None and name == users.get(owner_id) for owner_id, name, email in got.values())
