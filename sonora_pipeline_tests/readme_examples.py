"""The README's example queries and their answers, run on the demo org so the text cannot drift.

Convention (README section "The customer model (for analysts)"): every ```sql block there is a list of
examples. An example is an optional `-- title` comment, one query ending in `;`, then its answer: one
`-- ` line per row, cells separated by `|` (padded for reading; compared cell by cell, NULL for a null).
A blank line ends an example.

The answers are those of the demo org (`sonora-pipeline demo`: 5,000 records, seed 7, its settings file)
with the org's clock and the model's today pinned to DEMO_NOW, so they do not depend on the day they run.

    python -m sonora_pipeline_tests.readme_examples          # compare, print a diff, exit 1 on a difference
    python -m sonora_pipeline_tests.readme_examples --write  # rewrite the answer lines in README.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import duckdb

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## The customer model (for analysts)"
# The day the README's answers are for (the org's clock at generation, the model's today and now).
DEMO_NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
DEMO_RECORDS, DEMO_SEED = 5000, 7  # `sonora-pipeline demo`'s defaults
ANSWER_PREFIX = "-- "


@dataclass(frozen=True)
class Example:
    title: str               # the comment before the query ("" when none)
    sql: str                 # the query as written, without its final `;`
    answer: tuple[str, ...]  # the answer lines, without "-- "
    first_line: int          # README line index of the query's first line
    answer_lines: range      # README line indices of the answer (empty range right after the query if none)


def _section(lines: list[str]) -> range:
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        raise ValueError(f"README.md has no section {SECTION!r}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return range(start, end)


def parse_examples(text: str) -> list[Example]:
    """Every example of the section's ```sql blocks, in order."""
    lines = text.split("\n")
    examples: list[Example] = []
    in_block = False
    title: list[str] = []
    sql: list[str] = []
    first = 0
    answer_at: int | None = None
    answer: list[str] = []

    def close() -> None:
        nonlocal title, sql, answer_at, answer
        if sql:
            raise ValueError(f"README.md line {first + 1}: the query has no final ';'")
        if answer_at is not None:
            examples[-1] = replace(examples[-1], answer=tuple(answer),
                                   answer_lines=range(answer_at, answer_at + len(answer)))
        title, sql, answer_at, answer = [], [], None, []

    for i in _section(lines):
        line = lines[i]
        if line.strip() == "```sql":
            in_block = True
            continue
        if not in_block:
            continue
        if line.strip() == "```" or not line.strip():
            close()
            in_block = line.strip() != "```"
            continue
        if answer_at is not None:  # after the query: its answer lines
            if not line.startswith("--"):
                raise ValueError(f"README.md line {i + 1}: a query's answer is only '-- ' lines, then a blank line")
            answer.append(line[len(ANSWER_PREFIX):] if line.startswith(ANSWER_PREFIX) else "")
            continue
        if not sql and line.startswith("--"):
            title.append(line[2:].strip())
            continue
        if not sql:
            first = i
        sql.append(line)
        if line.rstrip().endswith(";"):
            text_sql = "\n".join(sql).rstrip()[:-1]
            examples.append(Example(" ".join(title), text_sql, (), first, range(i + 1, i + 1)))
            sql, answer_at = [], i + 1
    if in_block:
        raise ValueError("README.md: a ```sql block of the examples is not closed")
    return examples


def cell(value) -> str:
    """How a value is written in an answer line (what DuckDB's CLI shows, NULL for a null)."""
    if value is None:
        return "NULL"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, (float, Decimal, int)):
        return str(value)
    return str(value).replace("|", "/").replace("\n", " ")


def answer_lines(rows: list[tuple]) -> list[str]:
    """Rows as aligned answer lines (text left, numbers right)."""
    cells = [[cell(v) for v in row] for row in rows]
    if not cells:
        return ["(no rows)"]
    numeric = [all(isinstance(row[c], (int, float, Decimal)) or row[c] is None for row in rows)
               for c in range(len(rows[0]))]
    widths = [max(len(r[c]) for r in cells) for c in range(len(cells[0]))]
    return [" | ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric)).rstrip()
            for r in cells]


