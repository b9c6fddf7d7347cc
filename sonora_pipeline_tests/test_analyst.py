"""The analyst's first hour: the snapshot opens with the `duckdb` the README's install gives, every DuckDB file
the project writes is in the storage format all of DuckDB 1.x reads, and the README's example answers are what
the demo org gives (one demo-org sync for the whole module)."""

from __future__ import annotations

import os
import re
import shlex
import struct
import subprocess
import sys
import tomllib
from pathlib import Path

import duckdb
import pytest

from sonora_pipeline.cli.demo import AT_RISK_QUERY
from sonora_pipeline_tests import readme_examples
from sonora_pipeline_tests.readme_examples import (
    Example,
    answer_lines,
    difference,
    normalized_sql,
    parse_examples,
    with_answers,
)

PROJECT = Path(__file__).resolve().parent.parent
# DuckDB's main header (src/storage/single_file_block_manager.cpp, MainHeader::Write, and storage_info.hpp):
# an 8-byte checksum, then "DUCK", the storage version as a little-endian uint64, four uint64 flags, then the
# writing library's version string (32 bytes, NUL-padded).
MAGIC_OFFSET, VERSION_OFFSET, LIBRARY_OFFSET = 8, 12, 12 + 8 + 4 * 8
# Storage version 64 is the one every 1.x release opens (storage_info.cpp of each tag): 1.0 and 1.1 accept only
# 64, 1.2 to 1.5 read 64 up to 65..68, 2.0 up to 69; every 1.x writes 64 unless told a newer STORAGE_VERSION.
EVERY_1X_READS = 64
EXAMPLES = parse_examples(readme_examples.README.read_text("utf-8"))


def duckdb_cli() -> Path:
    """The DuckDB CLI the README's install puts next to the venv's python (package duckdb-cli)."""
    cli = Path(sys.executable).parent / "duckdb"
    assert cli.exists(), (f"{cli} is missing: the README's install (`pip install -e '.[dev]'`) must bring the "
                          "duckdb CLI (dependency duckdb-cli). Fix: reinstall the project into this venv.")
    return cli


def storage_header(path: Path) -> tuple[bytes, int, str]:
    with open(path, "rb") as f:
        head = f.read(LIBRARY_OFFSET + 32)
    version = struct.unpack_from("<Q", head, VERSION_OFFSET)[0]
    library = head[LIBRARY_OFFSET:LIBRARY_OFFSET + 32].rstrip(b"\0").decode("ascii")
    return head[MAGIC_OFFSET:MAGIC_OFFSET + 4], version, library


def pinned(package: str) -> str:
    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    found = [d.split("==", 1)[1].split()[0] for d in dependencies if re.match(rf"{re.escape(package)}==", d)]
    assert found, f"pyproject.toml pins no {package}=="
    return found[0]


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    """The demo org at the README's date, mirrored and modelled into a live warehouse file."""
    db = tmp_path_factory.mktemp("analyst") / "warehouse.duckdb"
    org = readme_examples.build_demo_warehouse(db, tmp_path_factory.mktemp("analyst-org"))
    yield db
    org.stop()


