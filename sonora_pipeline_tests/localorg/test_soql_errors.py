"""SOQL refusals: Salesforce's codes, message layout and columns; and the fuzz property (only SoqlError)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from sonora_pipeline.localorg.schema import build_standard_catalog
from sonora_pipeline.localorg.soql import SoqlError, compile_query, parse
from sonora_pipeline_tests.localorg.test_soql_execute import NOW, build_org

CATALOG = build_standard_catalog()


def err(soql: str, **kw) -> SoqlError:
    with pytest.raises(SoqlError) as e:
        compile_query(soql, CATALOG, include_deleted=kw.pop("include_deleted", False), now=NOW, **kw)
    assert e.value.status == 400
    return e.value


def test_invalid_type_exact_layout():
    e = err("select count() from XYZZY")
    assert e.error_code == "INVALID_TYPE"
    assert e.message == (
        "\nselect count() from XYZZY\n                    ^\nERROR at Row:1:Column:21\nsObject type 'XYZZY' is not "
        "supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity "
        "name. Please reference your WSDL or the describe call for the appropriate names.")
    assert e.to_json() == [{"message": e.message, "errorCode": "INVALID_TYPE"}]


def test_malformed_unexpected_token_layout():
    e = err("SELECT Id, Name, From Account")
    assert e.error_code == "MALFORMED_QUERY"
    assert e.message == "\nSELECT Id, Name, From Account\n                 ^\nERROR at Row:1:Column:18\nunexpected token: 'From'"


def test_invalid_field_layout():
    e = err("SELECT Id, Foo FROM Account")
    assert e.error_code == "INVALID_FIELD"
    assert e.message == (
        "\nSELECT Id, Foo FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity "
        "'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom "
        "field name. Please reference your WSDL or the describe call for the appropriate names.")


def test_unknown_relationship():
    e = err("SELECT Id, Foo__r.Name FROM Account")
    assert e.error_code == "INVALID_FIELD"
    assert e.message.endswith(
        "ERROR at Row:1:Column:12\nDidn't understand relationship 'Foo__r' in field path. If you are attempting to "
        "use a custom relationship, be sure to append the '__r' after the custom relationship name. Please "
        "reference your WSDL or the describe call for the appropriate names.")


def test_unknown_field_on_parent_names_parent_entity():
    e = err("SELECT Owner.Nope FROM Account")
    assert "No such column 'Nope' on entity 'User'" in e.message
    e = err("SELECT What.Industry FROM Task")
    assert "No such column 'Industry' on entity 'Name'" in e.message
    e = err("SELECT Who.Account.Name FROM Task")
    assert "Didn't understand relationship 'Account'" in e.message


def test_where_field_errors_point_at_field():
    e = err("SELECT Id FROM Account WHERE Bogus = 'x'")
    assert e.error_code == "INVALID_FIELD" and "Column:30" in e.message


@pytest.mark.parametrize("soql, fragment, column", [
    ("SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00Z",
     "value of filter criterion for field 'CloseDate' must be of type date and should not be enclosed in quotes",
     46),
    ("SELECT Id FROM Opportunity WHERE CloseDate > '2024-01-01'",
     "field 'CloseDate' must be of type date and should not be enclosed in quotes", 46),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01",
     "field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes", 44),
    ("SELECT Id FROM Account WHERE ARR__c = '5'",
     "field 'ARR__c' must be of type double and should not be enclosed in quotes", 39),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = 'x'",
     "field 'NumberOfEmployees' must be of type int and should not be enclosed in quotes", 50),
    ("SELECT Id FROM Account WHERE Name = 5",
     "field 'Name' must be of type string and should be enclosed in quotes", 37),
    ("SELECT Id FROM Account WHERE IsPartner = 'true'",
     "field 'IsPartner' must be of type boolean and should not be enclosed in quotes", 42),
    ("SELECT Id FROM Account WHERE Name IN ('a', 2)",
     "field 'Name' must be of type string and should be enclosed in quotes", 44),
])
def test_literal_type_checks(soql, fragment, column):
    e = err(soql)
    assert e.error_code == "INVALID_FIELD"
    assert fragment in e.message
    assert f"Column:{column}\n" in e.message


def test_invalid_id_literal():
    e = err("SELECT Id FROM Account WHERE Id = 'abc'")
    assert e.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert e.message.endswith("invalid ID field: abc")


@pytest.mark.parametrize("soql", [
    "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry",
    "SELECT Id FROM Account GROUP BY Id",
    "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
    "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Id IN (SELECT ContactId FROM Case))",
    "SELECT TYPEOF What WHEN Account THEN Name END FROM Task",
    "SELECT FIELDS(ALL) FROM Account LIMIT 200",
    "SELECT MAX(ARR__c) FROM Account",
    "SELECT Id, COUNT() FROM Account",
    "SELECT COUNT(), Id FROM Account",
    "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
    "SELECT Id FROM Account WITH SECURITY_ENFORCED",
    "SELECT Id FROM Account FOR VIEW",
    "SELECT Id FROM Account WHERE Name INCLUDES ('a')",
    "SELECT Id FROM",
    "SELECT FROM Account",
    "",
    "   ",
    "SELECT Id FROM Account WHERE Name = \"x\"",
    "SELECT Id FROM Account WHERE Name = 'unterminated",
    "SELECT Id FROM Account WHERE Name = 'bad \\q escape'",
    "SELECT Id FROM Account WHERE CloseDate = 2024-13-45",
    "SELECT Id FROM Account LIMIT 99999999999999999999",
    "SELECT Id, Id FROM Account",
])
def test_unsupported_is_malformed(soql):
    assert err(soql).error_code == "MALFORMED_QUERY"


def test_eof_error_position():
    e = err("SELECT Id FROM")
    assert e.message == "\nSELECT Id FROM\n              ^\nERROR at Row:1:Column:15\nunexpected token: '<EOF>'"


def test_multiline_query_reports_row():
    e = err("SELECT Id\nFROM Account\nWHERE Bogus = 1")
    assert "ERROR at Row:3:Column:7" in e.message
    assert e.message.startswith("\nWHERE Bogus = 1\n      ^\n")


def test_offset_limit_range():
    assert err("SELECT Id FROM Account OFFSET 2001").error_code == "NUMBER_OUTSIDE_VALID_RANGE"


def test_non_filterable_and_non_sortable():
    assert "can not be filtered" in err("SELECT Id FROM Account WHERE Description = 'x'").message
    assert "can not be filtered" in err("SELECT Id FROM Account WHERE BillingAddress = 'x'").message
    assert "can not be sorted" in err("SELECT Id FROM Account ORDER BY Description").message


def test_bulk_rejections():
    e = err("SELECT Id, BillingAddress FROM Account", for_bulk=True)
    assert (e.error_code, e.message, e.status) == ("API_ERROR", "Selecting compound data not supported in Bulk Query",
                                                   400)
    assert err("SELECT COUNT() FROM Account", for_bulk=True).error_code == "API_ERROR"
    assert err("SELECT Id FROM Account LIMIT 5 OFFSET 1", for_bulk=True).error_code == "API_ERROR"
    # what Bulk accepts
    c = compile_query("SELECT Id, Owner.Name FROM Account ORDER BY Name LIMIT 5", CATALOG, include_deleted=False,
                      now=NOW, for_bulk=True)
    assert c.headers == ["Id", "Owner.Name"]


def test_keywords_case_insensitive():
    q = parse("sElEcT Id FrOm Account wHeRe Name = 'x' AnD IsPartner = TrUe oRdEr By Name dEsC NuLlS fIrSt LiMiT 3")
    assert q.object_name == "Account" and q.limit == 3
    assert q.order_by[0].descending and q.order_by[0].nulls_first


def test_string_escapes():
    q = parse(r"SELECT Id FROM Account WHERE Name = 'a\'b\\c\nd\te\"f'")
    assert q.where.value.value == "a'b\\c\nd\te\"f"
    q = parse(r"SELECT Id FROM Account WHERE Name LIKE '50\%\_x%'")
    assert q.where.value.like_pattern == "50\\%\\_x%"


@pytest.mark.parametrize("lit, expected", [
    ("2024-05-01T00:00:00Z", dt.datetime(2024, 5, 1)),
    ("2024-05-01T00:00:00.000Z", dt.datetime(2024, 5, 1)),
    ("2024-05-06T12:34:56.789+00:00", dt.datetime(2024, 5, 6, 12, 34, 56, 789000)),
    ("2024-05-06T12:34:56-0800", dt.datetime(2024, 5, 6, 20, 34, 56)),
    ("2024-05-06T01:00:00+02:00", dt.datetime(2024, 5, 5, 23, 0, 0)),
])
def test_datetime_literals(lit, expected):
    q = parse(f"SELECT Id FROM Account WHERE CreatedDate >= {lit}")
    assert q.where.value.kind == "datetime" and q.where.value.value == expected


# -- fuzz -------------------------------------------------------------------------------------------------

_VOCAB = [
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST",
    "LAST", "LIMIT", "OFFSET", "COUNT()", "COUNT", "(", ")", ",", ".", "=", "!=", "<>", "<", "<=", ">", ">=",
    "Id", "Name", "Owner.Name", "Account.Owner.Email", "Who.Name", "What.Type", "BillingAddress", "Industry",
    "CreatedDate", "CloseDate", "ARR__c", "IsDeleted", "Account", "Contact", "Task", "Opportunity", "Case",
    "XYZZY", "'abc'", "'a\\'b'", "'%'", "'\\\\'", "5", "-5.5", "1e5", "true", "FALSE", "null", "2024-01-01",
    "2024-01-01T00:00:00Z", "TODAY", "LAST_N_DAYS:3", "NEXT_N_DAYS:", "GROUP", "HAVING", "TYPEOF", "FIELDS(ALL)",
    "'", "\"", "\\", ";", "--", "/*", "\n", "\t", "é", "\x00", "𝔘",
]


def _soup(rng: random.Random) -> str:
    n = rng.randint(0, 14)
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randint(0, len(chars))
        if op < 0.4 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(pos, rng.choice("'\"\\(),.=<>!%_ \n0123456789abcXYZ:-+"))
        else:
            chars[pos:pos] = list(rng.choice(_VOCAB))
    return "".join(chars)


_SEEDS = [
    "SELECT Id, Name, Owner.Name FROM Account WHERE Name LIKE 'A%' AND Industry != null ORDER BY Name DESC LIMIT 5",
    "SELECT COUNT() FROM Task WHERE What.Type = 'Account' OR Who.Name IN ('a', 'b')",
    "SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS:30 AND Amount > 5.5 OFFSET 3",
    "SELECT Id, BillingAddress FROM Account WHERE CreatedDate >= 2024-05-01T00:00:00.000+00:00",
]


def test_fuzz_only_soql_errors():
    """Random token soup, mutated valid queries and random bytes: only SoqlError, and what compiles runs."""
    catalog, conn = build_org()
    rng = random.Random(20240506)
    inputs: list[str] = []
    for _ in range(1500):
        inputs.append(_soup(rng))
        inputs.append(_mutate(rng, rng.choice(_SEEDS)))
        inputs.append("".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 30))))
    compiled_ok = 0
    for text in inputs:
        for include_deleted, for_bulk in ((False, False), (True, True)):
            try:
                c = compile_query(text, catalog, include_deleted=include_deleted, now=NOW, for_bulk=for_bulk)
            except SoqlError as e:
                assert e.error_code and isinstance(e.message, str)
                assert e.__cause__ is None, f"internal error on {text!r}: {e.__cause__!r}"
                continue
            compiled_ok += 1
            conn.execute(c.sql, c.params).fetchall()  # a compiled query must always run
            if c.bulk_sql:
                conn.execute(c.bulk_sql, c.params).fetchall()
    assert compiled_ok > 0


def test_deep_nesting_compiles_to_the_same_answer_as_none():
    """3,000 nested parentheses (a 6 kB query, well under SOQL's length limit) neither crash the compiler
    (no RecursionError) nor change the answer."""
    catalog, conn = build_org()
    plain = compile_query("SELECT Id FROM Account WHERE Name = 'Acme'", catalog, include_deleted=False, now=NOW)
    text = "SELECT Id FROM Account WHERE " + "(" * 3000 + "Name = 'Acme'" + ")" * 3000
    nested = compile_query(text, catalog, include_deleted=False, now=NOW)
    expected = conn.execute(plain.sql, plain.params).fetchall()
    assert expected and conn.execute(nested.sql, nested.params).fetchall() == expected


def test_non_string_input():
    with pytest.raises(SoqlError):
        compile_query(None, CATALOG, include_deleted=False, now=NOW)  # type: ignore[arg-type]
