"""The model's automation condition, evaluated by Dagster itself on a sequence of events: a sync that commits
while a rebuild is in flight gets one more rebuild (eager's `since_last_handled` lost it)."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.model.assets import MODEL_ASSETS, model_key
from sonora_pipeline.defs.salesforce.objects import OBJECT_ASSETS, asset_key_for

CASES = model_key("cases")
TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")


def definitions(condition: dg.AutomationCondition | None = None) -> dg.Definitions:
    model = MODEL_ASSETS if condition is None else [a.map_asset_specs(
        lambda spec: spec.replace_attributes(automation_condition=condition)) for a in MODEL_ASSETS]
    return dg.Definitions(assets=[*OBJECT_ASSETS, *model],
                          resources={"salesforce": SalesforceResource(), "warehouse": WarehouseResource()})


def committed(instance, key: dg.AssetKey, partition: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def burst(defs: dg.Definitions) -> tuple[list[int], set[dg.AssetKey]]:
    """tick 1: nothing yet; a Case window commits; tick 2 requests the rebuild; while it runs another Case
    window commits, then the rebuild finishes; tick 3; the (possible) second rebuild finishes; tick 4."""
    with dg.instance_for_test() as instance:
        requested = []
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        committed(instance, asset_key_for("Case"), TODAY)
        second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        rebuilt = {k for k in (a.key for a in MODEL_ASSETS) if second.get_num_requested(k)}
        requested.append(second.get_num_requested(CASES))
        committed(instance, asset_key_for("Case"), TODAY)  # the late sync of the burst
        for key in rebuilt:
            committed(instance, key)  # the rebuild that read the mirror before that commit ends
        third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
        requested.append(third.get_num_requested(CASES))
        for key in (k for k in (a.key for a in MODEL_ASSETS) if third.get_num_requested(k)):
            committed(instance, key)
        fourth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
        requested.append(fourth.get_num_requested(CASES))
        return requested, rebuilt


def test_a_commit_during_a_rebuild_gets_one_more_rebuild():
    requested, rebuilt = burst(definitions())
    assert CASES in rebuilt and model_key("customers") not in rebuilt  # only what reads Case, and downstream
    assert requested == [1, 1, 0]  # rebuilt again after the late commit, then quiet (no loop)


def test_eager_loses_the_commit_made_during_a_rebuild():
    """Why the condition is not eager: the same events leave eager's model behind the mirror."""
    requested, _ = burst(definitions(dg.AutomationCondition.eager().without(
        ~dg.AutomationCondition.any_deps_missing())))
    assert requested == [1, 0, 0]
