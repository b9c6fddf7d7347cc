"""The custom object Subscription__c: its describe and global-describe entry, the generated rows (sizes,
references, consistency, determinism, recycle bin) and SOQL over it through the compiler, REST and Bulk 2.0
(relationship paths `Account__r.*` and a semi-join from Account)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.generator import SHARES, generate_org, plan_counts
from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import bulk_arrow, compile_query, to_rest_records
from sonora_pipeline.localorg.store import OrgStore, RecordError
from sonora_pipeline_tests.conftest import trusting_session
from sonora_pipeline_tests.localorg.test_simple_salesforce import login_with_client_credentials

VERSION = "62.0"
NOW = datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)
NOW_NAIVE = NOW.replace(tzinfo=None)
TODAY = NOW_NAIVE.date()
SUB = "Subscription__c"
CUSTOM_FIELDS = ["Account__c", "Status__c", "Plan__c", "MRR__c", "Seats__c", "Start_Date__c", "End_Date__c",
                 "Auto_Renew__c"]
STANDARD_FIELDS = ["Id", "OwnerId", "IsDeleted", "Name", "CreatedDate", "CreatedById", "LastModifiedDate",
                   "LastModifiedById", "SystemModstamp"]
ACTIVE_ACCOUNTS_SOQL = ("SELECT Id, Name FROM Account WHERE Id IN "
                        "(SELECT Account__c FROM Subscription__c WHERE Status__c = 'Active')")


def _seed(name: str) -> dict:
    return json.loads(resources.files("sonora_pipeline.localorg").joinpath("seed", name).read_text("utf-8"))


def _generate(records: int, seed: int = 7, shape: str = "b2b"):
    store = OrgStore(build_standard_catalog(), OrgClock(NOW))
    return store, generate_org(store, records, seed=seed, now=NOW, shape=shape)


def q(store: OrgStore, sql: str, params=None) -> list[tuple]:
    cur = store.cursor()
    try:
        return cur.execute(sql, params or []).fetchall()
    finally:
        cur.close()


def one(store: OrgStore, sql: str, params=None):
    return q(store, sql, params)[0][0]


def digest(store: OrgStore, table: str) -> str:
    order = "Id" if table == "__DeletedRecord" else '"Id"'
    h = hashlib.sha256()
    for row in q(store, f'SELECT * FROM "{table}" ORDER BY {order}'):
        h.update(repr(row).encode("utf-8"))
    return h.hexdigest()


@pytest.fixture(scope="module")
def gen():
    """A mid-sized generated org: ~600 subscriptions."""
    return _generate(20_000)


@pytest.fixture(scope="module")
def api(shared_org):
    session = trusting_session(shared_org)
    token = session.post(f"{shared_org.instance_url}/services/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(shared_org.credentials.consumer_key, shared_org.credentials.consumer_secret)).json()
    session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def get(path: str, **params):
        reply = session.get(f"{shared_org.instance_url}/services/data/v{VERSION}/{path}", params=params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    return get


# -- catalog and describe -----------------------------------------------------------------------------------

def test_catalog_object_and_field_order():
    catalog = build_standard_catalog()
    sub = catalog.object(SUB)
    assert sub is not None and catalog.object("subscription__c") is sub
    assert sub.key_prefix == "a0S" and catalog.object_for_prefix("a0S") is sub
    assert list(sub.fields) == STANDARD_FIELDS + CUSTOM_FIELDS
    assert sub.record_types == []
    rel = catalog.relationship(sub, "Account__r")
    assert rel is not None and rel.name == "Account__c" and rel.reference_to == ["Account"]
    assert catalog.relationship(sub, "Owner").reference_to == ["User"]


def test_describe_has_the_recorded_key_sets_and_custom_flags(api):
    described = api(f"sobjects/{SUB}/describe")
    assert set(described) == set(_seed("cumulusci_account_describe.json"))
    recorded_field_keys = set(_seed("cumulusci_account_describe.json")["fields"][0])
    assert [f["name"] for f in described["fields"]] == STANDARD_FIELDS + CUSTOM_FIELDS
    for field in described["fields"]:
        assert set(field) == recorded_field_keys, field["name"]
        assert field["custom"] is field["name"].endswith("__c"), field["name"]
        # field-level security applies to optional custom fields (checkboxes included), never to required ones
        assert field["permissionable"] is (field["name"].endswith("__c") and field["name"] != "Account__c"), \
            field["name"]
    assert (described["name"], described["label"], described["labelPlural"], described["keyPrefix"]) == \
        (SUB, "Subscription", "Subscriptions", "a0S")
    assert described["custom"] is True and described["customSetting"] is False
    assert all(described[k] is True for k in ("queryable", "retrieveable", "replicateable", "createable",
                                              "updateable", "deletable", "undeletable", "searchable"))
    assert described["mergeable"] is False
    assert described["childRelationships"] == []
    assert [r["developerName"] for r in described["recordTypeInfos"]] == ["Master"]
    assert described["urls"]["sobject"] == f"/services/data/v{VERSION}/sobjects/{SUB}"
    assert described["urls"]["uiNewRecord"].endswith("/a0S/e")
    assert all(url.startswith(f"/services/data/v{VERSION}/") for url in described["urls"].values()
               if url.startswith("/"))


def test_describe_field_entries(api):
    fields = {f["name"]: f for f in api(f"sobjects/{SUB}/describe")["fields"]}
    recorded = {f["name"]: f for f in _seed("cumulusci_account_describe.json")["fields"]}
    for name in ("OwnerId", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp"):
        assert fields[name] == recorded[name], name
    assert fields["Id"] == {**recorded["Id"], "label": "Record ID"}
    assert fields["OwnerId"]["referenceTo"] == ["User"] and fields["OwnerId"]["relationshipName"] == "Owner"
    name = fields["Name"]
    assert (name["type"], name["length"], name["nameField"], name["custom"]) == ("string", 80, True, False)
    assert name["createable"] and name["updateable"]
    assert sum(f["nameField"] for f in fields.values()) == 1
    account = fields["Account__c"]
    assert (account["type"], account["referenceTo"], account["relationshipName"]) == \
        ("reference", ["Account"], "Account__r")
    assert account["nillable"] is False and account["createable"] and account["custom"] is True
    assert account["soapType"] == recorded["ParentId"]["soapType"]
    assert [p["value"] for p in fields["Status__c"]["picklistValues"]] == ["Active", "Trial", "Cancelled", "Expired"]
    assert [p["value"] for p in fields["Plan__c"]["picklistValues"]] == ["Starter", "Growth", "Enterprise"]
    assert set(fields["Plan__c"]["picklistValues"][0]) == {"active", "defaultValue", "label", "validFor", "value"}
    for name, expected in (("MRR__c", ("currency", 16, 2)), ("Seats__c", ("double", 18, 0))):
        assert (fields[name]["type"], fields[name]["precision"], fields[name]["scale"]) == expected, name
    assert fields["Start_Date__c"]["type"] == fields["End_Date__c"]["type"] == "date"
    renew = fields["Auto_Renew__c"]
    assert renew["type"] == "boolean" and renew["nillable"] is False and renew["defaultValue"] is False


def test_account_describe_lists_the_subscriptions_child_relationship(api):
    rels = api("sobjects/Account/describe")["childRelationships"]
    recorded = _seed("cumulusci_account_describe.json")["childRelationships"]
    mine = [r for r in rels if r["childSObject"] == SUB]
    assert mine == [{"cascadeDelete": False, "childSObject": SUB, "deprecatedAndHidden": False,
                     "field": "Account__c", "junctionIdListNames": [], "junctionReferenceTo": [],
                     "relationshipName": "Subscriptions__r", "restrictedDelete": False}]
    assert set(mine[0]) == set(recorded[0])
    assert rels[:len(recorded)] == recorded  # the recorded ones are untouched


def test_describe_global_entry(api):
    recorded_keys = set(_seed("cumulusci_describe_global_subset.json")["sobjects"][0])
    entries = {e["name"]: e for e in api("sobjects")["sobjects"]}
    entry = entries[SUB]
    assert set(entry) == recorded_keys
    assert entry["custom"] is True and entry["customSetting"] is False
    assert (entry["label"], entry["labelPlural"], entry["keyPrefix"]) == ("Subscription", "Subscriptions", "a0S")
    assert entry["queryable"] is entry["retrieveable"] is entry["replicateable"] is True
    assert entry["urls"]["describe"] == f"/services/data/v{VERSION}/sobjects/{SUB}/describe"
    assert all(e["custom"] is False for name, e in entries.items() if name != SUB)
    basic = api(f"sobjects/{SUB}")
    assert basic["objectDescribe"] == entry


# -- sizes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("records", [300, 4000, 20_000, 1_000_000])
def test_plan_gives_subscriptions_about_three_percent(records):
    plan = plan_counts(records)
    assert abs(sum(plan.values()) - records) <= 3
    assert abs(plan[SUB] / records - 0.03) < 0.003 + 2 / records
    # the other objects gave up their share proportionally
    share_total = sum(SHARES.values())
    rest = records - plan["User"] - plan["RecordType"]
    for name, share in SHARES.items():
        assert abs(plan[name] - rest * share / share_total) <= 1, name


@pytest.mark.parametrize("records", [10_000, 1_000_000])
def test_accounts_shape_keeps_subscriptions_proportional_to_the_remainder(records):
    plan = plan_counts(records, "accounts")
    remainder = sum(n for name, n in plan.items() if name not in ("User", "RecordType", "Account"))
    others = {name: share for name, share in SHARES.items() if name != "Account"}
    assert abs(plan[SUB] - remainder * others[SUB] / sum(others.values())) <= 2
    assert 0 < plan[SUB] < plan["Contact"]


@pytest.mark.parametrize("records,shape", [(300, "b2b"), (4000, "b2b"), (6000, "accounts")])
def test_generated_counts_follow_the_plan(records, shape):
    store, gen = _generate(records, shape=shape)
    assert gen.counts == plan_counts(records, shape)
    assert store.count(SUB) == gen.counts[SUB] > 0
    assert gen.deleted[SUB] == store.count(SUB) - store.count(SUB, include_deleted=False)


# -- references and consistency -----------------------------------------------------------------------------

def test_every_subscription_belongs_to_a_customer_account_one_to_three_each(gen):
    store, _ = gen
    assert one(store, 'SELECT count(*) FROM "Subscription__c" WHERE "Account__c" IS NULL OR "Account__c" NOT IN '
                      '(SELECT "Id" FROM "Account")') == 0
    assert one(store, 'SELECT count(*) FROM "Subscription__c" s JOIN "Account" a ON a."Id" = s."Account__c" '
                      'WHERE a."Type" NOT LIKE \'Customer%\'') == 0
    per = dict(q(store, 'SELECT c, count(*) FROM (SELECT "Account__c", count(*) c FROM "Subscription__c" '
                        'GROUP BY 1) GROUP BY 1'))
    assert set(per) == {1, 2, 3} and per[1] > per[3]
    customers = one(store, 'SELECT count(*) FROM "Account" WHERE "Type" LIKE \'Customer%\'')
    with_subs = one(store, 'SELECT count(DISTINCT "Account__c") FROM "Subscription__c"')
    assert 0 < with_subs <= customers


def test_users_and_deleted_parents(gen):
    store, _ = gen
    for fname in ("OwnerId", "CreatedById", "LastModifiedById"):
        assert one(store, f'SELECT count(*) FROM "Subscription__c" WHERE "{fname}" IS NULL OR "{fname}" NOT IN '
                          f'(SELECT "Id" FROM "User")') == 0, fname
    # owned by the account's CSM when it has one, else by the account's owner
    assert one(store, 'SELECT count(*) FROM "Subscription__c" s JOIN "Account" a ON a."Id" = s."Account__c" '
                      'WHERE s."OwnerId" <> coalesce(a."Customer_Success_Manager__c", a."OwnerId")') == 0
    assert one(store, 'SELECT count(*) FROM "Subscription__c" s JOIN "Account" a ON a."Id" = s."Account__c" '
                      'WHERE a."IsDeleted" AND NOT s."IsDeleted"') == 0


def test_dates_statuses_and_amounts_agree(gen):
    store, _ = gen
    rows = q(store, 'SELECT s."Status__c", s."Start_Date__c", s."End_Date__c", s."Auto_Renew__c", s."MRR__c", '
                    's."Seats__c", s."Plan__c", s."CreatedDate", s."LastModifiedDate", a."CreatedDate" '
                    'FROM "Subscription__c" s JOIN "Account" a ON a."Id" = s."Account__c"')
    statuses = {r[0] for r in rows}
    assert statuses == {"Active", "Trial", "Cancelled", "Expired"}
    assert {r[6] for r in rows} == {"Starter", "Growth", "Enterprise"}
    counts = {s: sum(r[0] == s for r in rows) for s in statuses}
    assert counts["Active"] > counts["Cancelled"] and counts["Active"] > counts["Expired"]
    for status, start, end, renew, mrr, seats, plan, created, modified, account_created in rows:
        assert start is not None and end is not None and start <= end
        assert start <= TODAY and start >= created.date() >= account_created.date()
        assert seats >= 1 and seats == int(seats) and mrr is not None and mrr >= 0
        if status == "Active":
            assert end > TODAY and mrr > 0
        elif status == "Trial":
            assert end > TODAY and mrr == 0 and not renew and plan != "Enterprise"
        elif status == "Expired":
            assert end < TODAY and not renew
            assert modified.date() >= end  # touched when it expired
        else:  # Cancelled
            assert end <= TODAY and not renew
            assert modified.date() >= end
    assert any(r[3] for r in rows) and not all(r[3] for r in rows if r[0] == "Active")
    # the biggest plan has the most seats
    avg = {p: sum(r[5] for r in rows if r[6] == p) / sum(r[6] == p for r in rows) for p in ("Starter", "Enterprise")}
    assert avg["Enterprise"] > 5 * avg["Starter"]


def test_names_audit_fields_and_ties(gen):
    store, _ = gen
    names = [r[0] for r in q(store, 'SELECT "Name" FROM "Subscription__c" ORDER BY "Id"')]
    assert names[:2] == ["SUB-000001", "SUB-000002"] and len(set(names)) == len(names)
    assert all(n.startswith("SUB-") and n[4:].isdigit() and len(n) == 10 for n in names)
    ids = [r[0] for r in q(store, 'SELECT "Id" FROM "Subscription__c" ORDER BY "Id"')]
    assert all(i.startswith("a0S") and len(i) == 18 for i in ids)
    assert one(store, 'SELECT count(*) FROM "Subscription__c" WHERE NOT ("CreatedDate" <= "LastModifiedDate" '
                      'AND "LastModifiedDate" <= "SystemModstamp" AND "SystemModstamp" <= ?)', [NOW_NAIVE]) == 0
    assert one(store, 'SELECT count(*) FROM "Subscription__c" WHERE microsecond("SystemModstamp") % 1000 <> 0') == 0
    assert one(store, 'SELECT count(*) FROM (SELECT "SystemModstamp" FROM "Subscription__c" GROUP BY 1 '
                      'HAVING count(*) > 1)') > 0
    assert one(store, 'SELECT count(*) FROM "Subscription__c" WHERE "SystemModstamp" > "LastModifiedDate"') > 0
    oldest = one(store, 'SELECT min("CreatedDate") FROM "Subscription__c"')
    assert oldest < NOW_NAIVE - timedelta(days=700)
    assert one(store, 'SELECT count(*) FROM "Subscription__c" WHERE "Auto_Renew__c" IS NULL') == 0


def test_recycle_bin(gen):
    store, g = gen
    deleted = dict(q(store, 'SELECT "Id", "SystemModstamp" FROM "Subscription__c" WHERE "IsDeleted"'))
    logged = dict(q(store, 'SELECT Id, DeletedDate FROM "__DeletedRecord" WHERE ObjectName = ?', [SUB]))
    assert deleted == logged and g.deleted[SUB] == len(deleted) > 0
    assert 0.003 < len(deleted) / g.counts[SUB] < 0.03
    assert all(NOW_NAIVE - timedelta(days=15) <= when <= NOW_NAIVE for when in deleted.values())
    some = next(iter(deleted))
    assert store.get(SUB, some) is None and store.get(SUB, some, include_deleted=True) is not None
    window = {i for i, _ in store.deleted_records(SUB, NOW - timedelta(days=15), NOW + timedelta(seconds=1))}
    assert window == set(deleted)
    assert one(store, 'SELECT count(*) FROM "Subscription__c" WHERE "IsDeleted" AND '
                      '"LastModifiedById" <> (SELECT "Id" FROM "User" ORDER BY "Id" LIMIT 1)') == 0


# -- determinism --------------------------------------------------------------------------------------------

def test_same_inputs_give_identical_subscriptions_and_another_seed_differs():
    a, ga = _generate(3000)
    b, gb = _generate(3000)
    c, _ = _generate(3000, seed=8)
    assert ga == gb
    for table in (SUB, "Account", "__DeletedRecord"):
        assert digest(a, table) == digest(b, table), table
    assert digest(a, SUB) != digest(c, SUB)


# -- SOQL through the compiler ------------------------------------------------------------------------------

def run(store: OrgStore, soql: str, *, include_deleted: bool = False):
    compiled = compile_query(soql, store.catalog, include_deleted=include_deleted, now=NOW)
    result = q(store, compiled.sql, compiled.params)
    if compiled.is_count:
        return result[0][0]
    return to_rest_records(compiled, result, "59.0")


def _active_accounts(store: OrgStore) -> set[str]:
    return {a for a, status, deleted in q(store, 'SELECT "Account__c", "Status__c", "IsDeleted" FROM "Subscription__c"')
            if status == "Active" and not deleted}


def test_compiled_relationship_paths_and_semi_join(gen):
    store, _ = gen
    records = run(store, "SELECT Id, Name, Account__r.Name, Account__r.Owner.Name, Status__c, MRR__c, Start_Date__c "
                         "FROM Subscription__c WHERE Account__r.Type LIKE 'Customer%' ORDER BY Name LIMIT 5")
    assert len(records) == 5
    first = records[0]
    assert list(first) == ["attributes", "Id", "Name", "Account__r", "Status__c", "MRR__c", "Start_Date__c"]
    assert first["attributes"]["type"] == SUB
    assert first["Account__r"]["attributes"]["type"] == "Account"
    assert set(first["Account__r"]) == {"attributes", "Name", "Owner"}
    assert first["Account__r"]["Owner"]["attributes"]["type"] == "User"
    expected = q(store, 'SELECT a."Name" FROM "Subscription__c" s JOIN "Account" a ON a."Id" = s."Account__c" '
                        'WHERE s."Id" = ?', [first["Id"]])[0][0]
    assert first["Account__r"]["Name"] == expected
    assert isinstance(first["Start_Date__c"], str) and len(first["Start_Date__c"]) == 10

    live = run(store, "SELECT COUNT() FROM Subscription__c")
    assert live == store.count(SUB, include_deleted=False)
    assert run(store, "SELECT COUNT() FROM Subscription__c", include_deleted=True) == store.count(SUB)

    expected_ids = {i for i, deleted in q(store, 'SELECT "Id", "IsDeleted" FROM "Account"')
                    if not deleted and i in _active_accounts(store)}
    got = run(store, ACTIVE_ACCOUNTS_SOQL)
    assert {r["Id"] for r in got} == expected_ids and expected_ids
    anti = run(store, "SELECT Id FROM Account WHERE Type LIKE 'Customer%' AND Id NOT IN "
                      "(SELECT Account__c FROM Subscription__c)")
    with_subs = {a for a, d in q(store, 'SELECT "Account__c", "IsDeleted" FROM "Subscription__c"') if not d}
    customers = {i for i, t, d in q(store, 'SELECT "Id", "Type", "IsDeleted" FROM "Account"')
                 if not d and t.startswith("Customer")}
    assert {r["Id"] for r in anti} == customers - with_subs


def test_compiled_bulk_query_has_the_relationship_column(gen):
    store, _ = gen
    compiled = compile_query("SELECT Id, Name, Account__r.Name, Plan__c FROM Subscription__c", store.catalog,
                             include_deleted=False, now=NOW, for_bulk=True)
    cur = store.cursor()
    try:
        table = bulk_arrow(cur, compiled)
    finally:
        cur.close()
    assert table.column_names == ["Id", "Name", "Account__r.Name", "Plan__c"]
    assert table.num_rows == store.count(SUB, include_deleted=False)


# -- SOQL and DML over HTTP ---------------------------------------------------------------------------------

def test_rest_query_with_relationship_paths(shared_org):
    store = shared_org.store
    sf = login_with_client_credentials(shared_org)
    result = sf.query_all("SELECT Id, Name, Account__r.Name, Account__r.Type, Status__c, End_Date__c, "
                          "Auto_Renew__c FROM Subscription__c ORDER BY Id",
                          headers={"Sforce-Query-Options": "batchSize=200"})
    expected = {i: (name, t) for i, name, t in q(store, 'SELECT s."Id", a."Name", a."Type" FROM "Subscription__c" s '
                                                        'JOIN "Account" a ON a."Id" = s."Account__c" '
                                                        'WHERE NOT s."IsDeleted"')}
    assert result["totalSize"] == len(expected) > 0
    for rec in result["records"]:
        assert rec["attributes"] == {"type": SUB, "url": f"/services/data/v{sf.sf_version}/sobjects/{SUB}/{rec['Id']}"}
        assert (rec["Account__r"]["Name"], rec["Account__r"]["Type"]) == expected[rec["Id"]]
        assert rec["Account__r"]["Type"].startswith("Customer")
        assert isinstance(rec["Auto_Renew__c"], bool)
        if rec["Status__c"] == "Expired":
            assert date.fromisoformat(rec["End_Date__c"]) < shared_org.clock.now().date()
    filtered = sf.query("SELECT COUNT() FROM Subscription__c WHERE Account__r.Name != null AND Status__c = 'Active'")
    active = sum(1 for s, d in q(store, 'SELECT "Status__c", "IsDeleted" FROM "Subscription__c"')
                 if s == "Active" and not d)
    assert filtered["totalSize"] == active
    everything = sf.query_all("SELECT Id, IsDeleted FROM Subscription__c", include_deleted=True)
    assert everything["totalSize"] == store.count(SUB)


def test_rest_semi_join_from_account(shared_org):
    store = shared_org.store
    sf = login_with_client_credentials(shared_org)
    got = sf.query_all(ACTIVE_ACCOUNTS_SOQL)
    live = {i for i, d in q(store, 'SELECT "Id", "IsDeleted" FROM "Account"') if not d}
    expected = live & _active_accounts(store)
    assert {r["Id"] for r in got["records"]} == expected and expected
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELECT Id FROM Account WHERE Name = null OR Id IN (SELECT Account__c FROM Subscription__c)")
    assert e.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_bulk2_queries(shared_org):
    store = shared_org.store
    sf = login_with_client_credentials(shared_org)
    soql = "SELECT Id, Name, Account__r.Name, MRR__c, Start_Date__c FROM Subscription__c"
    rows = []
    for page in sf.bulk2.Subscription__c.query(soql, max_records=10000, wait=0):
        reader = csv.reader(io.StringIO(page))
        assert next(reader) == ["Id", "Name", "Account__r.Name", "MRR__c", "Start_Date__c"]
        rows.extend(reader)
    expected = dict(q(store, 'SELECT s."Id", a."Name" FROM "Subscription__c" s JOIN "Account" a '
                             'ON a."Id" = s."Account__c" WHERE NOT s."IsDeleted"'))
    assert {r[0]: r[2] for r in rows} == expected
    assert all(r[1].startswith("SUB-") and len(r[4]) == 10 for r in rows)

    accounts = set()
    for page in sf.bulk2.Account.query(ACTIVE_ACCOUNTS_SOQL, max_records=10000, wait=0):
        reader = csv.reader(io.StringIO(page))
        assert next(reader) == ["Id", "Name"]
        accounts.update(r[0] for r in reader)
    assert accounts == {r["Id"] for r in sf.query_all(ACTIVE_ACCOUNTS_SOQL)["records"]} and accounts


def test_api_create_update_delete_and_required_account(org):
    sf = login_with_client_credentials(org)
    account = sf.query("SELECT Id FROM Account WHERE Type LIKE 'Customer%' LIMIT 1")["records"][0]["Id"]
    created = sf.Subscription__c.create({"Name": "SUB-NEW", "Account__c": account, "Status__c": "Trial",
                                         "Plan__c": "Growth", "MRR__c": 0, "Seats__c": 10,
                                         "Start_Date__c": "2025-06-01", "End_Date__c": "2025-07-01"})
    assert created["success"] and created["id"].startswith("a0S")
    got = sf.Subscription__c.get(created["id"])
    assert got["Account__c"] == account and got["Auto_Renew__c"] is False and got["IsDeleted"] is False
    sf.Subscription__c.update(created["id"], {"Status__c": "Active", "MRR__c": 350.5})
    again = sf.query(f"SELECT Status__c, MRR__c, Account__r.Id FROM Subscription__c WHERE Id = '{created['id']}'")
    assert again["records"][0]["Status__c"] == "Active" and again["records"][0]["MRR__c"] == 350.5
    assert again["records"][0]["Account__r"]["Id"] == account
    sf.Subscription__c.delete(created["id"])
    assert org.store.get(SUB, created["id"]) is None
    with pytest.raises(RecordError) as e:
        org.store.create(SUB, {"Name": "No account"})
    assert e.value.status_code == "REQUIRED_FIELD_MISSING" and e.value.fields == ["Account__c"]
