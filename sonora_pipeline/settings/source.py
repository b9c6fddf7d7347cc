"""Reading the settings file: where it is (`SONORA_CONFIG`), its YAML with the place of every key and value,
and a message with the line for a file that is missing, unreadable or not YAML.

PyYAML's plain loader forgets positions and takes `=` / `!=` for YAML syntax; this reader keeps both, so
every later problem can name its line, and a duplicated key is reported instead of the last one silently
winning.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import yaml

from sonora_pipeline.settings.messages import settings_error, validate_settings
from sonora_pipeline.settings.positions import SettingPath, SettingsSource, dotted
from sonora_pipeline.settings.problems import SettingsError
from sonora_pipeline.settings.schema import Settings

_QUOTE_HINT = re.compile(r":\s*(>=|>|!=|!|\||%|@|`)")


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader for settings files. Reads an unquoted `=` (YAML 1.1's "value" tag) and `!=` (which YAML
    takes for a tag) as the operators they are meant to be."""


def _operator_constructor(text: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "="):  # `=` is "=", `!=` is tag + ""
            return text
        raise yaml.constructor.ConstructorError(None, None, f"unexpected {text!r} here; quote the value",
                                                node.start_mark)
    return construct


_MarkedLoader.add_constructor("tag:yaml.org,2002:value", _operator_constructor("="))
_MarkedLoader.add_constructor("!=", _operator_constructor("!="))


def _position(mark: yaml.Mark) -> tuple[int, int]:
    """1-based (line, column) of a YAML mark (PyYAML counts from 0)."""
    return mark.line + 1, mark.column + 1


def _read_yaml(path: Path, text: str, loader_class: type = _MarkedLoader) -> tuple[Any, SettingsSource, list[str]]:
    """(the data, where each key and value is, problems with duplicate keys). `loader_class`: the registry of
    orgs, which has no operators, reads with libyaml's loader (10x faster on 1,000 orgs)."""
    source = SettingsSource(path)
    problems: list[str] = []
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    if node is not None:
        _walk(node, (), source, problems)
        source.value_marks[()] = _position(node.start_mark)
    return data, source, problems


def _walk(node: yaml.Node, path: SettingPath, source: SettingsSource, problems: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            here = (*path, key)
            line, column = _position(key_node.start_mark)
            if key in seen:
                problems.append(f"{source.path} line {line}, column {column} ({dotted(here)}): duplicate setting "
                                f"'{key}', also set at line {_position(seen[key].start_mark)[0]}; keep only one "
                                "(the last one would win)")
            seen[key] = key_node
            source.key_marks[here] = (line, column)
            source.value_marks[here] = _position(value_node.start_mark)
            _walk(value_node, here, source, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            here = (*path, i)
            source.key_marks[here] = source.value_marks[here] = _position(item.start_mark)
            _walk(item, here, source, problems)


def _not_yaml(path: Path, text: str, err: yaml.YAMLError) -> SettingsError:
    """The line of a YAML syntax error, PyYAML's reason, and the likely fix."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = " line {}, column {}".format(*_position(mark)) if mark else ""
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    started = getattr(err, "context_mark", None)
    if context and started is not None and mark is not None and started.line != mark.line:
        context += " started at line {}, column {}".format(*_position(started))
    detail = f"{problem} ({context})" if context else problem
    fix = ("correct the YAML syntax there (indentation, a missing ':' after a key, an unclosed quote or "
           "bracket, or a value starting with a special character that needs quotes)")
    lines = text.splitlines()
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    if _QUOTE_HINT.search(line):
        fix = ("put the value in quotes: in YAML a value starting with > ! | % @ or ` means something else "
               "(e.g. op: \">=\")")
    return SettingsError(f"{path}{where}: not valid YAML: {detail}; {fix}")


def settings_path() -> Path | None:
    value = os.environ.get("SONORA_CONFIG")
    return Path(value) if value else None


# Validated settings by file content: a sensor tick over 1,000 orgs that share one settings file parses it
# once, not 2,000 times. Reading a small file is cheap; parsing and validating it is what costs. Settings are
# frozen, so sharing them is safe, and any edit changes the content (a timestamp could miss a quick same-size
# edit).
_CACHE: dict[Path, tuple[bytes, Settings]] = {}
_CACHE_LOCK = threading.Lock()


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the settings file; defaults when there is none (no path and no SONORA_CONFIG)."""
    path = path or settings_path()
    if path is None:
        return Settings()
    try:
        content = path.read_bytes()
    except OSError:
        content = None
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
    if content is not None and cached is not None and cached[0] == content:
        return cached[1]
    settings = _read_settings(path)
    if content is not None:
        with _CACHE_LOCK:
            _CACHE[path] = (content, settings)
    return settings


def _read_settings(path: Path) -> Settings:
    if not path.exists():
        raise SettingsError(f"Settings file {path} (from SONORA_CONFIG) does not exist. "
                            "Fix: point SONORA_CONFIG at your sonora.yaml, or unset it to use the defaults.")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"Settings file {path} cannot be read ({err}). "
                            "Fix: make it a readable UTF-8 text file.") from None
    try:
        raw, source, duplicates = _read_yaml(path, text)
    except yaml.YAMLError as err:
        raise _not_yaml(path, text, err) from None
    try:
        settings = validate_settings(raw, source)
    except SettingsError as err:
        raise settings_error(duplicates + err.problems, source) from None
    if duplicates:
        raise settings_error(duplicates, source)
    return settings
