"""SOQL semi-joins (`field IN (SELECT ...)`) and anti-joins (`NOT IN (SELECT ...)`): results checked against
a plain Python computation over the tables, Salesforce's restrictions and their errors, and the same queries
through the REST and Bulk 2.0 APIs of a running org."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sonora_pipeline.localorg.clock import OrgClock
from sonora_pipeline.localorg.generator import generate_org
from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import SoqlError, bulk_arrow, compile_query, parse, to_rest_records
from sonora_pipeline.localorg.store import OrgStore
from sonora_pipeline_tests.localorg.test_simple_salesforce import login_with_client_credentials
from sonora_pipeline_tests.localorg.test_soql_execute import A2, A3, A4, NOW, _insert, build_org

GEN_NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def gen():
    """A generated org (with soft-deleted rows) queried straight through the compiler."""
    store = OrgStore(build_standard_catalog(), OrgClock(GEN_NOW))
    generate_org(store, 4000, seed=5, now=GEN_NOW)
    return store


@pytest.fixture(scope="module")
def small():
    """The hand-built org of test_soql_execute plus rows that exercise nulls and the recycle bin."""
    catalog, conn = build_org()
    _insert(conn, "Contact", [
        {"Id": "003000000000002AAA", "LastName": "Orphan", "Name": "Olly Orphan", "AccountId": None,
         "IsDeleted": False},
        {"Id": "003000000000003AAA", "LastName": "Beta", "Name": "Bea Beta", "AccountId": A2, "IsDeleted": False},
        {"Id": "003000000000004AAA", "LastName": "Gone", "Name": "Gus Gone", "AccountId": A4, "IsDeleted": True},
    ])
    _insert(conn, "Opportunity", [
        {"Id": "006000000000002AAA", "Name": "Recycled", "AccountId": A3, "CloseDate": dt.date(2024, 5, 5),
         "Amount": 5.0, "IsDeleted": True},
        {"Id": "006000000000003AAA", "Name": "No account", "AccountId": None, "CloseDate": dt.date(2024, 5, 5),
         "Amount": 1.0, "IsDeleted": False},
    ])
    return catalog, conn


def rows(store: OrgStore, sql: str) -> list[tuple]:
    cur = store.cursor()
    try:
        return cur.execute(sql).fetchall()
    finally:
        cur.close()


def run_gen(store: OrgStore, soql: str, *, include_deleted: bool = False) -> list[dict]:
    compiled = compile_query(soql, store.catalog, include_deleted=include_deleted, now=GEN_NOW)
    cur = store.cursor()
    try:
        result = cur.execute(compiled.sql, compiled.params).fetchall()
        if compiled.is_count:
            return result[0][0]
        return to_rest_records(compiled, result, "59.0")
    finally:
        cur.close()


def run_small(org, soql: str, *, include_deleted: bool = False):
    catalog, conn = org
    compiled = compile_query(soql, catalog, include_deleted=include_deleted, now=NOW)
    result = conn.execute(compiled.sql, compiled.params).fetchall()
    if compiled.is_count:
        return result[0][0]
    return to_rest_records(compiled, result, "59.0")


def ids(records) -> set[str]:
    return {r["Id"] for r in records}


def err(soql: str, org=None) -> SoqlError:
    catalog = org[0] if org else build_standard_catalog()
    with pytest.raises(SoqlError) as e:
        compile_query(soql, catalog, include_deleted=False, now=NOW)
    return e.value


# -- results against Python -------------------------------------------------------------------------------

def _open_opportunity_accounts(store: OrgStore) -> set[str]:
    return {a for a, closed, deleted in rows(store, 'SELECT "AccountId", "IsClosed", "IsDeleted" FROM "Opportunity"')
            if a is not None and not closed and not deleted}


def test_contacts_of_accounts_with_open_opportunities(gen):
    open_accounts = _open_opportunity_accounts(gen)
    expected = {cid for cid, acc, deleted in rows(gen, 'SELECT "Id", "AccountId", "IsDeleted" FROM "Contact"')
                if not deleted and acc in open_accounts}
    got = run_gen(gen, "SELECT Id, Name, Account.Name FROM Contact "
                       "WHERE AccountId IN (SELECT AccountId FROM Opportunity WHERE IsClosed = false)")
    assert ids(got) == expected
    assert 0 < len(expected) < len(rows(gen, 'SELECT 1 FROM "Contact" WHERE NOT "IsDeleted"'))
    count = run_gen(gen, "SELECT COUNT() FROM Contact "
                         "WHERE AccountId IN (SELECT AccountId FROM Opportunity WHERE IsClosed = false)")
    assert count == len(expected)


def test_accounts_whose_id_is_in_a_filtered_child_select_with_a_relationship_path(gen):
    # Inner WHERE with a relationship path (Opportunity.Owner.IsActive) and a literal list.
    opp = rows(gen, 'SELECT o."AccountId", o."StageName", o."IsDeleted", u."IsActive" FROM "Opportunity" o '
                    'LEFT JOIN "User" u ON u."Id" = o."OwnerId"')
    wanted = {a for a, stage, deleted, active in opp
              if a and not deleted and active and stage in ("Closed Won", "Negotiation/Review")}
    accounts = rows(gen, 'SELECT "Id", "IsDeleted", "Industry" FROM "Account"')
    expected = {i for i, deleted, industry in accounts if not deleted and i in wanted and industry is not None}
    got = run_gen(gen, "SELECT Id, Name FROM Account a WHERE Industry != null AND Id IN "
                       "(SELECT AccountId FROM Opportunity o WHERE Owner.IsActive = true "
                       "AND StageName IN ('Closed Won', 'Negotiation/Review')) ORDER BY Name")
    assert ids(got) == expected and expected
    names = [r["Name"].lower() for r in got]
    assert names == sorted(names)


def test_anti_join_accounts_without_open_opportunities(gen):
    open_accounts = _open_opportunity_accounts(gen)
    expected = {i for i, deleted in rows(gen, 'SELECT "Id", "IsDeleted" FROM "Account"')
                if not deleted and i not in open_accounts}
    got = run_gen(gen, "SELECT Id FROM Account WHERE Id NOT IN "
                       "(SELECT AccountId FROM Opportunity WHERE IsClosed = false)")
    assert ids(got) == expected and expected


def test_semi_and_anti_join_together_child_to_child(gen):
    # Opportunities of accounts that have contacts, minus those whose account has an escalated case.
    contact_accounts = {a for a, d in rows(gen, 'SELECT "AccountId", "IsDeleted" FROM "Contact"') if a and not d}
    escalated = {a for a, d, e in rows(gen, 'SELECT "AccountId", "IsDeleted", "IsEscalated" FROM "Case"')
                 if a and not d and e}
    expected = {i for i, a, d in rows(gen, 'SELECT "Id", "AccountId", "IsDeleted" FROM "Opportunity"')
                if not d and a in contact_accounts and a not in escalated}
    got = run_gen(gen, "SELECT Id FROM Opportunity WHERE AccountId IN (SELECT AccountId FROM Contact) "
                       "AND (AccountId NOT IN (SELECT AccountId FROM Case WHERE IsEscalated = true))")
    assert ids(got) == expected and expected


def test_anti_join_keeps_rows_whose_field_is_null(small):
    # Contacts: C1 -> A1 (has an opportunity), Orphan -> null, Beta -> A2 (no opportunity); Gone is deleted.
    got = run_small(small, "SELECT Name FROM Contact WHERE AccountId NOT IN (SELECT AccountId FROM Opportunity)")
    assert sorted(r["Name"] for r in got) == ["Bea Beta", "Olly Orphan"]
    got = run_small(small, "SELECT Name FROM Contact WHERE AccountId IN (SELECT AccountId FROM Opportunity)")
    assert [r["Name"] for r in got] == ["Ann Smith"]


def test_null_refs_in_the_sub_select_do_not_empty_an_anti_join(small):
    # An opportunity with a null AccountId must not turn SQL's NOT IN into "nothing matches".
    got = run_small(small, "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity)")
    assert sorted(r["Name"] for r in got) == ["O'Reilly", "beta Corp"]


def test_sub_select_hides_deleted_rows_even_for_query_all(small):
    # A3's only opportunity is in the recycle bin; A4 (deleted) has a deleted contact.
    live = run_small(small, "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity)")
    assert [r["Name"] for r in live] == ["Acme"]
    everything = run_small(small, "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity)",
                           include_deleted=True)
    assert [r["Name"] for r in everything] == ["Acme"]
    with_contacts = run_small(small, "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact)",
                              include_deleted=True)
    assert sorted(r["Name"] for r in with_contacts) == ["Acme", "beta Corp"]


def test_parameters_stay_in_order_around_sub_selects(small):
    soql = ("SELECT Name FROM Account WHERE Name LIKE '%c%' AND Id IN (SELECT AccountId FROM Contact "
            "WHERE LastName IN ('Smith', 'Beta') AND Name != 'x') AND Industry = 'Technology'")
    compiled = compile_query(soql, small[0], include_deleted=False, now=NOW)
    assert compiled.params == ["%c%", "Smith", "Beta", "x", "Technology"]
    assert "'Smith'" not in compiled.sql and "Technology" not in compiled.sql
    assert [r["Name"] for r in run_small(small, soql)] == ["Acme"]


def test_in_list_mixing_15_and_18_character_ids_binds_parameters_in_order(small):
    got = run_small(small, f"SELECT Name FROM Account WHERE Id IN ('{A2[:15]}', '{A3}')")
    assert sorted(r["Name"] for r in got) == ["O'Reilly", "beta Corp"]


def test_polymorphic_reference_on_the_left_and_object_prefix(small):
    got = run_small(small, "SELECT Subject FROM Task WHERE WhoId IN (SELECT Id FROM Contact WHERE LastName = 'Smith')")
    assert [r["Subject"] for r in got] == ["Call"]
    got = run_small(small, "SELECT Subject FROM Task t WHERE t.WhatId IN (SELECT Id FROM Opportunity)")
    assert [r["Subject"] for r in got] == ["Deal"]


def test_bulk_compiles_semi_joins(small):
    catalog, conn = small
    compiled = compile_query("SELECT Id, Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)",
                             catalog, include_deleted=False, now=NOW, for_bulk=True)
    table = bulk_arrow(conn, compiled)
    assert sorted(table.column("Name").to_pylist()) == ["O'Reilly"]


def test_parse_keeps_the_sub_select():
    where = parse("SELECT Id FROM Contact WHERE AccountId NOT IN "
                  "(SELECT AccountId FROM Case c WHERE IsClosed = true)").where
    assert where.negated and where.query.object_name == "Case" and where.query.alias == "c"
    assert where.query.select[0].text == "AccountId"


# -- restrictions -------------------------------------------------------------------------------------------

SEMI = "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)"


@pytest.mark.parametrize("soql, code, message", [
    ("SELECT Id FROM Account WHERE Name = 'a' OR Id IN (SELECT AccountId FROM Contact)",
     "MALFORMED_QUERY", "Semi join sub-selects are not allowed with the 'OR' operator"),
    ("SELECT Id FROM Account WHERE Name = 'a' AND (Name = 'b' OR Id NOT IN (SELECT AccountId FROM Contact))",
     "MALFORMED_QUERY", "Semi join sub-selects are not allowed with the 'OR' operator"),
    ("SELECT Id FROM Account WHERE NOT Id IN (SELECT AccountId FROM Contact)",
     "MALFORMED_QUERY", "Semi join sub-selects are only allowed at the top level WHERE expressions and not in "
                        "nested WHERE expressions."),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact "
     "WHERE Id IN (SELECT ContactId FROM Case))",
     "MALFORMED_QUERY", "Nesting of semi join sub-selects is not supported"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact) AND Id IN (SELECT AccountId FROM Case) "
     "AND Id NOT IN (SELECT AccountId FROM Opportunity)",
     "MALFORMED_QUERY", "Maximum 2 semi join sub-selects are allowed"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT ParentId FROM Account)",
     "MALFORMED_QUERY", "The inner and outer selects should not be on the same object type"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT WhatId FROM Task)",
     "MALFORMED_QUERY", "Entity 'Task' is not supported for semi join inner selects"),
    ("SELECT Id FROM Contact WHERE Id IN (SELECT WhoId FROM Event)",
     "MALFORMED_QUERY", "Entity 'Event' is not supported for semi join inner selects"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact ORDER BY Name)",
     "MALFORMED_QUERY", "ORDER BY is not supported in semi join sub-selects"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact LIMIT 5)",
     "MALFORMED_QUERY", "LIMIT is not supported in semi join sub-selects"),
    ("SELECT Id FROM Account WHERE Name IN (SELECT AccountId FROM Contact)",
     "INVALID_FIELD", "Semi join sub-selects can only filter an Id or reference field: 'Name' is of type string"),
    ("SELECT Id FROM Contact WHERE Account.Id IN (SELECT AccountId FROM Opportunity)",
     "INVALID_FIELD", "Semi join sub-selects can only filter a field of the queried object: 'Account.Id' is a "
                      "relationship path"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT Name FROM Contact)",
     "INVALID_FIELD", "The selected field of a semi join sub-select must be an Id or reference field: 'Name' is "
                      "of type string"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT Account.Id FROM Contact)",
     "INVALID_FIELD", "The selected field of a semi join sub-select can't traverse relationships: 'Account.Id'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId, Id FROM Contact)",
     "INVALID_FIELD", "Semi join sub-selects must select exactly one Id or reference field"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT COUNT() FROM Contact)",
     "INVALID_FIELD", "Semi join sub-selects must select exactly one Id or reference field"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT OwnerId FROM Contact)",
     "INVALID_FIELD", "The selected field 'OwnerId' of Contact does not reference the same object type as 'Id'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Nope__c)", "INVALID_TYPE", "sObject type 'Nope__c'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT Nope__c FROM Contact)", "INVALID_FIELD", "No such column 'Nope__c'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Bogus = 1)",
     "INVALID_FIELD", "No such column 'Bogus' on entity 'Contact'"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Birthdate = 'x')",
     "INVALID_FIELD", "value of filter criterion for field 'Birthdate' must be of type date"),
])
def test_restrictions(soql, code, message):
    e = err(soql)
    assert e.error_code == code
    assert message in e.message
    assert "ERROR at Row:1:Column:" in e.message


def test_errors_point_at_the_sub_select():
    e = err("SELECT Id FROM Account WHERE Name = 'a' OR Id IN (SELECT AccountId FROM Contact)")
    assert "ERROR at Row:1:Column:51\n" in e.message  # the sub-select's SELECT
    e = err("SELECT Id FROM Account WHERE Id IN (SELECT WhatId FROM Task)")
    assert "ERROR at Row:1:Column:56\n" in e.message  # the inner object


def test_two_semi_joins_are_fine_and_the_outer_query_keeps_its_other_clauses():
    compiled = compile_query(SEMI + " AND Id NOT IN (SELECT AccountId FROM Case) ORDER BY Name LIMIT 10",
                             build_standard_catalog(), include_deleted=False, now=NOW)
    assert compiled.sql.count("IN (SELECT") == 2 and compiled.limit == 10


# -- through a running org -----------------------------------------------------------------------------------

SOQL_OPEN = ("SELECT Id, Name FROM Contact WHERE AccountId IN "
             "(SELECT AccountId FROM Opportunity WHERE IsClosed = false)")


def test_rest_query_all_serves_semi_joins(shared_org):
    store = shared_org.store
    open_accounts = _open_opportunity_accounts(store)
    expected = {cid for cid, acc, deleted in rows(store, 'SELECT "Id", "AccountId", "IsDeleted" FROM "Contact"')
                if not deleted and acc in open_accounts}
    sf = login_with_client_credentials(shared_org)
    result = sf.query_all(SOQL_OPEN, headers={"Sforce-Query-Options": "batchSize=200"})
    assert result["totalSize"] == len(expected) > 0
    assert {r["Id"] for r in result["records"]} == expected

    anti = sf.query_all("SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)")
    with_contacts = {a for a, d in rows(store, 'SELECT "AccountId", "IsDeleted" FROM "Contact"') if a and not d}
    live_accounts = {i for i, d in rows(store, 'SELECT "Id", "IsDeleted" FROM "Account"') if not d}
    assert {r["Id"] for r in anti["records"]} == live_accounts - with_contacts


def test_rest_refuses_semi_joins_under_or(shared_org):
    sf = login_with_client_credentials(shared_org)
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELECT Id FROM Contact WHERE Email = null OR AccountId IN (SELECT AccountId FROM Case)")
    body = e.value.content[0]
    assert body["errorCode"] == "MALFORMED_QUERY"
    assert body["message"].endswith("Semi join sub-selects are not allowed with the 'OR' operator")


def test_bulk2_query_serves_semi_joins(shared_org):
    sf = login_with_client_credentials(shared_org)
    pages = list(sf.bulk2.Contact.query(SOQL_OPEN, max_records=10000, wait=0))
    got = set()
    for page in pages:
        reader = csv.reader(io.StringIO(page))
        assert next(reader) == ["Id", "Name"]
        got.update(row[0] for row in reader)
    expected = {r["Id"] for r in sf.query_all(SOQL_OPEN)["records"]}
    assert got == expected and got
