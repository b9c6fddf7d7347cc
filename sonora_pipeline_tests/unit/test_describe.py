"""What describe becomes in the mirror: column types (exact decimals where describe allows), table names,
address compounds rebuilt from their components, and every null form of the org loading as NULL."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import duckdb
import pytest

from sonora_pipeline.mirror.commit import commit_window
from sonora_pipeline.mirror.names import table_name_for
from sonora_pipeline.mirror.spool import Spool
from sonora_pipeline.salesforce.describe import schema_from_describe, warehouse_type
from sonora_pipeline.salesforce.errors import InsufficientAccess


@pytest.mark.parametrize(("object_name", "table"), [
    ("Account", "account"), ("CaseComment", "case_comment"), ("Invoice__c", "invoice__c"), ("User", "user")])
def test_table_names(object_name, table):
    assert table_name_for(object_name) == table


def test_an_address_becomes_a_compound_of_its_readable_components_and_location_fields_are_left_out():
    describe = {"name": "Account", "label": "Account", "fields": [
        {"name": "Id", "type": "id", "label": "Id"},
        {"name": "SystemModstamp", "type": "datetime", "label": "Modstamp"},
        {"name": "BillingAddress", "type": "address", "label": "Billing Address"},
        {"name": "BillingStreet", "type": "textarea", "label": "Street", "compoundFieldName": "BillingAddress"},
        {"name": "BillingPostalCode", "type": "string", "label": "Zip", "compoundFieldName": "BillingAddress"},
        {"name": "BillingLatitude", "type": "double", "label": "Lat", "compoundFieldName": "BillingAddress",
         "precision": 18, "scale": 15},
        {"name": "Where__c", "type": "location", "label": "Where"},
        {"name": "Old__c", "type": "string", "label": "Old", "deprecatedAndHidden": True},
    ]}
    schema = schema_from_describe(describe)
    assert schema.field_names == ["Id", "SystemModstamp", "BillingStreet", "BillingPostalCode", "BillingLatitude"]
    assert [(c.name, c.parts) for c in schema.compounds] == [("BillingAddress", (
        ("street", "BillingStreet"), ("postalCode", "BillingPostalCode"), ("latitude", "BillingLatitude")))]
    assert schema.field("BillingLatitude").duckdb_type == "DECIMAL(18,15)"
    assert not schema.soft_deletes  # no IsDeleted in this describe


def test_a_required_field_missing_from_describe_is_insufficient_access():
    describe = {"name": "Account", "label": "Account", "fields": [{"name": "Id", "type": "id", "label": "Id"}]}
    with pytest.raises(InsufficientAccess, match="Account.SystemModstamp"):
        schema_from_describe(describe)


@pytest.mark.parametrize(("precision", "scale", "expected"), [
    (18, 2, "DECIMAL(18,2)"), (18, 0, "DECIMAL(18,0)"), (3, 0, "DECIMAL(3,0)"), (18.0, 15.0, "DECIMAL(18,15)"),
    ("16", "2", "DECIMAL(16,2)"), (38, 10, "DECIMAL(38,10)"),
    (None, None, "DOUBLE"), (0, 0, "DOUBLE"), (40, 2, "DOUBLE"), (5, 7, "DOUBLE"), (18, -1, "DOUBLE"),
    ("x", 2, "DOUBLE"), (18.5, 2, "DOUBLE"), (True, 0, "DOUBLE"),
])
def test_number_columns_follow_describe_precision_and_scale(precision, scale, expected):
    raw = {"name": "Amount__c", "type": "currency", "label": "Amount"}
    if precision is not None:
        raw.update(precision=precision, scale=scale)
    assert warehouse_type(raw) == expected


def _tiny_schema():
    fields = [("Id", "id"), ("SystemModstamp", "datetime"), ("IsDeleted", "boolean"), ("Name", "string"),
              ("Amount", "currency"), ("Ratio", "double"), ("Seats", "int"), ("Due", "date"),
              ("Flag", "boolean"), ("Stamp", "datetime")]
    describe = {"name": "Thing__c", "label": "Thing", "fields": [
        {"name": n, "type": t, "label": n, **({"precision": 18, "scale": 2} if t in ("currency", "double") else {})}
        for n, t in fields]}
    return schema_from_describe(describe)


def test_every_null_form_loads_as_null_for_every_type(tmp_path):
    """A Bulk page with `""` and bare empty fields in every column type, and REST records with `""`."""
    schema = _tiny_schema()
    columns = schema.field_names
    spool = Spool.create(tmp_path / "spool", "Thing__c", columns)
    header = ",".join(f'"{c}"' for c in columns)
    quoted = '"a0S000000000001AAA","2026-01-01T00:00:00.000Z","false","","","","","","",""'
    bare = '"a0S000000000002AAA","2026-01-01T00:00:00.000Z","false",,,,,,,'
    values = '"a0S000000000003AAA","2026-01-01T00:00:00.000Z","false","x","1.2345678E7","0.5","3","2026-01-02",' \
             '"true","2026-01-01T01:02:03.000Z"'
    spool.add_csv_page(f"{header}\n{quoted}\n{bare}\n{values}\n".encode(), 3)
    rest = {c: "" for c in columns}
    rest.update(Id="a0S000000000004AAA", SystemModstamp="2026-01-01T00:00:00.000+0000", IsDeleted=False)
    spool.add_records([rest], schema)
    with duckdb.connect(str(tmp_path / "m.duckdb")) as conn:
        commit_window(conn, schema, spool, kind="initial", method="bulk", partition_key=None, window_start=None,
                      window_end=None, read_from=None, read_to=None, api_calls=1, run_id="t",
                      advance_cursor=False)
        rows = {r[0]: r[1:] for r in conn.execute(
            'SELECT "Id", "Name", "Amount", "Ratio", "Seats", "Due", "Flag", "Stamp" FROM salesforce."thing__c"'
        ).fetchall()}
    for rid in ("a0S000000000001AAA", "a0S000000000002AAA", "a0S000000000004AAA"):
        assert rows[rid] == (None,) * 7, rid
    assert rows["a0S000000000003AAA"][:5] == ("x", Decimal("12345678.00"), Decimal("0.50"), 3,
                                              datetime(2026, 1, 2).date())
