"""What a validator raises, and how a value is quoted back to the user.

A settings mistake must be reported at the exact line that holds it, which is often below the value a
validator sees (one key of a mapping, one item of a list): `At` carries that sub-path, `Many` several of
them, and `SettingsError` is what callers finally get, one line per problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date
from typing import Any


class SettingsError(Exception):
    """A settings file that cannot be used. The message has one line per problem, each naming the file, line
    and column (when the settings came from a file), the setting's path and the fix; `problems` holds them."""

    def __init__(self, *problems: str, header: str | None = None):
        self.problems: list[str] = list(problems)
        lines = ([header] if header else []) + self.problems
        super().__init__("\n".join(lines))


class At(ValueError):
    """A validation error about a sub-path of the value being validated (e.g. one key of a mapping);
    `on_key` points the line at the key rather than its value."""

    def __init__(self, message: str, *sub: Any, on_key: bool = False):
        super().__init__(message)
        self.sub = sub
        self.on_key = on_key


class Many(ValueError):
    """Several `At` problems found by one validator."""

    def __init__(self, problems: list[At]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def raise_all(problems: list[At]) -> None:
    """Raise the problems one validator found (one as itself, several together); nothing when there are none."""
    if problems:
        raise problems[0] if len(problems) == 1 else Many(problems)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when one of `choices` is close to `word`, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def as_yaml(value: Any) -> str:
    """A value as the user would write it in the file: true/false, 2025-01-31, 100 (not 100.0), [A, B]."""
    if isinstance(value, list):
        return "[" + ", ".join(as_yaml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def described(value: Any) -> str:
    """A value named in a sentence: 'text' in quotes, 'a mapping', 'a list', 'an empty value', 42."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, str):
        return repr(value)
    return as_yaml(value)
