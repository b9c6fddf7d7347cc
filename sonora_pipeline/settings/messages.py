"""Validating settings and saying what is wrong in the user's terms.

Pydantic's errors name types and internal locations; the person editing `sonora.yaml` needs the line, the
setting's path and the fix (`'soon' is not a whole number; write a number without quotes (e.g.
horizon_days: 120)`). Every problem of a file is reported at once, in file order.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from sonora_pipeline.settings.positions import SettingPath, SettingsSource, dotted, locate
from sonora_pipeline.settings.problems import At, Many, SettingsError, as_yaml, described, did_you_mean
from sonora_pipeline.settings.schema import Settings

# Pydantic error kinds -> what is wrong, with the fix; `{value}` is the value as named in a sentence and
# `{example}` an example of the setting with its default, when it has a plain one.
_TYPE_MESSAGES = {
    ("int_parsing", "int_type", "int_from_float"):
        "{value} is not a whole number; write a number without quotes{example}",
    ("float_parsing", "float_type"): "{value} is not a number; write a number without quotes{example}",
    ("bool_parsing", "bool_type"): "{value} is not true or false; write true or false",
    ("string_type", "string_parsing"): "{value} is not text; put it in quotes, e.g. \"{yaml}\"",
    ("list_type", "tuple_type"): "{value} is not a list; write a list, e.g. [A, B] or one '- item' per line",
    ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        "{value} is not a section; write its settings indented below it (key: value lines), or remove it to "
        "use the defaults",
    ("date_from_datetime_parsing", "date_parsing", "date_type", "date_from_datetime_inexact"):
        "{value} is not a date; write YYYY-MM-DD without quotes{example}",
}
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "above"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "below")}
# Union members add their type names to the location; the settings path leaves them out.
_UNION_MEMBERS = ("bool", "int", "float", "str", "date", "list[union[bool,int,float,str,date]]")


def _unwrap(annotation: Any) -> Any:
    """Optional[X] -> X."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _model_at(path: SettingPath) -> tuple[type[BaseModel] | None, Any]:
    """(the model class holding the last element of `path`, the FieldInfo of that element or None)."""
    current: Any = Settings
    info = None
    parts = list(path)
    for i, part in enumerate(parts):
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return (current if i == len(parts) - 1 else None), None
            if i == len(parts) - 1:
                return current, current.model_fields[part]
            info = current.model_fields[part]
            current = info.annotation
            continue
        origin = typing.get_origin(current)
        if origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None, None
    return None, info


def _example(path: SettingPath) -> str:
    """` (e.g. horizon_days: 120)`: the setting with its default, when the default is a plain value."""
    _, info = _model_at(path)
    if info is None or path == ():
        return ""
    default = info.get_default(call_default_factory=True) if not info.is_required() else None
    if default is None or isinstance(default, (BaseModel, list, dict)):
        return ""
    return f" (e.g. {path[-1]}: {as_yaml(default)})"


def _message_for(item: dict[str, Any]) -> tuple[SettingPath, str, bool]:
    """(path, message with its fix, point at the key?) for one pydantic error."""
    loc = tuple(item["loc"])
    kind = item["type"]
    value = item.get("input")
    ctx = item.get("ctx") or {}
    error = ctx.get("error")
    if kind.endswith(("_type", "_parsing")) and len(loc) >= 2 and loc[-1] in _UNION_MEMBERS:
        loc = loc[:-1]
    if isinstance(error, At):
        return (*loc, *error.sub), str(error), error.on_key
    if kind == "extra_forbidden":
        model, _ = _model_at(loc)
        known = list(model.model_fields) if model is not None else []
        where = dotted(loc[:-1]) if len(loc) > 1 else "the top level"
        return loc, (f"unknown setting '{loc[-1]}'{did_you_mean(str(loc[-1]), known)}; the settings under "
                     f"{where} are: {', '.join(known)}"), True
    if kind == "missing":
        return loc[:-1], f"missing setting '{loc[-1]}'; add '{loc[-1]}: ...' here", False
    for kinds, template in _TYPE_MESSAGES.items():
        if kind in kinds:
            example = _example(loc) if "{example}" in template else ""
            return loc, template.format(value=described(value), yaml=as_yaml(value), example=example), False
    if kind == "literal_error":
        return loc, f"{described(value)} is not allowed here; use one of {ctx.get('expected', '')}", False
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return loc, f"{described(value)} is out of range: it must be {words} {ctx.get(key)}", False
    return loc, item["msg"].removeprefix("Value error, "), False


def _problems(err: ValidationError, source: SettingsSource | None) -> list[str]:
    problems: list[str] = []
    for item in err.errors():
        error = (item.get("ctx") or {}).get("error")
        if isinstance(error, Many):
            for sub in error.problems:
                path = (*item["loc"], *sub.sub)
                problems.append(f"{locate(source, path, on_key=sub.on_key)}: {sub}")
            continue
        path, message, on_key = _message_for(item)
        problems.append(f"{locate(source, path, on_key=on_key)}: {message}")
    return problems


def _fill_empty_sections(data: Any, model: type[BaseModel]) -> Any:
    """`accounts:` with nothing under it (every key commented out) means the defaults, not an error."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and name in out:
            if out[name] is None:
                out[name] = {}
            out[name] = _fill_empty_sections(out[name], annotation)
    return out


def validate_settings(raw: Any, source: SettingsSource | None = None) -> Settings:
    """Validate a settings mapping (as read from YAML); a SettingsError lists every problem with its line."""
    where = f"{source.path} line 1, column 1" if source is not None else "settings"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        kind = {list: "a list", str: "a single text", int: "a number", float: "a number",
                bool: "true/false"}.get(type(raw), type(raw).__name__)
        sections = ", ".join(f"{name}:" for name in Settings.model_fields)
        raise SettingsError(f"{where}: the settings must be a mapping of sections ({sections}), not {kind}; see "
                            "sonora.example.yaml")
    try:
        settings = Settings.model_validate(_fill_empty_sections(raw, Settings))
    except ValidationError as err:
        raise settings_error(_problems(err, source), source) from None
    settings._source = source
    return settings


def settings_error(problems: list[str], source: SettingsSource | None) -> SettingsError:
    """One error for all of a file's problems, in file order, under a header naming the file and their count
    when there are several."""
    problems = sort_problems(problems)
    header = None
    if len(problems) >= 2:
        name = f"Settings file {source.path}" if source is not None else "The settings"
        header = f"{name} has {len(problems)} problems:"
    return SettingsError(*problems, header=header)


def sort_problems(problems: list[str]) -> list[str]:
    """Problems in file order (those without a line last, in their order)."""
    def line_of(problem: str) -> int:
        match = re.search(r" line (\d+), column ", problem)
        return int(match.group(1)) if match else 1 << 30
    return sorted(problems, key=line_of)