def normalized(lines) -> list[str]:
    """Answer lines compared cell by cell, whatever their padding."""
    return [" | ".join(c.strip() for c in line.split("|")) for line in lines]


def normalized_sql(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()


def run_example(conn: duckdb.DuckDBPyConnection, example: Example) -> list[str]:
    return answer_lines(conn.execute(example.sql).fetchall())


def difference(example: Example, got: list[str]) -> str:
    """A unified diff of the README's answer against the query's (empty when they agree)."""
    if normalized(example.answer) == normalized(got):
        return ""
    diff = difflib.unified_diff([ANSWER_PREFIX + a for a in example.answer], [ANSWER_PREFIX + g for g in got],
                                f"README.md line {example.answer_lines.start + 1}", "the demo org", lineterm="")
    return f"{example.title or example.sql.splitlines()[0]}:\n" + "\n".join(diff)


def with_answers(text: str, answers: list[list[str]]) -> str:
    """README text with each example's answer lines replaced (answers in the examples' order)."""
    lines = text.split("\n")
    examples = parse_examples(text)
    if len(answers) != len(examples):
        raise ValueError(f"{len(answers)} answers for {len(examples)} examples")
    for example, answer in reversed(list(zip(examples, answers))):
        lines[example.answer_lines.start:example.answer_lines.stop] = [ANSWER_PREFIX + a for a in answer]
    return "\n".join(lines)


# -- the demo org, pinned -------------------------------------------------------------------------------------

def build_demo_warehouse(db: Path, state_dir: Path):
    """The demo's org (same records, seed, org id and settings as `sonora-pipeline demo`) generated at DEMO_NOW,
    mirrored into `db` and modelled with today/now = DEMO_NOW. Returns the started org (the caller stops it)."""
    from sonora_pipeline.cli.localorg import DEMO_SETTINGS, demo_org_id
    from sonora_pipeline.localorg.org import LocalOrg
    from sonora_pipeline.mirror.warehouse import write_connection
    from sonora_pipeline.model.build import build_all
    from sonora_pipeline.settings import load_settings
    from sonora_pipeline.sync.engine import sync_object
    from sonora_pipeline_tests.sync.helpers import client_for, log

    settings = load_settings(DEMO_SETTINGS)
    org = LocalOrg(records=DEMO_RECORDS, seed=DEMO_SEED, now=DEMO_NOW, org_id=demo_org_id(DEMO_SEED),
                   state_dir=state_dir).start()
    try:
        # past the sync's lag, so every generated record is read (the demo's sync starts about that late)
        org.advance_clock(settings.sync.lag_seconds + 5)
        client = client_for(org)
        sync = settings.sync.model_copy(update={"initial_import": "all"})
        for name in sync.objects:
            sync_object(client, db, name, sync, window=None, partition_key=None, run_id="readme-examples", log=log)
        with write_connection(db) as conn:
            build_all(conn, settings, DEMO_NOW.date(), DEMO_NOW)
    except BaseException:
        org.stop()
        raise
    return org


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README's answer lines")
    args = parser.parse_args(argv)
    text = README.read_text("utf-8")
    examples = parse_examples(text)
    with tempfile.TemporaryDirectory(prefix="sonora-readme-") as tmp:
        org = build_demo_warehouse(Path(tmp) / "warehouse.duckdb", Path(tmp) / "org")
        try:
            with duckdb.connect(str(Path(tmp) / "warehouse.duckdb"), read_only=True) as conn:
                answers = [run_example(conn, e) for e in examples]
        finally:
            org.stop()
    diffs = [d for d in (difference(e, a) for e, a in zip(examples, answers)) if d]
    if args.write:
        README.write_text(with_answers(text, answers), "utf-8")
        print(f"README.md: {len(examples)} example answers written ({len(diffs)} changed)")
        return 0
    print("\n\n".join(diffs) or f"README.md: the {len(examples)} example answers agree with the demo org")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
