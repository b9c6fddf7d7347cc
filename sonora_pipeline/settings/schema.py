"""The whole settings file: one model of its sections, and what the model reads from them.

The sections are defined by meaning in `schema_sync`, `schema_model` and `schema_writeback`; this root
joins them and keeps where the settings came from, so later checks (against the mirror, against the org)
can name the file's line too.
"""

from __future__ import annotations

from pydantic import Field, PrivateAttr

from sonora_pipeline.settings.fields import Strict
from sonora_pipeline.settings.positions import SettingPath, SettingsSource, locate
from sonora_pipeline.settings.schema_model import (
    AccountsSettings,
    ContractsSettings,
    EcsatSettings,
    HealthSettings,
    MappingSettings,
    RenewalsSettings,
)
from sonora_pipeline.settings.schema_sync import SyncSettings
from sonora_pipeline.settings.schema_writeback import WritebackSettings


class Settings(Strict):
    """Everything the settings file says; each section optional."""

    sync: SyncSettings = Field(default_factory=SyncSettings, description="How the mirror is kept.")
    accounts: AccountsSettings = Field(default_factory=AccountsSettings,
                                       description="Which Accounts are Sonora customers.")
    mapping: MappingSettings = Field(default_factory=MappingSettings,
                                     description="Salesforce fields -> model columns.")
    contracts: ContractsSettings = Field(default_factory=ContractsSettings,
                                         description="What marks a customer as paying.")
    renewals: RenewalsSettings = Field(default_factory=RenewalsSettings, description="Renewal horizon.")
    health: HealthSettings = Field(default_factory=HealthSettings, description="Health score weights and bands.")
    ecsat: EcsatSettings = Field(default_factory=EcsatSettings, description="Estimated CSAT.")
    writeback: WritebackSettings = Field(default_factory=WritebackSettings,
                                         description="Opt-in write-back of model values to Account fields.")

    _source: SettingsSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> SettingsSource | None:
        """The file these settings were loaded from, with its line numbers (None for code-built settings)."""
        return self._source

    def locate(self, path: SettingPath, *, on_key: bool = False) -> str:
        """Where a setting is, for messages: file, line, column and dotted path."""
        return locate(self._source, path, on_key=on_key)


def model_required_fields(settings: Settings) -> dict[str, list[str]]:
    """Fields the customer model reads, per object: the sync refuses to run without read access to them
    (naming object, field and the Salesforce setting to change) instead of building a silently poorer model."""
    account = list(settings.mapping.account)
    account += [c.field for c in settings.accounts.include.conditions]
    account += [c.field for c in settings.contracts.account_conditions]
    account += [f for f in (settings.renewals.contract_end_field, settings.renewals.arr_field) if f]
    contact = list(settings.mapping.contact) + ([settings.health.nps_field] if settings.health.nps_field else [])
    merged = {name: list(fields) for name, fields in settings.sync.required_fields.items()}
    for name, fields in (("Account", account), ("Contact", contact)):
        merged[name] = sorted(set(merged.get(name, [])) | set(fields))
    return merged
