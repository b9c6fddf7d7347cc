"""The fast tier: pure functions and in-memory DuckDB only, no local org, no Dagster instance, no network.

`pytest sonora_pipeline_tests/unit` runs in seconds; a test here that asks for a local org fails at once, so
the tier stays fast as it grows."""

from __future__ import annotations

import pytest

ORG_FIXTURES = {"org", "shared_org", "big_org", "canary_org", "local_org_factory"}


@pytest.fixture(autouse=True)
def _no_local_org(request):
    used = ORG_FIXTURES & set(request.fixturenames)
    if used:
        pytest.fail(f"{request.node.nodeid} asks for {', '.join(sorted(used))}: a unit test runs without a "
                    "local org. Fix: move it to the tier of its package (sync/, salesforce/, ...).")
