"""SQL identifiers from describe (field API names, table names) are double-quoted with `"` doubled, so any name
is one identifier: checked by hand and by DuckDB itself, in memory."""

from __future__ import annotations

import duckdb
import pytest

from sonora_pipeline.mirror.names import quote_identifier as q

NAMES = ["Id", "user", "select", "Billing Street", 'Say "hi"', '"', "Zoë_東京__c", "a;DROP TABLE t;--", "x\ny"]


@pytest.mark.parametrize(("name", "quoted"), [
    ("Id", '"Id"'),
    ("user", '"user"'),                 # a reserved word (the User object's table)
    ('Say "hi"', '"Say ""hi"""'),
    ('"', '""""'),
    ("", '""'),
    ("Zoë_東京__c", '"Zoë_東京__c"'),
])
def test_identifiers_are_double_quoted_with_quotes_doubled(name, quoted):
    assert q(name) == quoted


def test_duckdb_reads_every_quoted_name_back_as_itself():
    with duckdb.connect() as conn:
        conn.execute(f"CREATE TABLE {q('weird table')} ({', '.join(f'{q(n)} INTEGER' for n in NAMES)})")
        conn.execute(f"INSERT INTO {q('weird table')} ({', '.join(q(n) for n in NAMES)}) "
                     f"VALUES ({', '.join(str(i) for i in range(len(NAMES)))})")
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'weird table' ORDER BY column_index")
            .fetchall()]
        assert columns == NAMES
        for i, name in enumerate(NAMES):
            assert conn.execute(f"SELECT {q(name)} FROM {q('weird table')}").fetchone() == (i,)
