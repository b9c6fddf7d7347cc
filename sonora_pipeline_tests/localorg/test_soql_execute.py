"""SOQL compiled and run against a real in-memory DuckDB org built from the standard catalog."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import SoqlError, compile_query, to_rest_records
from sonora_pipeline.localorg.store import create_object_table

NOW = dt.datetime(2024, 5, 6, 12, 0, 0)
U1, U2 = "005000000000001AAA", "005000000000002AAA"
A1, A2, A3, A4 = "001000000000001AAA", "001000000000002AAA", "001000000000003AAA", "001000000000004AAA"
C1, O1 = "003000000000001AAA", "006000000000001AAA"
T1, T2, T3 = "00T000000000001AAA", "00T000000000002AAA", "00T000000000003AAA"


def _insert(conn, table: str, rows: list[dict]) -> None:
    for row in rows:
        cols = ", ".join(f'"{k}"' for k in row)
        conn.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join("?" for _ in row)})', list(row.values()))


def build_org():
    """A catalog and a DuckDB connection holding a handful of related records."""
    catalog = build_standard_catalog()
    conn = duckdb.connect()
    for obj in catalog.objects():
        create_object_table(conn, obj)
    _insert(conn, "User", [
        {"Id": U1, "Name": "Jane Doe", "Email": "jane@example.com", "LastName": "Doe"},
        {"Id": U2, "Name": "Bob Ray", "Email": "bob@example.com", "LastName": "Ray"},
    ])
    _insert(conn, "Account", [
        {"Id": A1, "Name": "Acme", "OwnerId": U1, "Industry": "Technology", "BillingCity": "Anchorage",
         "BillingLatitude": 61.217061, "ARR__c": 12345678.9, "AnnualRevenue": 9.0e7, "NumberOfEmployees": 120,
         "CreatedDate": dt.datetime(2024, 5, 1, 10, 0, 0), "Contract_End_Date__c": dt.date(2024, 6, 1),
         "Customer_Success_Manager__c": U2, "IsDeleted": False, "IsPartner": True},
        {"Id": A2, "Name": "beta Corp", "OwnerId": None, "Industry": None, "ARR__c": 300.0, "IsDeleted": False,
         "CreatedDate": dt.datetime(2024, 5, 6, 8, 30, 0), "IsPartner": False},
        {"Id": A3, "Name": "O'Reilly", "OwnerId": U2, "Industry": "Retail", "ARR__c": None, "IsDeleted": False,
         "CreatedDate": dt.datetime(2023, 1, 1, 0, 0, 0), "IsPartner": False},
        {"Id": A4, "Name": "Gone Inc", "OwnerId": U1, "Industry": "Retail", "IsDeleted": True, "IsPartner": False},
    ])
    _insert(conn, "Contact", [
        {"Id": C1, "LastName": "Smith", "Name": "Ann Smith", "AccountId": A1, "IsDeleted": False},
    ])
    _insert(conn, "Opportunity", [
        {"Id": O1, "Name": "Big Deal", "AccountId": A1, "CloseDate": dt.date(2024, 5, 5), "Amount": 9.0e7,
         "IsDeleted": False},
    ])
    _insert(conn, "Task", [
        {"Id": T1, "Subject": "Call", "WhoId": C1, "WhatId": A1, "IsDeleted": False, "IsArchived": False},
        {"Id": T2, "Subject": "Old", "WhoId": None, "WhatId": None, "IsDeleted": False, "IsArchived": True},
        {"Id": T3, "Subject": "Deal", "WhoId": None, "WhatId": O1, "IsDeleted": False, "IsArchived": False},
    ])
    return catalog, conn


@pytest.fixture(scope="module")
def org():
    return build_org()


def run(org, soql, *, include_deleted=False, now=NOW):
    catalog, conn = org
    compiled = compile_query(soql, catalog, include_deleted=include_deleted, now=now)
    rows = conn.execute(compiled.sql, compiled.params).fetchall()
    if compiled.is_count:
        return rows[0][0]
    return to_rest_records(compiled, rows, "59.0")


def names(records):
    return [r["Name"] for r in records]


def test_plain_fields_canonical_keys_and_attributes(org):
    recs = run(org, "select id, name, industry, numberofemployees from account where name = 'acme'")
    assert recs == [{
        "attributes": {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{A1}"},
        "Id": A1, "Name": "Acme", "Industry": "Technology", "NumberOfEmployees": 120,
    }]


def test_value_types(org):
    (rec,) = run(org, "SELECT CreatedDate, Contract_End_Date__c, IsPartner, ARR__c FROM Account WHERE Id = "
                      f"'{A1}'")
    assert rec["CreatedDate"] == "2024-05-01T10:00:00.000+0000"
    assert rec["Contract_End_Date__c"] == "2024-06-01"
    assert rec["IsPartner"] is True
    assert rec["ARR__c"] == 12345678.9


def test_relationship_nested_and_null_lookup(org):
    recs = run(org, "SELECT Name, Owner.Name, Owner.Email FROM Account ORDER BY Name")
    by_name = {r["Name"]: r for r in recs}
    assert by_name["Acme"]["Owner"] == {
        "attributes": {"type": "User", "url": f"/services/data/v59.0/sobjects/User/{U1}"},
        "Name": "Jane Doe", "Email": "jane@example.com",
    }
    assert by_name["beta Corp"]["Owner"] is None
    assert list(by_name["Acme"].keys()) == ["attributes", "Name", "Owner"]


def test_keys_follow_select_order_with_relationship_first(org):
    (rec,) = run(org, f"SELECT Owner.Name, Name, Owner.Email FROM Account WHERE Id = '{A1}'")
    assert list(rec.keys()) == ["attributes", "Owner", "Name"]
    assert list(rec["Owner"].keys()) == ["attributes", "Name", "Email"]


def test_multi_level_and_custom_relationship(org):
    (rec,) = run(org, "SELECT LastName, Account.Owner.Email, Account.Customer_Success_Manager__r.Name FROM Contact")
    assert rec["Account"]["Owner"]["Email"] == "jane@example.com"
    assert rec["Account"]["Customer_Success_Manager__r"]["Name"] == "Bob Ray"
    assert rec["Account"]["attributes"]["type"] == "Account"


def test_polymorphic_relationships(org):
    recs = run(org, "SELECT Subject, Who.Name, What.Name, What.Type, Who.Id FROM Task ORDER BY Subject")
    call, deal = recs
    assert call["Who"] == {"attributes": {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{C1}"},
                           "Name": "Ann Smith", "Id": C1}
    assert call["What"]["attributes"]["type"] == "Account"
    assert call["What"]["Name"] == "Acme" and call["What"]["Type"] == "Account"
    assert deal["Who"] is None
    assert deal["What"]["Type"] == "Opportunity" and deal["What"]["Name"] == "Big Deal"


def test_polymorphic_filter(org):
    assert [r["Subject"] for r in run(org, "SELECT Subject FROM Task WHERE What.Type = 'opportunity'")] == ["Deal"]


def test_address_compound(org):
    recs = run(org, "SELECT Name, BillingAddress FROM Account ORDER BY Name")
    by_name = {r["Name"]: r for r in recs}
    assert by_name["Acme"]["BillingAddress"] == {
        "city": "Anchorage", "country": None, "geocodeAccuracy": None, "latitude": 61.217061,
        "longitude": None, "postalCode": None, "state": None, "street": None,
    }
    assert list(by_name["Acme"]["BillingAddress"]) == sorted(by_name["Acme"]["BillingAddress"])
    assert by_name["beta Corp"]["BillingAddress"] is None


def test_case_insensitive_equality_in_and_like(org):
    assert names(run(org, "SELECT Name FROM Account WHERE Name = 'ACME'")) == ["Acme"]
    assert names(run(org, "SELECT Name FROM Account WHERE Name IN ('acme', 'BETA CORP') ORDER BY Name")) == \
        ["Acme", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE Name LIKE 'BET%'")) == ["beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE NOT Name LIKE '%c%' ORDER BY Name")) == ["O'Reilly"]


def test_like_escapes(org):
    assert names(run(org, "SELECT Name FROM Account WHERE Name LIKE 'O\\'R%'")) == ["O'Reilly"]
    assert run(org, "SELECT Name FROM Account WHERE Name LIKE 'Acm\\_'") == []
    assert names(run(org, "SELECT Name FROM Account WHERE Name LIKE 'Acm_'")) == ["Acme"]


def test_not_equal_and_not_in_match_nulls(org):
    assert names(run(org, "SELECT Name FROM Account WHERE Industry != 'Retail' ORDER BY Name")) == \
        ["Acme", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE Industry NOT IN ('Technology') ORDER BY Name")) == \
        ["beta Corp", "O'Reilly"]
    assert names(run(org, "SELECT Name FROM Account WHERE Industry = null")) == ["beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE Industry != null ORDER BY Name")) == ["Acme", "O'Reilly"]


def test_and_or_not_parentheses(org):
    q = "SELECT Name FROM Account WHERE (Industry = 'Retail' OR Industry = 'Technology') AND NOT Name = 'acme'"
    assert names(run(org, q)) == ["O'Reilly"]


def test_order_by_nulls_defaults(org):
    assert names(run(org, "SELECT Name FROM Account ORDER BY Industry, Name")) == ["beta Corp", "O'Reilly", "Acme"]
    assert names(run(org, "SELECT Name FROM Account ORDER BY Industry DESC")) == ["Acme", "O'Reilly", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account ORDER BY Industry ASC NULLS LAST")) == \
        ["O'Reilly", "Acme", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account ORDER BY Owner.Name DESC NULLS FIRST")) == \
        ["beta Corp", "Acme", "O'Reilly"]


def test_order_by_is_case_insensitive(org):
    assert names(run(org, "SELECT Name FROM Account ORDER BY Name")) == ["Acme", "beta Corp", "O'Reilly"]


def test_limit_offset(org):
    assert names(run(org, "SELECT Name FROM Account ORDER BY Name LIMIT 2")) == ["Acme", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account ORDER BY Name LIMIT 1 OFFSET 1")) == ["beta Corp"]
    assert names(run(org, "SELECT Name FROM Account ORDER BY Name OFFSET 2")) == ["O'Reilly"]


def test_count(org):
    assert run(org, "SELECT COUNT() FROM Account") == 3
    assert run(org, "select count() from account where Industry = 'retail'") == 1
    assert run(org, "SELECT COUNT() FROM Account", include_deleted=True) == 4
    assert run(org, "SELECT COUNT() FROM Account LIMIT 2") == 2
    catalog, _ = org
    assert compile_query("SELECT COUNT() FROM Account", catalog, include_deleted=False, now=NOW).is_count


def test_deleted_and_archived(org):
    assert "Gone Inc" not in names(run(org, "SELECT Name FROM Account"))
    assert "Gone Inc" in names(run(org, "SELECT Name FROM Account", include_deleted=True))
    assert [r["Subject"] for r in run(org, "SELECT Subject FROM Task ORDER BY Subject")] == ["Call", "Deal"]
    assert len(run(org, "SELECT Subject FROM Task", include_deleted=True)) == 3


def test_date_and_datetime_literals(org):
    assert names(run(org, "SELECT Name FROM Account WHERE CreatedDate >= 2024-05-01T00:00:00Z ORDER BY Name")) == \
        ["Acme", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE CreatedDate < 2024-05-01T10:00:00.001Z AND "
                          "CreatedDate > 2024-05-01T09:59:59.999+00:00")) == ["Acme"]
    # 02:00-0800 is 10:00 UTC
    assert names(run(org, "SELECT Name FROM Account WHERE CreatedDate = 2024-05-01T02:00:00-0800")) == ["Acme"]
    assert names(run(org, "SELECT Name FROM Account WHERE Contract_End_Date__c = 2024-06-01")) == ["Acme"]
    assert [r["Name"] for r in run(org, "SELECT Name FROM Opportunity WHERE CloseDate < 2024-05-06")] == ["Big Deal"]


def test_relative_date_literals(org):
    assert names(run(org, "SELECT Name FROM Account WHERE CreatedDate = TODAY")) == ["beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE CreatedDate = LAST_N_DAYS:7 ORDER BY Name")) == \
        ["Acme", "beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE CreatedDate < LAST_N_DAYS:7")) == ["O'Reilly"]
    assert run(org, "SELECT Name FROM Account WHERE CreatedDate = YESTERDAY") == []
    assert names(run(org, "SELECT Name FROM Account WHERE Contract_End_Date__c = NEXT_N_DAYS:30")) == ["Acme"]
    assert [r["Name"] for r in run(org, "SELECT Name FROM Opportunity WHERE CloseDate = yesterday")] == ["Big Deal"]
    later = NOW + dt.timedelta(days=40)
    assert run(org, "SELECT Name FROM Account WHERE Contract_End_Date__c = NEXT_N_DAYS:30", now=later) == []


def test_numbers_and_booleans(org):
    assert names(run(org, "SELECT Name FROM Account WHERE ARR__c > 1000 AND IsPartner = TRUE")) == ["Acme"]
    assert names(run(org, "SELECT Name FROM Account WHERE ARR__c <= 300")) == ["beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE ARR__c IN (300, 5.5)")) == ["beta Corp"]
    assert names(run(org, "SELECT Name FROM Account WHERE NumberOfEmployees = 120")) == ["Acme"]
    assert names(run(org, "SELECT Name FROM Account WHERE ARR__c > -5.5 ORDER BY ARR__c DESC")) == \
        ["Acme", "beta Corp"]


def test_id_filters(org):
    assert names(run(org, f"SELECT Name FROM Account WHERE Id = '{A1.lower()}'")) == ["Acme"]
    assert names(run(org, f"SELECT Name FROM Account WHERE Id = '{A1[:15]}'")) == ["Acme"]
    assert names(run(org, f"SELECT Name FROM Account WHERE OwnerId IN ('{U1}', '{U2[:15]}') ORDER BY Name")) == \
        ["Acme", "O'Reilly"]


def test_object_prefix_and_alias(org):
    assert names(run(org, "SELECT Account.Name FROM Account WHERE Account.Name = 'Acme'")) == ["Acme"]
    assert names(run(org, "SELECT a.Name FROM Account a WHERE a.Industry = 'Retail'")) == ["O'Reilly"]


@pytest.mark.parametrize(("evil", "refused"), [
    ("x\\' OR Name != \\'y", False),                 # escaped quotes: all one literal
    ("'; DROP TABLE \"Account\"; --", True),          # the quote ends the literal: the rest is not SOQL
    ("\\\"); DELETE FROM \"Account\"; --", False),
    ("%' OR 1=1 --", True),
    ("a\\'); DROP TABLE Account; --", False),
    ("\\\\' OR 1=1; --", True),                        # an escaped backslash, then a quote that ends it
])
def test_injection_attempts_are_just_values(org, evil, refused):
    """Whatever sits inside a SOQL string literal stays a value: it never changes the DuckDB statement. A quote
    that ends the literal early leaves text that is not SOQL, refused as MALFORMED_QUERY (as Salesforce does)."""
    soql = f"SELECT Name FROM Account WHERE Name = '{evil}'"
    if refused:
        with pytest.raises(SoqlError) as caught:
            run(org, soql)
        assert caught.value.error_code == "MALFORMED_QUERY"
    else:
        assert run(org, soql) == []  # no Account has that name
    assert run(org, "SELECT COUNT() FROM Account") == 3


def test_quoted_apostrophe_matches(org):
    assert names(run(org, "SELECT Name FROM Account WHERE Name = 'O\\'Reilly'")) == ["O'Reilly"]


def test_field_level_security_hides_fields():
    catalog, conn = build_org()
    catalog.revoke_read("Account", "Industry")
    with pytest.raises(SoqlError) as e:
        compile_query("SELECT Industry FROM Account", catalog, include_deleted=False, now=NOW)
    assert e.value.error_code == "INVALID_FIELD"
    assert "No such column 'Industry' on entity 'Account'" in e.value.message
    catalog.revoke_read("Account", "OwnerId")
    with pytest.raises(SoqlError) as e:
        compile_query("SELECT Owner.Name FROM Account", catalog, include_deleted=False, now=NOW)
    assert "Didn't understand relationship 'Owner'" in e.value.message
