"""The suite's settings file (fixtures/test-settings.yaml): the built-in defaults map no custom field, so the
tests that model or write back the generated org's custom fields (ARR__c, NPS_Score__c, Sonora_*) read them
from here, where they are said explicitly, as a customer's own sonora.yaml would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sonora_pipeline.settings import Settings, load_settings, validate_settings

SUITE_SETTINGS = Path(__file__).parent / "fixtures" / "test-settings.yaml"


def suite_settings() -> Settings:
    return load_settings(SUITE_SETTINGS)


def _raw_with(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    raw = yaml.safe_load(SUITE_SETTINGS.read_text("utf-8"))
    for name, values in sections.items():
        raw[name] = {**(raw.get(name) or {}), **values}
    return raw


def suite_settings_with(**sections: dict[str, Any]) -> Settings:
    """The suite's settings with some keys of some sections replaced, e.g. writeback={"enabled": True}."""
    return validate_settings(_raw_with(sections))


def write_suite_settings(path: Path, **sections: dict[str, Any]) -> Path:
    """The same as a settings file (for a child process that reads SONORA_CONFIG or a path)."""
    raw = _raw_with(sections)
    validate_settings(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    return path
