"""Where a setting is written: the file, and the line and column of every key and value in it.

Every message about a setting names its place (`sonora.yaml line 12, column 9 (accounts.include.
conditions[1].op)`), for a value written in the file and for a default the file leaves out alike; the YAML
reader (`source.py`) records the places, the schema and the checks against the mirror report with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

SettingPath = tuple[Any, ...]  # a setting's location: ("accounts", "include", "conditions", 1, "op")


@dataclass(frozen=True)
class SettingsSource:
    """Where loaded settings came from: the file, and the line/column of every key and value in it."""

    path: Path
    key_marks: dict[SettingPath, tuple[int, int]] = dc_field(default_factory=dict)    # 1-based (line, column)
    value_marks: dict[SettingPath, tuple[int, int]] = dc_field(default_factory=dict)

    def mark(self, path: SettingPath, *, on_key: bool = False) -> tuple[int, int] | None:
        """The (line, column) of the setting at `path` (its key, or its value), or of the closest enclosing
        setting written in the file; None when nothing on the path is in the file."""
        path = tuple(path)
        primary, secondary = (self.key_marks, self.value_marks) if on_key else (self.value_marks, self.key_marks)
        if path in primary:
            return primary[path]
        if path in secondary:
            return secondary[path]
        return None


def dotted(path: SettingPath) -> str:
    """accounts.include.conditions[1].op"""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def locate(source: SettingsSource | None, path: SettingPath, *, on_key: bool = False) -> str:
    """`sonora.yaml line 12, column 9 (accounts.include.conditions[1].op)` for a problem's message."""
    if source is None:
        return f"settings ({dotted(path)})"
    mark = source.mark(path, on_key=on_key)
    if mark is not None:
        return f"{source.path} line {mark[0]}, column {mark[1]} ({dotted(path)})"
    # Not written in the file: a default value (possibly inside a section that is in the file).
    for i in range(len(path) - 1, 0, -1):
        if tuple(path[:i]) in source.key_marks:
            line, column = source.key_marks[tuple(path[:i])]
            return (f"{source.path} line {line}, column {column} ({dotted(path)}, a default: "
                    f"not set under {dotted(path[:i])})")
    return f"{source.path} ({dotted(path)}, a default: not set in the file)"