@pytest.fixture(scope="module")
def snapshot(demo_warehouse):
    """`sonora-pipeline snapshot` on the live warehouse; yields the snapshot and the command it says to open it with."""
    env = {**os.environ, "SONORA_DUCKDB_PATH": str(demo_warehouse)}
    done = subprocess.run([sys.executable, "-m", "sonora_pipeline.cli", "snapshot"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    target = demo_warehouse.with_name("warehouse-analyst.duckdb")
    assert f"Snapshot for analysts: {target}" in done.stdout
    command = re.search(r"Open it read-only, e\.g\. (.+)", done.stdout)
    assert command, done.stdout
    return target, shlex.split(command.group(1))


CUSTOMERS_BY_ACCOUNT_TYPE = """
SELECT a."Type" AS account_type, count(*) AS customers, count(*) FILTER (c.is_paying) AS paying,
       count(DISTINCT o."Id") AS opportunities
FROM sonora.customers c
JOIN salesforce.account a ON a."Id" = c.external_id
LEFT JOIN salesforce.opportunity o ON o."AccountId" = a."Id" AND NOT o."IsDeleted"
GROUP BY 1 ORDER BY 1 NULLS LAST
"""


def test_the_snapshot_opens_with_the_duckdb_cli_the_install_gives(demo_warehouse, snapshot):
    """The command the snapshot prints is the venv's DuckDB CLI, and it answers a query joining the model and the
    mirror from the snapshot exactly as the live file does, without a PATH that knows any other duckdb."""
    target, command = snapshot
    cli = duckdb_cli()
    assert command == [str(cli), "-readonly", str(target)]
    done = subprocess.run([*command, "-csv", "-c", CUSTOMERS_BY_ACCOUNT_TYPE], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(demo_warehouse), read_only=True) as conn:
        expected = conn.execute(CUSTOMERS_BY_ACCOUNT_TYPE).fetchall()
    header, *rows = done.stdout.strip().splitlines()
    assert header == "account_type,customers,paying,opportunities"
    assert rows == [",".join("" if v is None else str(v) for v in row) for row in expected]
    assert sum(row[1] for row in expected) > 300 and sum(row[3] for row in expected) > 0
    refused = subprocess.run([*command, "-c", "CREATE TABLE sonora.scratch AS SELECT 1"], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "read-only" in refused.stderr.lower()


def test_the_cli_is_the_engine_that_writes_the_files():
    """duckdb and duckdb-cli are pinned to the same release, and that release is what is installed."""
    assert pinned("duckdb") == pinned("duckdb-cli") == duckdb.__version__
    version = subprocess.run([str(duckdb_cli()), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.split()[0] == f"v{duckdb.__version__}", version.stdout


def test_every_duckdb_file_is_in_the_format_all_of_duckdb_1x_reads(demo_warehouse, snapshot):
    """The live warehouse and the snapshot carry storage version 64 in their header (no newer STORAGE_VERSION
    set anywhere) and were created by the pinned DuckDB."""
    for path in (demo_warehouse, snapshot[0]):
        magic, version, library = storage_header(path)
        assert magic == b"DUCK", path
        assert version == EVERY_1X_READS, f"{path}: storage version {version}, DuckDB 1.0 reads only 64"
        assert library == f"v{pinned('duckdb')}", path
    with duckdb.connect(str(snapshot[0]), read_only=True) as conn:
        tags = conn.execute("SELECT tags FROM duckdb_databases() WHERE NOT internal AND database_name = "
                            "current_database()").fetchone()[0]
    assert tags["storage_version"] == "v1.0.0+", tags  # DuckDB's own name for format 64: "readable by 1.0.0 and later"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.title.split(":")[0].split("(")[0].strip() for e in EXAMPLES])
def test_readme_example_answers_are_the_demo_orgs(demo_warehouse, example: Example):
    """Each README example query, run on the demo org at the README's date, gives the README's answer lines."""
    assert example.answer, (f"README.md line {example.first_line + 1}: the example has no answer lines. Fix: "
                            "python -m sonora_pipeline_tests.readme_examples --write")
    with duckdb.connect(str(demo_warehouse), read_only=True) as conn:
        got = readme_examples.run_example(conn, example)
    assert got != ["(no rows)"], f"{example.title}: the demo org gives no rows, so the example proves nothing"
    assert not difference(example, got), ("the README's answer is not the demo org's (run python -m "
                                           "sonora_pipeline_tests.readme_examples --write after a model change):\n"
                                           + difference(example, got))


def test_the_demo_prints_a_readme_example():
    """The query the demo prints with its answer is one of the README's, so its answer is checked too."""
    assert len(EXAMPLES) >= 2
    assert normalized_sql(AT_RISK_QUERY) in {normalized_sql(e.sql) for e in EXAMPLES}


def test_the_answer_convention_round_trips():
    """Writing answers changes only the `-- ` lines under each query; a query without answer lines gets them."""
    text = readme_examples.README.read_text("utf-8")
    answers = [answer_lines([("Ann O'Neil", 3, 41.5, None)]) for _ in EXAMPLES]
    rewritten = with_answers(text, answers)
    again = parse_examples(rewritten)
    assert [e.sql for e in again] == [e.sql for e in EXAMPLES]
    assert all(e.answer == ("Ann O'Neil | 3 | 41.5 | NULL",) for e in again)
    assert with_answers(rewritten, [list(e.answer) for e in EXAMPLES]) == text
    unanswered = "\n".join(line for line in text.split("\n")
                           if not (line.startswith("-- ") and any(line[3:] in e.answer for e in EXAMPLES)))
    assert all(not e.answer for e in parse_examples(unanswered))
    assert [e.answer for e in parse_examples(with_answers(unanswered, [list(e.answer) for e in EXAMPLES]))] == \
        [e.answer for e in EXAMPLES]


def test_an_org_pinned_to_a_time_is_the_same_org_on_every_start(tmp_path):
    """The README's answers rest on this: an org generated at a pinned `now` has the same records to the
    millisecond however long its construction took (the generator gets `now` itself, not a later clock reading)."""
    from sonora_pipeline.localorg.org import LocalOrg

    def records(name: str) -> list[tuple]:
        org = LocalOrg(records=300, seed=7, now=readme_examples.DEMO_NOW, state_dir=tmp_path / name)
        cur = org.store.cursor()
        try:
            return cur.execute('SELECT "Id", "CreatedDate", "SystemModstamp" FROM "Task" ORDER BY 1').fetchall()
        finally:
            cur.close()

    first = records("a")
    assert first and first == records("b")
    assert max(r[2] for r in first).replace(tzinfo=None) <= readme_examples.DEMO_NOW.replace(tzinfo=None)
