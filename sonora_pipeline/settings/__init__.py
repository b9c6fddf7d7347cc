"""The settings file (YAML, path from `SONORA_CONFIG`): what to sync, and how the customer model reads the
mirror. Sensible defaults when absent; every section and key is optional.

Validated before anything touches the org or the warehouse, so a mistake stops the run with a message
naming the file, the line and column, the setting's path and the fix, all problems of a file together.
Pure schema: this package imports nothing else of the project, so every layer may read settings.

Modules: `schema*` (the sections), `conditions` (a test on a field), `fields` (the strict base and the
field-name type), `source` (reading the file with positions), `positions` (where a setting is),
`messages` (pydantic's errors in the user's terms), `problems` (the errors raised), `registry` (the orgs of
a many-org deployment, `SONORA_ORGS`).
"""

from sonora_pipeline.settings.conditions import LIST_OPERATORS, NULL_OPERATORS, OPERATORS, TODAY, Condition, Scalar
from sonora_pipeline.settings.messages import sort_problems, validate_settings
from sonora_pipeline.settings.positions import SettingPath, SettingsSource, dotted, locate
from sonora_pipeline.settings.problems import SettingsError
from sonora_pipeline.settings.registry import OrgEntry, Registry, RegistryError, load_registry, registry_path
from sonora_pipeline.settings.schema import Settings, model_required_fields
from sonora_pipeline.settings.schema_model import (
    RESERVED_COLUMNS,
    AccountInclusion,
    AccountsSettings,
    ContractsSettings,
    EcsatSettings,
    HealthBands,
    HealthSettings,
    HealthWeights,
    MappingSettings,
    RenewalsSettings,
)
from sonora_pipeline.settings.schema_sync import STANDARD_OBJECTS, SyncSettings, parse_initial_import
from sonora_pipeline.settings.schema_writeback import WRITEBACK_TABLES, WritebackMapping, WritebackSettings
from sonora_pipeline.settings.source import load_settings, settings_path

__all__ = [
    "LIST_OPERATORS", "NULL_OPERATORS", "OPERATORS", "RESERVED_COLUMNS", "STANDARD_OBJECTS", "TODAY",
    "WRITEBACK_TABLES", "AccountInclusion", "AccountsSettings", "Condition", "ContractsSettings",
    "EcsatSettings", "HealthBands", "HealthSettings", "HealthWeights", "MappingSettings", "OrgEntry", "Registry",
    "RegistryError", "RenewalsSettings", "Scalar", "SettingPath", "Settings", "SettingsError", "SettingsSource",
    "SyncSettings", "WritebackMapping", "WritebackSettings", "dotted", "load_registry", "load_settings", "locate",
    "model_required_fields", "parse_initial_import", "registry_path", "settings_path", "sort_problems",
    "validate_settings",
]
