"""SOQL text -> a small AST with source positions.

Parsing uses lark's LALR parser on `grammar.lark` (shipped as package data) so the accepted language is
written down in one place, and so every refusal carries the token and column Salesforce would report.
Literal values are decoded here (string escapes, date and datetime literals) because their errors point
at the literal; type checking against fields happens in the compiler, which knows the catalog.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from sonora_pipeline.localorg.soql.errors import SoqlError, malformed, positioned

# Words SOQL reserves: never field, object or alias names, so `SELECT Id, From Account` fails at `From`.
_KEYWORD_TERMINALS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "NULL", "NULLS", "FIRST",
                      "LAST", "LIMIT", "ASC", "DESC"}
_RESERVED_ONLY = {"EXCLUDES", "GROUP", "HAVING", "INCLUDES", "WITH"}


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]
    pos: Pos

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class CountAll:
    pos: Pos


@dataclass(frozen=True)
class Literal:
    """kind: string | number | date | datetime | boolean | null | reldate.

    value: str (decoded) | int | float | date | naive-UTC datetime | bool | None | (NAME, n).
    like_pattern: for strings, the DuckDB LIKE pattern (escape char backslash) the literal denotes.
    """

    kind: str
    value: Any
    raw: str
    pos: Pos
    like_pattern: str | None = None


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str  # = != < <= > >= like
    value: Literal
    op_pos: Pos


@dataclass(frozen=True)
class InList:
    path: Path
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class SubQuery:
    """The sub-select of a semi-/anti-join: `SELECT <fields> FROM <object> [alias] [WHERE ...]`.

    `select` keeps whatever was written (the compiler insists on exactly one Id/reference field).
    """

    select: tuple[Path | CountAll, ...]
    object_name: str
    object_pos: Pos
    alias: str | None
    where: Condition | None
    pos: Pos  # of its SELECT


@dataclass(frozen=True)
class SemiJoin:
    """`path IN (SELECT ...)` (a semi-join) or, when `negated`, `path NOT IN (SELECT ...)` (an anti-join)."""

    path: Path
    query: SubQuery
    negated: bool


@dataclass(frozen=True)
class Not:
    cond: Condition


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    conds: tuple[Condition, ...]


Condition = Compare | InList | SemiJoin | Not | BoolOp


@dataclass(frozen=True)
class OrderItem:
    path: Path
    descending: bool
    nulls_first: bool  # resolved to Salesforce's default when not written


@dataclass(frozen=True)
class Query:
    text: str
    select: tuple[Path | CountAll, ...]
    object_name: str
    object_pos: Pos
    alias: str | None
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    limit_pos: Pos | None = None
    offset_pos: Pos | None = None


def _pos(tok: Token) -> Pos:
    return Pos(tok.line or 1, tok.column or 1)


def _retype_reserved(tok: Token) -> Token:
    upper = tok.value.upper()
    if upper in _KEYWORD_TERMINALS:
        tok.type = upper
    elif upper in _RESERVED_ONLY:
        tok.type = "RESERVED"
    return tok


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files("sonora_pipeline.localorg.soql").joinpath("grammar.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", lexer_callbacks={"NAME": _retype_reserved},
                maybe_placeholders=False)


# -- literals -------------------------------------------------------------------------------------------

_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))$", re.I)


class _LiteralError(Exception):
    def __init__(self, description: str):
        self.description = description


def decode_string(inner: str) -> tuple[str, str]:
    """(value, like_pattern) of a quoted literal's inside, applying SOQL's backslash escapes.

    `\\%` and `\\_` only mean literal wildcards inside LIKE; elsewhere they stay as two characters.
    """
    value: list[str] = []
    pattern: list[str] = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\":
            if i + 1 >= len(inner):
                raise _LiteralError("Invalid string literal. Illegal character sequence '\\' in string literal.")
            nxt = inner[i + 1]
            if nxt in ("%", "_"):
                value.append("\\" + nxt)
                pattern.append("\\" + nxt)
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", inner[i + 2:i + 6] or ""):
                c = chr(int(inner[i + 2:i + 6], 16))
                value.append(c)
                pattern.append("\\" + c if c in "%_\\" else c)
                i += 6
                continue
            elif nxt in _ESCAPES:
                c = _ESCAPES[nxt]
                value.append(c)
                pattern.append("\\\\" if c == "\\" else c)
            else:
                raise _LiteralError(
                    f"Invalid string literal '{inner}'. Illegal character sequence '\\{nxt}' in string literal.")
            i += 2
            continue
        value.append(ch)
        pattern.append(ch)
        i += 1
    return "".join(value), "".join(pattern)


def parse_datetime(raw: str) -> dt.datetime:
    """A SOQL datetime literal as a naive UTC datetime (microsecond precision)."""
    m = _DATETIME_RE.match(raw)
    if not m:
        raise _LiteralError(f"unexpected token: '{raw}'")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    try:
        value = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro)
        if not z:
            offset = dt.timedelta(hours=int(oh), minutes=int(om))
            value = value - offset if sign == "+" else value + offset
    except (ValueError, OverflowError):
        raise _LiteralError(f"unexpected token: '{raw}'") from None
    return value


def parse_date(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise _LiteralError(f"unexpected token: '{raw}'") from None


class _ToAst(Transformer):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    # values
    def _lit(self, kind: str, tok: Token, value: Any, like: str | None = None) -> Literal:
        return Literal(kind, value, str(tok), _pos(tok), like)

    def _checked(self, tok: Token, fn):
        try:
            return fn()
        except _LiteralError as e:
            raise positioned("MALFORMED_QUERY", self.text, tok.line, tok.column, e.description) from None

    def string(self, c):
        tok = c[0]
        value, like = self._checked(tok, lambda: decode_string(tok[1:-1]))
        return self._lit("string", tok, value, like)

    def number(self, c):
        tok = c[0]
        raw = str(tok)
        value: int | float = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)
        return self._lit("number", tok, value)

    def datetime(self, c):
        return self._lit("datetime", c[0], self._checked(c[0], lambda: parse_datetime(str(c[0]))))

    def date(self, c):
        return self._lit("date", c[0], self._checked(c[0], lambda: parse_date(str(c[0]))))

    def true(self, c):
        return self._lit("boolean", c[0], True)

    def false(self, c):
        return self._lit("boolean", c[0], False)

    def null(self, c):
        return self._lit("null", c[0], None)

    def reldate(self, c):
        name, _, n = str(c[0]).upper().partition(":")
        return self._lit("reldate", c[0], (name, int(n) if n else None))

    def value_list(self, c):
        return tuple(c)

    # paths and select
    def path(self, c):
        return Path(tuple(str(t) for t in c), _pos(c[0]))

    def count_all(self, c):
        return CountAll(_pos(c[0]))

    def select_list(self, c):
        return tuple(c)

    def alias(self, c):
        return str(c[0])

    # conditions
    def compare(self, c):
        path, op, value = c
        op_text = "!=" if str(op) == "<>" else str(op)
        return Compare(path, op_text, value, _pos(op))

    def like(self, c):
        path, like_tok, value = c
        return Compare(path, "like", value, _pos(like_tok))

    def in_list(self, c):
        return InList(c[0], c[2], False)

    def not_in_list(self, c):
        return InList(c[0], c[3], True)

    def semi_join(self, c):
        return SemiJoin(c[0], c[2], False)

    def anti_join(self, c):
        return SemiJoin(c[0], c[3], True)

    def subquery(self, c):
        select_tok, select, obj_tok = c[0], c[1], c[3]
        alias = None
        where = None
        for x in c[4:]:
            if isinstance(x, str) and not isinstance(x, Token):
                alias = x
            elif isinstance(x, tuple) and x and x[0] == "where":
                where = x[1]
            elif isinstance(x, tuple) and x and x[0] in ("order", "limit", "offset"):
                pos = x[-1]
                keyword = {"order": "ORDER BY", "limit": "LIMIT", "offset": "OFFSET"}[x[0]]
                raise positioned("MALFORMED_QUERY", self.text, pos.line, pos.column,
                                 f"{keyword} is not supported in semi join sub-selects")
        return SubQuery(select, str(obj_tok), _pos(obj_tok), alias, where, _pos(select_tok))

    def not_cond(self, c):
        return Not(c[1])

    def and_chain(self, c):
        return BoolOp("AND", tuple(x for x in c if not isinstance(x, Token)))

    def or_chain(self, c):
        return BoolOp("OR", tuple(x for x in c if not isinstance(x, Token)))

    def where_clause(self, c):
        return ("where", c[1])

    # order / limit
    def direction(self, c):
        return str(c[0]).upper() == "DESC"

    def nulls(self, c):
        return ("nulls", str(c[1]).upper() == "FIRST")

    def order_item(self, c):
        path = c[0]
        desc = False
        nulls_first = None
        for x in c[1:]:
            if isinstance(x, tuple):
                nulls_first = x[1]
            else:
                desc = x
        if nulls_first is None:
            nulls_first = not desc  # Salesforce: ASC -> NULLS FIRST, DESC -> NULLS LAST
        return OrderItem(path, desc, nulls_first)

    def order_clause(self, c):
        return ("order", tuple(x for x in c if isinstance(x, OrderItem)), _pos(c[0]))

    def limit_clause(self, c):
        return ("limit", self._bounded(c[1]), _pos(c[1]), _pos(c[0]))

    def offset_clause(self, c):
        return ("offset", self._bounded(c[1]), _pos(c[1]), _pos(c[0]))

    def _bounded(self, tok: Token) -> int:
        n = int(str(tok))
        if n > 2_147_483_647:
            raise positioned("MALFORMED_QUERY", self.text, tok.line, tok.column,
                             f"For input string: \"{tok}\"")
        return n

    def start(self, c):
        select = c[1]
        obj_tok = c[3]
        alias = None
        where = None
        order: tuple[OrderItem, ...] = ()
        limit = offset = None
        limit_pos = offset_pos = None
        for x in c[4:]:
            if isinstance(x, str) and not isinstance(x, Token):
                alias = x
            elif isinstance(x, tuple) and x and x[0] == "where":
                where = x[1]
            elif isinstance(x, tuple) and x and x[0] == "order":
                order = x[1]
            elif isinstance(x, tuple) and x and x[0] == "limit":
                limit, limit_pos = x[1], x[2]
            elif isinstance(x, tuple) and x and x[0] == "offset":
                offset, offset_pos = x[1], x[2]
        return Query(self.text, select, str(obj_tok), _pos(obj_tok), alias, where, order, limit, offset,
                     limit_pos, offset_pos)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def parse(text: str) -> Query:
    """Parse SOQL text; raises SoqlError(MALFORMED_QUERY) with Salesforce's layout on any syntax error."""
    if not isinstance(text, str):
        raise SoqlError("MALFORMED_QUERY", "unexpected token: <EOF>")
    try:
        tree = _lark().parse(text)
    except UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            line, col = _end_position(text)
            raise malformed(text, line, col, "<EOF>") from None
        raise malformed(text, tok.line or 1, tok.column or 1, str(tok)) from None
    except UnexpectedCharacters as e:
        line, col = e.line or 1, e.column or 1
        rest = text.split("\n")[line - 1][col - 1:] if line - 1 < len(text.split("\n")) else ""
        bad = re.match(r"\S+", rest)
        raise malformed(text, line, col, bad.group(0) if bad else (e.char or "")) from None
    except UnexpectedInput as e:  # UnexpectedEOF and friends
        line, col = _end_position(text)
        raise malformed(text, getattr(e, "line", line) or line, getattr(e, "column", col) or col, "<EOF>") from None
    except LarkError:
        line, col = _end_position(text)
        raise malformed(text, line, col, "<EOF>") from None
    try:
        return _ToAst(text).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SoqlError):
            raise e.orig_exc from None
        raise
