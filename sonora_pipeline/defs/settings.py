"""The settings file in the code location, in two kinds.

Structure (`SETTINGS`, read when the code location loads; a mistake fails the load with its message): which
objects are synced (one asset each) and `sync.partitions_start` (the partitions). Dagster builds the asset
graph from them, so changing them takes a reload of the code location, like a code change.

Behaviour (lag, overlap, filters, mapping, contract rules, health, write-back, purge share, ...) reaches each
run and each sensor tick through `SettingsResource`, which reads the file then: an edit takes effect at the
next run or tick, and a sensor tick and the runs it launches read the same file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from sonora_pipeline.defs.orgs import OrgUnavailable, settings_path
from sonora_pipeline.settings import Settings, SettingsError, load_settings

SETTINGS: Settings = load_settings()


class SettingsResource(dg.ConfigurableResource):
    """The settings file, read and validated once per run (at setup; `for_run`) and at each sensor tick (`load`)."""

    path: str = Field(default="", description="The settings file; empty: SONORA_CONFIG when read, or the "
                                              "built-in defaults when that is unset")

    _snapshot: Settings | SettingsError | None = PrivateAttr(default=None)
    _org_snapshots: dict[str, Settings | SettingsError] = PrivateAttr(default_factory=dict)

    def load(self, org: str | None = None) -> Settings:
        """The file as it is now (`org`: that registered org's own file, or the deployment's when its entry
        names none); a mistake raises `SettingsError` with the same messages as at load."""
        if org is not None:
            try:
                path = settings_path(org)
            except OrgUnavailable as err:
                raise SettingsError(str(err)) from None
            return load_settings(path)
        return load_settings(Path(self.path) if self.path else None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # One read per run: its steps (a dozen model tables, every object) see the same settings even if the
        # file is edited while the run is in progress. A mistake is kept and reported by the first step.
        try:
            self._snapshot = self.load()
        except SettingsError as err:
            self._snapshot = err

    def for_run(self, org: str | None = None) -> Settings:
        """The settings the run started with (the file read at setup; read now outside a run): a mistake fails
        the step with its message (no traceback), before anything is read or written. An org's file is read
        at the run's first step for it, and that copy serves the run's other steps."""
        if org is not None:
            if org not in self._org_snapshots:
                try:
                    self._org_snapshots[org] = self.load(org)
                except SettingsError as err:
                    self._org_snapshots[org] = err
            snapshot = self._org_snapshots[org]
            if isinstance(snapshot, SettingsError):
                raise dg.Failure(description=str(snapshot)) from None
            return snapshot
        snapshot = self._snapshot
        if snapshot is None:
            try:
                snapshot = self.load()
            except SettingsError as err:
                snapshot = err
        if isinstance(snapshot, SettingsError):
            raise dg.Failure(description=str(snapshot)) from None
        return snapshot


def structure_changed(now: Settings) -> str | None:
    """What the file now says about structure that the loaded definitions do not have, or None. A run or a
    tick cannot add or remove an asset: it says so, and keeps to the loaded structure."""
    if list(now.sync.objects) != list(SETTINGS.sync.objects):
        return (f"sync.objects in the settings file ({', '.join(now.sync.objects)}) differ from the loaded "
                f"definitions' ({', '.join(SETTINGS.sync.objects)}): reload the code location to add or "
                "remove object assets; until then the loaded objects are synced.")
    if now.sync.partitions_start != SETTINGS.sync.partitions_start:
        return (f"sync.partitions_start in the settings file ({now.sync.partitions_start}) differs from the "
                f"loaded definitions' ({SETTINGS.sync.partitions_start}): reload the code location to change "
                "the sync windows.")
    return None


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"settings": SettingsResource()})


def synced_objects(org: str | None) -> list[str]:
    """The loaded objects (assets) an org syncs: with a registry, those its own settings list too (an org's
    file may leave out a custom object another org has); else all of them. A broken file fails the step."""
    if org is None:
        return list(SETTINGS.sync.objects)
    try:
        own = SettingsResource().load(org).sync.objects
    except SettingsError as err:
        raise dg.Failure(description=str(err)) from None
    return [name for name in SETTINGS.sync.objects if name in own]
