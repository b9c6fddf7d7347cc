"""The settings file, read once when the code location loads (a mistake fails the load with its message)."""

from sonora_pipeline.settings import Settings, load_settings

SETTINGS: Settings = load_settings()
