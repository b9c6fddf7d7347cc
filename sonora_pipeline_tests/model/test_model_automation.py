"""The model's automation condition, evaluated by Dagster itself on a sequence of runs: a sync that commits
while a rebuild is in flight gets one more rebuild (eager lost it), and a quiet mirror gets none."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from sonora_pipeline.defs.model.assets import AUTOMATION, MODEL_ASSETS, model_key
from sonora_pipeline.defs.resources import SalesforceResource, WarehouseResource
from sonora_pipeline.defs.salesforce.assets import OBJECT_ASSETS, asset_key_for
from sonora_pipeline.defs.settings import SettingsResource

CASES = model_key("cases")
TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
MODEL_KEYS = [a.key for a in MODEL_ASSETS]


def committed(instance, key: dg.AssetKey) -> None:
    """A sync run of `key` committed today's window (reported as Dagster records it, without a run here)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=TODAY))


def stand_ins(condition: dg.AutomationCondition, during: list) -> list[dg.AssetsDefinition]:
    """The model's tables with their real keys, deps and a given condition; building one does nothing but
    run `during` callbacks (what happens in the org and the mirror while the rebuild is in flight)."""
    out = []
    for asset in MODEL_ASSETS:
        spec = next(iter(asset.specs))

        @dg.asset(key=spec.key, deps=[d.asset_key for d in spec.deps], automation_condition=condition)
        def _table(context):
            while during:
                during.pop()(context.instance)

        out.append(_table)
    return out


def burst(condition: dg.AutomationCondition) -> list[int]:
    """tick 1: quiet; a Case window commits; tick 2 requests the rebuild, whose run sees another Case commit
    land while it is in flight; tick 3; the rebuild it asks for (if any) runs; tick 4."""
    during: list = []
    model = stand_ins(condition, during)
    defs = dg.Definitions(assets=[*OBJECT_ASSETS, *model],
                          resources={"salesforce": SalesforceResource(), "warehouse": WarehouseResource(),
                                     "settings": SettingsResource()})
    requested = []
    with dg.instance_for_test() as instance:
        def tick(cursor=None):
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
            keys = [k for k in MODEL_KEYS if result.get_num_requested(k)]
            requested.append(result.get_num_requested(CASES))
            return result, keys

        def rebuild(keys):
            if keys:
                assert dg.materialize([a for a in model if a.key in keys], instance=instance,
                                      selection=keys).success

        first, _ = tick()
        committed(instance, asset_key_for("Case"))
        second, keys = tick(first.cursor)
        assert CASES in keys and model_key("customers") not in keys  # what reads Case, and downstream
        during.append(lambda inst: committed(inst, asset_key_for("Case")))  # the burst's late sync
        rebuild(keys)
        third, keys = tick(second.cursor)
        rebuild(keys)
        fourth, _ = tick(third.cursor)
        tick(fourth.cursor)
    return requested[1:]


def test_a_commit_during_a_rebuild_gets_one_more_rebuild():
    assert burst(AUTOMATION) == [1, 1, 0, 0]  # rebuilt again after the late commit, then quiet


def test_eager_loses_the_commit_made_during_a_rebuild():
    """Why the condition is not eager: the same runs leave eager's model behind the mirror."""
    assert burst(dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())) == [1, 0, 0, 0]
