"""The org data generator: deterministic, referentially intact, internally consistent, right-sized."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sonora_pipeline.localorg import ids as idmod
from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.generator import SHARES, generate_org, ids_for_numbers, make_ids, plan_counts
from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.store import OrgStore

NOW = datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
NOW_NAIVE = NOW.replace(tzinfo=None)
OBJECTS = ["User", "RecordType", "Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event"]
WITH_DELETE = ["Account", "Contact", "Opportunity", "Case", "CaseComment", "Task", "Event"]


def _store() -> OrgStore:
    return OrgStore(build_standard_catalog(), OrgClock(NOW))


def _generate(records: int, seed: int = 7):
    store = _store()
    return store, generate_org(store, records, seed=seed, now=NOW)


@pytest.fixture(scope="module")
def org():
    return _generate(4000)


def q(store: OrgStore, sql: str, params=None) -> list[tuple]:
    return store.conn.execute(sql, params or []).fetchall()


def one(store: OrgStore, sql: str, params=None):
    return q(store, sql, params)[0][0]


def table_digest(store: OrgStore, name: str) -> str:
    """A hash of a whole table, rows ordered by Id (the recycle-bin log has no "Id" column casing)."""
    order = "Id" if name == "__DeletedRecord" else '"Id"'
    h = hashlib.sha256()
    for row in store.conn.execute(f'SELECT * FROM "{name}" ORDER BY {order}').fetchall():
        h.update(repr(row).encode("utf-8"))
    return h.hexdigest()


# -- determinism and Ids ----------------------------------------------------------------------------

def test_same_inputs_give_identical_data_and_another_seed_differs():
    a, ga = _generate(1500)
    b, gb = _generate(1500)
    c, _ = _generate(1500, seed=8)
    assert ga == gb
    for name in OBJECTS + ["__DeletedRecord"]:
        assert table_digest(a, name) == table_digest(b, name), name
    assert table_digest(a, "Account") != table_digest(c, "Account")


def test_vectorised_ids_equal_make_id():
    numbers = np.array([0, 1, 61, 62, 3843, 916132831, 13_537_086_546_263_551 // 1000, 62 ** 9 - 1])
    assert ids_for_numbers("003", numbers).to_pylist() == [idmod.make_id("003", int(n)) for n in numbers]
    assert make_ids("00T", 5, 3).to_pylist() == [idmod.make_id("00T", n) for n in (5, 6, 7)]
    assert all(idmod.is_valid_id(i) for i in make_ids("500", 1, 200).to_pylist())


def test_ids_are_reserved_so_api_creates_do_not_collide(org):
    store, gen = org
    new_id = store.create("Account", {"Name": "Brand New Co"})
    assert new_id == idmod.make_id("001", gen.counts["Account"] + 1)
    assert one(store, 'SELECT count(*) FROM "Account" WHERE "Id" = ?', [new_id]) == 1
    store.hard_delete("Account", new_id)


def test_users_record_types_and_admin(org):
    store, gen = org
    assert store.admin_user_id == gen.run_as_user_id == gen.admin_user_id
    name, active = q(store, 'SELECT "Name", "IsActive" FROM "User" WHERE "Id" = ?', [gen.run_as_user_id])[0]
    assert (name, active) == ("Integration User", True)
    assert 5 <= gen.counts["User"] <= 400
    rts = store.catalog.object("Account").record_types
    rows = q(store, 'SELECT "Id", "DeveloperName", "Name", "SobjectType", "IsActive" FROM "RecordType" ORDER BY "Id"')
    assert sorted(rows) == sorted((rt["recordTypeId"], rt["developerName"], rt["name"], "Account", True) for rt in rts)
    used = {r[0] for r in q(store, 'SELECT DISTINCT "RecordTypeId" FROM "Account"')}
    assert used == {rt["recordTypeId"] for rt in rts}
    top = q(store, 'SELECT "RecordTypeId", count(*) c FROM "Account" GROUP BY 1 ORDER BY c DESC LIMIT 1')[0][0]
    assert top == next(rt["recordTypeId"] for rt in rts if rt["developerName"] == "Customer")


# -- sizes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("records", [300, 20_000])
def test_total_and_proportions(records):
    store, gen = _generate(records)
    assert abs(gen.total - records) <= max(3, records * 0.01)
    for name in OBJECTS:
        assert store.count(name) == gen.counts[name]
    share_total = sum(SHARES.values())
    for name, share in SHARES.items():
        expected = records * share / share_total
        assert abs(gen.counts[name] - expected) <= max(3, 0.05 * expected), name
    assert gen.counts["Account"] >= 1


def test_plan_counts_scales_users_like_sqrt():
    assert plan_counts(300)["User"] == 5
    assert 250 <= plan_counts(1_000_000)["User"] <= 400
    assert plan_counts(3_000_000)["User"] <= 400


# -- referential integrity --------------------------------------------------------------------------

REFERENCES = [  # (object, field, target objects)
    ("Account", "ParentId", ["Account"]), ("Account", "OwnerId", ["User"]),
    ("Account", "RecordTypeId", ["RecordType"]), ("Account", "Customer_Success_Manager__c", ["User"]),
    ("Account", "Primary_Contact__c", ["Contact"]), ("Account", "ns__LinkedAccount__c", ["Account"]),
    ("Contact", "AccountId", ["Account"]), ("Contact", "ReportsToId", ["Contact"]),
    ("Opportunity", "AccountId", ["Account"]), ("Opportunity", "ContactId", ["Contact"]),
    ("Case", "AccountId", ["Account"]), ("Case", "ContactId", ["Contact"]),
    ("CaseComment", "ParentId", ["Case"]),
    ("Task", "AccountId", ["Account"]), ("Task", "WhoId", ["Contact"]),
    ("Task", "WhatId", ["Account", "Opportunity", "Case"]),
    ("Event", "AccountId", ["Account"]), ("Event", "WhoId", ["Contact"]),
    ("Event", "WhatId", ["Account", "Opportunity", "Case"]),
] + [(o, f, ["User"]) for o in OBJECTS for f in ("CreatedById", "LastModifiedById")] \
  + [(o, "OwnerId", ["User"]) for o in ("Contact", "Opportunity", "Case", "Task", "Event")]


@pytest.mark.parametrize("obj,fname,targets", REFERENCES)
def test_references_resolve_to_rows_of_the_right_object(org, obj, fname, targets):
    store, _ = org
    union = " UNION ALL ".join(f'SELECT "Id" FROM "{t}"' for t in targets)
    dangling = one(store, f'SELECT count(*) FROM "{obj}" r WHERE r."{fname}" IS NOT NULL '
                          f'AND r."{fname}" NOT IN ({union})')
    assert dangling == 0
    assert one(store, f'SELECT count(*) FROM "{obj}" WHERE "{fname}" IS NOT NULL') > 0


@pytest.mark.parametrize("obj,fname,targets", [r for r in REFERENCES if r[2][0] not in ("User", "RecordType")])
def test_live_records_never_point_at_deleted_ones(org, obj, fname, targets):
    store, _ = org
    union = " UNION ALL ".join(f'SELECT "Id" FROM "{t}" WHERE "IsDeleted"' for t in targets)
    live = 'NOT r."IsDeleted"' if obj != "User" else "true"
    assert one(store, f'SELECT count(*) FROM "{obj}" r WHERE {live} AND r."{fname}" IN ({union})') == 0


def test_children_stay_within_their_account(org):
    store, _ = org
    # ReportsTo is an earlier contact of the same account; case contacts belong to the case's account.
    assert one(store, 'SELECT count(*) FROM "Contact" c JOIN "Contact" m ON c."ReportsToId" = m."Id" '
                      'WHERE m."AccountId" <> c."AccountId" OR m."Id" >= c."Id"') == 0
    share = one(store, 'SELECT avg(CASE WHEN "ReportsToId" IS NULL THEN 0 ELSE 1 END) FROM "Contact" '
                       'WHERE NOT "Is_Primary_Contact__c"')
    assert 0.3 < share < 0.5
    assert one(store, 'SELECT count(*) FROM "Case" c JOIN "Contact" p ON c."ContactId" = p."Id" '
                      'WHERE p."AccountId" <> c."AccountId"') == 0
    assert one(store, 'SELECT count(*) FROM "Account" a JOIN "Account" p ON a."ParentId" = p."Id" '
                      'WHERE p."Id" >= a."Id" OR p."CreatedDate" > a."CreatedDate"') == 0
    parents = one(store, 'SELECT avg(CASE WHEN "ParentId" IS NULL THEN 0 ELSE 1 END) FROM "Account"')
    assert 0.05 < parents < 0.15
    for act in ("Task", "Event"):
        assert one(store, f'SELECT count(*) FROM "{act}" t JOIN "Contact" c ON t."WhoId" = c."Id" '
                          f'WHERE c."AccountId" <> t."AccountId"') == 0
        assert one(store, f'SELECT count(*) FROM "{act}" t LEFT JOIN "Opportunity" o ON t."WhatId" = o."Id" '
                          f'LEFT JOIN "Case" c ON t."WhatId" = c."Id" WHERE t."WhatId" <> t."AccountId" '
                          f'AND coalesce(o."AccountId", c."AccountId") IS DISTINCT FROM t."AccountId"') == 0
        kinds = {r[0] for r in q(store, f'SELECT DISTINCT substr("WhatId", 1, 3) FROM "{act}"')}
        assert kinds == {"001", "006", "500"}
        assert one(store, f'SELECT count(*) FROM "{act}" WHERE "WhoId" IS NULL') > 0


def test_one_primary_contact_per_account_with_contacts(org):
    store, _ = org
    rows = q(store, 'SELECT "AccountId", sum(CASE WHEN "Is_Primary_Contact__c" THEN 1 ELSE 0 END) '
                    'FROM "Contact" GROUP BY 1')
    assert rows and all(n == 1 for _, n in rows)
    assert one(store, 'SELECT count(*) FROM "Account" a JOIN "Contact" c ON a."Primary_Contact__c" = c."Id" '
                      'WHERE NOT c."Is_Primary_Contact__c" OR c."AccountId" <> a."Id"') == 0


# -- consistency rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("obj", OBJECTS)
def test_audit_fields_are_ordered_and_in_the_past(org, obj):
    store, _ = org
    assert one(store, f'SELECT count(*) FROM "{obj}" WHERE NOT ("CreatedDate" <= "LastModifiedDate" '
                      f'AND "LastModifiedDate" <= "SystemModstamp" AND "SystemModstamp" <= ?)', [NOW_NAIVE]) == 0
    assert one(store, f'SELECT count(*) FROM "{obj}" WHERE "CreatedDate" IS NULL OR "CreatedById" IS NULL '
                      f'OR "LastModifiedById" IS NULL') == 0
    # millisecond precision, as the store keeps it
    assert one(store, f'SELECT count(*) FROM "{obj}" WHERE microsecond("SystemModstamp") % 1000 <> 0') == 0


def test_timestamps_spread_over_three_years_denser_recently_with_ties(org):
    store, _ = org
    oldest = one(store, 'SELECT min("CreatedDate") FROM "Contact"')
    assert NOW_NAIVE - timedelta(days=3 * 366) <= oldest < NOW_NAIVE - timedelta(days=700)
    recent = one(store, 'SELECT avg(CASE WHEN "SystemModstamp" > ? THEN 1 ELSE 0 END) FROM "Task"',
                 [NOW_NAIVE - timedelta(days=365)])
    assert recent > 0.5
    for obj in ("Contact", "Task"):
        ties = one(store, f'SELECT count(*) FROM (SELECT "SystemModstamp" FROM "{obj}" GROUP BY 1 '
                          f'HAVING count(*) > 1)')
        assert ties > 0, obj
        assert one(store, f'SELECT count(*) FROM "{obj}" WHERE "SystemModstamp" > "LastModifiedDate"') > 0


def test_opportunity_stage_rules(org):
    store, _ = org
    rows = q(store, 'SELECT "StageName", "IsClosed", "IsWon", "Probability", "ForecastCategory", '
                    '"ForecastCategoryName", count(*) FROM "Opportunity" GROUP BY ALL')
    stages = {r[0] for r in rows}
    assert {"Closed Won", "Closed Lost"} <= stages and len(stages) >= 6
    assert stages <= set(store.catalog.object("Opportunity").fields["StageName"].picklist_values)
    for stage, closed, won, prob, fc, fcn, _ in rows:
        assert won == (stage == "Closed Won")
        assert closed == (stage in ("Closed Won", "Closed Lost"))
        assert (prob == 100) == won and (prob == 0) == (stage == "Closed Lost")
        assert (fc, fcn) in {("Closed", "Closed"), ("Omitted", "Omitted"), ("Pipeline", "Pipeline"),
                             ("BestCase", "Best Case"), ("Forecast", "Commit")}
        assert (fc == "Closed") == won
    assert one(store, 'SELECT count(*) FROM "Opportunity" WHERE "IsClosed" AND "CloseDate" > ?',
               [NOW_NAIVE.date()]) == 0


def test_case_rules(org):
    store, _ = org
    statuses = {r[0] for r in q(store, 'SELECT DISTINCT "Status" FROM "Case"')}
    assert statuses == {"New", "Working", "Escalated", "Closed"}
    assert one(store, 'SELECT count(*) FROM "Case" WHERE "IsClosed" <> ("Status" = \'Closed\') '
                      'OR ("ClosedDate" IS NOT NULL) <> "IsClosed" '
                      'OR "ClosedDate" <= "CreatedDate" OR "ClosedDate" > "LastModifiedDate" '
                      'OR "IsEscalated" <> ("Status" = \'Escalated\')') == 0
    numbers = [r[0] for r in q(store, 'SELECT "CaseNumber" FROM "Case" ORDER BY "Id"')]
    assert numbers[:2] == ["00000001", "00000002"] and len(set(numbers)) == len(numbers)
    assert all(len(n) == 8 and n.isdigit() for n in numbers)
    bodies = "\n".join(r[0] for r in q(store, 'SELECT "CommentBody" FROM "CaseComment"'))
    for needle in (",", '"', "\n", "Grüße", "日本"):
        assert needle in bodies


def test_task_and_event_rules(org):
    store, _ = org
    assert one(store, 'SELECT count(*) FROM "Task" WHERE "IsClosed" <> ("Status" = \'Completed\') '
                      'OR "IsHighPriority" <> ("Priority" = \'High\') '
                      'OR ("CompletedDateTime" IS NOT NULL) <> "IsClosed" '
                      'OR "Status" IS NULL OR "Priority" IS NULL') == 0
    cutoff = NOW_NAIVE.date() - timedelta(days=365)
    assert one(store, 'SELECT count(*) FROM "Task" WHERE "IsArchived" <> ("ActivityDate" < ?)', [cutoff]) == 0
    assert one(store, 'SELECT count(*) FROM "Event" WHERE "IsArchived" <> ("ActivityDate" < ?)', [cutoff]) == 0
    assert one(store, 'SELECT count(*) FROM "Task" WHERE "IsArchived"') > 0
    assert one(store, 'SELECT count(*) FROM "Event" WHERE "EndDateTime" <> "StartDateTime" + '
                      'to_minutes("DurationInMinutes") OR "ActivityDateTime" <> "StartDateTime" '
                      'OR "ActivityDate" <> CAST("StartDateTime" AS DATE) OR "EventSubtype" <> \'Event\'') == 0


def test_account_custom_fields(org):
    store, _ = org
    acct = store.catalog.object("Account")
    formula = acct.fields["ARR_Band__c"].formula
    rows = q(store, 'SELECT "ARR__c", "ARR_Band__c", "Type", "Contract_End_Date__c", "Tier__c", '
                    '"Sonora_Health_Score__c", "Sonora_eCSAT__c", "Sonora_Health_Band__c", "Industry" FROM "Account"')
    assert all(band == formula({"ARR__c": arr}) for arr, band, *_ in rows)
    types = {r[2] for r in rows}
    assert {"Prospect", "Customer - Direct", "Customer - Channel"} <= types
    assert types <= set(acct.fields["Type"].picklist_values)
    assert {r[8] for r in rows if r[8]} <= set(acct.fields["Industry"].picklist_values)
    arrs = [r[0] for r in rows if r[0] is not None]
    assert arrs and all(r[2].startswith("Customer") for r in rows if r[0] is not None)
    today = NOW_NAIVE.date()
    ends = [r[3] for r in rows if r[3] is not None]
    assert any(e < today for e in ends) and any(today <= e <= today + timedelta(days=180) for e in ends)
    assert any(e > today + timedelta(days=180) for e in ends)
    assert all(r[5] is None and r[6] is None and r[7] is None for r in rows)
    assert {r[4] for r in rows if r[0] is not None} <= {"Platinum", "Gold", "Silver", "Bronze"}


def test_some_arr_values_are_huge():
    store, _ = _generate(60_000)
    assert one(store, 'SELECT count(*) FROM "Account" WHERE "ARR__c" >= 1e7') > 0


@pytest.mark.parametrize("obj", OBJECTS)
def test_non_nillable_booleans_are_never_null(org, obj):
    store, _ = org
    spec = store.catalog.object(obj)
    for f in spec.stored_fields():
        if f.type == "boolean" and not f.nillable:
            assert one(store, f'SELECT count(*) FROM "{obj}" WHERE "{f.name}" IS NULL') == 0, f.name


def test_soft_deletes_are_logged_in_the_recycle_bin(org):
    store, gen = org
    total_deleted = 0
    for obj in WITH_DELETE:
        deleted = {r[0]: r[1] for r in q(store, f'SELECT "Id", "SystemModstamp" FROM "{obj}" WHERE "IsDeleted"')}
        logged = {r[0]: r[1] for r in q(store, 'SELECT Id, DeletedDate FROM "__DeletedRecord" WHERE ObjectName = ?',
                                        [obj])}
        assert deleted == logged, obj
        assert gen.deleted[obj] == len(deleted)
        total_deleted += len(deleted)
        assert all(NOW_NAIVE - timedelta(days=15) <= when <= NOW_NAIVE for when in deleted.values())
    rows = sum(gen.counts[o] for o in WITH_DELETE)
    assert 0.003 < total_deleted / rows < 0.03
    # the store's own view: a deleted record is hidden unless asked for
    some = q(store, 'SELECT "Id" FROM "Task" WHERE "IsDeleted" LIMIT 1')[0][0]
    assert store.get("Task", some) is None and store.get("Task", some, include_deleted=True) is not None
    assert some in {i for i, _ in store.deleted_records("Task", NOW - timedelta(days=15), NOW + timedelta(seconds=1))}


# -- org shapes ---------------------------------------------------------------------------------------

def _generate_shape(records: int, shape: str, seed: int = 7):
    store = _store()
    return store, generate_org(store, records, seed=seed, now=NOW, shape=shape)


@pytest.fixture(scope="module")
def accounts_org():
    return _generate_shape(6000, "accounts")


@pytest.mark.parametrize("records", [10_000, 100_000, 1_000_000])
def test_accounts_shape_plan_is_mostly_accounts_with_a_few_users(records):
    plan = plan_counts(records, "accounts")
    assert abs(sum(plan.values()) - records) <= 2
    assert plan["Account"] / records >= 0.96
    assert 5 <= plan["User"] <= 25
    assert all(plan[name] > 0 for name in SHARES), plan
    assert plan_counts(records) == plan_counts(records, "b2b")


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown org shape"):
        plan_counts(1000, "b2c")
    with pytest.raises(ValueError):
        generate_org(_store(), 1000, seed=1, now=NOW, shape="nope")


def test_accounts_shape_is_deterministic_and_differs_from_b2b():
    a, ga = _generate_shape(3000, "accounts")
    b, gb = _generate_shape(3000, "accounts")
    c, gc = _generate_shape(3000, "b2b")
    assert ga == gb
    for name in OBJECTS + ["__DeletedRecord"]:
        assert table_digest(a, name) == table_digest(b, name), name
    assert ga.counts != gc.counts


def test_accounts_shape_counts_and_relationships(accounts_org):
    store, gen = accounts_org
    assert gen.counts["Account"] / gen.total >= 0.96
    assert all(gen.counts[name] > 0 for name in OBJECTS), gen.counts
    for obj, fname, targets in REFERENCES:
        union = " UNION ALL ".join(f'SELECT "Id" FROM "{t}"' for t in targets)
        assert one(store, f'SELECT count(*) FROM "{obj}" r WHERE r."{fname}" IS NOT NULL '
                          f'AND r."{fname}" NOT IN ({union})') == 0, (obj, fname)
    # children hang off some accounts, so parent/child queries have matches and non-matches
    with_children = one(store, 'SELECT count(DISTINCT "AccountId") FROM "Contact"')
    assert 0 < with_children < gen.counts["Account"]


def test_accounts_shape_fills_every_account_field_like_b2b(accounts_org):
    store, _ = accounts_org
    b2b, _ = _generate(20_000)
    fields = [f.name for f in store.catalog.object("Account").stored_fields()]

    def filled(s: OrgStore) -> set[str]:
        counts = q(s, "SELECT " + ", ".join(f'count("{n}")' for n in fields) + ' FROM "Account"')[0]
        return {n for n, c in zip(fields, counts) if c}

    assert filled(store) == filled(b2b)
    assert {"ARR__c", "Tier__c", "Customer_Success_Manager__c", "BillingCity", "Primary_Contact__c"} <= filled(store)


def test_local_org_and_cli_pass_the_shape_through(tmp_path, monkeypatch):
    from sonora_pipeline import cli
    from sonora_pipeline.cli import localorg as cli_localorg
    from sonora_pipeline.localorg.org import LocalOrg

    org = LocalOrg(records=1000, seed=3, state_dir=tmp_path / "org", shape="accounts")
    assert org.generated.counts["Account"] >= 950

    seen = {}

    def fake_start(records, port, seed, shape="b2b", **variety):
        seen.clear()
        seen.update(records=records, seed=seed, shape=shape, **variety)
        raise SystemExit(0)

    monkeypatch.setattr(cli_localorg, "start_org", fake_start)
    with pytest.raises(SystemExit):
        cli.main(["localorg", "--records", "1234", "--shape", "accounts"])
    assert seen == {"records": 1234, "seed": 7, "shape": "accounts", "custom_fields": True, "csv_nulls": "empty",
                    "hidden_fields": None}
    with pytest.raises(SystemExit):
        cli.main(["localorg", "--standard-fields-only", "--csv-nulls", "quoted", "--hide-field",
                  "Account.AnnualRevenue", "--hide-field", "Contact.Birthdate"])
    assert seen["custom_fields"] is False and seen["csv_nulls"] == "quoted"
    assert seen["hidden_fields"] == {"Account": ["AnnualRevenue"], "Contact": ["Birthdate"]}
    with pytest.raises(SystemExit):
        cli.main(["localorg", "--shape", "b2c"])
