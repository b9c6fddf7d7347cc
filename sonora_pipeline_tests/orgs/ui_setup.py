"""A Dagster instance as a deployment with many registered orgs shows it in the UI: a registry of N orgs, their
N dynamic partitions of `salesforce_orgs`, and a runs list of past runs, served by `dg dev` with the registry
set (multi-org definitions). The orgs need not answer: loading pages never calls an org, and sensors stay
stopped (no SONORA_AUTOMATION), so a run launched from the UI is the only one, and it fails at the fake address.

Shared by the UI test with 1,000 orgs (sonora_pipeline_tests/orgs/test_ui_many_orgs.py) and its benchmark
(benchmarks/ui_orgs.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.test_utils import create_run_for_test

from sonora_pipeline.defs.orgs import ORG_PARTITIONS, ORG_TAG
from sonora_pipeline_tests.test_dagster_ui import dagster_dev, dagster_home

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS_ENV = "UI_FLEET"  # every org reads UI_FLEET_CONSUMER_KEY / _SECRET (never used: no run gets that far)
UNREACHABLE_URL = "https://localhost:9"  # the discard port: nothing listens, a run fails at once
START_SECONDS = 240  # dg dev on a busy 2-core machine: webserver, daemon and two code servers load the definitions


def org_names(count: int) -> list[str]:
    return [f"org_{i:04d}" for i in range(count)]


def write_registry(path: Path, names: list[str], warehouse_root: Path) -> Path:
    orgs = {name: {"instance_url": UNREACHABLE_URL, "credentials": {"env": CREDENTIALS_ENV}} for name in names}
    path.write_text(yaml.safe_dump({"warehouse_root": str(warehouse_root), "orgs": orgs}, sort_keys=False))
    return path


def seed_instance(home: Path, names: list[str], past_runs: int) -> None:
    """The org partitions, and `past_runs` finished runs spread over the orgs (one Account sync each, half of
    them failed), written straight into the run storage as the daemon would have left them. Creating the
    storage here first also keeps `dg dev`'s webserver and daemon from racing on SQLite's alembic heads."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.add_dynamic_partitions(ORG_PARTITIONS.name, names)
        for i in range(past_runs):
            org = names[i % len(names)]
            status = dg.DagsterRunStatus.SUCCESS if i % 2 else dg.DagsterRunStatus.FAILURE
            create_run_for_test(instance, job_name="__ASSET_JOB", status=status,
                                asset_selection=frozenset({dg.AssetKey(["salesforce", "account"])}),
                                tags={"dagster/partition": org, ORG_TAG: org, "sonora/sync_kind": "incremental"})


def environment(registry: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SALESFORCE_") and k not in ("SONORA_DUCKDB_PATH", "SONORA_AUTOMATION")}
    return {**env, "SONORA_ORGS": str(registry), "DAGSTER_HOME": str(home),
            f"{CREDENTIALS_ENV}_CONSUMER_KEY": "ui-fleet-key", f"{CREDENTIALS_ENV}_CONSUMER_SECRET": "ui-fleet-secret",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@contextlib.contextmanager
def many_orgs_ui(tmp_path: Path, orgs: int, past_runs: int = 0) -> Iterator[tuple[str, dg.DagsterInstance]]:
    """`dg dev` over a registry of `orgs` orgs with their partitions (and `past_runs` runs); yields the UI's
    URL and the instance it serves."""
    names = org_names(orgs)
    home = dagster_home(tmp_path)
    registry = write_registry(tmp_path / "orgs.yaml", names, tmp_path / "orgs")
    seed_instance(home, names, past_runs)
    with dagster_dev(environment(registry, home), cwd=tmp_path, start_seconds=START_SECONDS) as base_url:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            yield base_url, instance
