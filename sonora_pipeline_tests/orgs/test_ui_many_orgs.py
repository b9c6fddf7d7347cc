"""With 1,000 registered orgs the Dagster UI still serves a data engineer: the Account asset page lists the
orgs as its partitions, the Materialize dialog's picker finds one org by typing its name, and launching it
makes exactly one run for that org, tagged with its partition, which shows in the runs list. `dg dev` runs
with the registry set (multi-org definitions, in its own processes); the orgs do not answer, so the run
fails at the fake address once the daemon starts it: only its existence and its partition are asserted.
Timings are benchmarks/ui_orgs.py's job, not this test's."""

from __future__ import annotations

import re

import dagster as dg
import pytest
from playwright.sync_api import expect, sync_playwright

from sonora_pipeline_tests.orgs.ui_pages import (
    PAGE_MS,
    open_account_page,
    open_partition_picker,
    open_partitions_view,
    open_runs_list,
    pick_org,
)
from sonora_pipeline_tests.orgs.ui_setup import many_orgs_ui
from sonora_pipeline_tests.test_dagster_ui import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, VIEWPORT

ORGS = 1000
PAST_RUNS = 20  # a runs list that is not empty; benchmarks/ui_orgs.py measures it with 300
PICKED = "org_0742"


@pytest.mark.ui
@pytest.mark.timeout(600)
def test_the_ui_with_a_thousand_orgs_finds_one_org_and_runs_it_alone(tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`) to run the "
                    "Dagster UI tests.")
    ARTIFACTS.mkdir(exist_ok=True)
    with many_orgs_ui(tmp_path, ORGS, PAST_RUNS) as (base_url, instance):
        assert len(instance.get_dynamic_partitions("salesforce_orgs")) == ORGS
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            try:
                open_partitions_view(page, base_url, ORGS)  # "1,000 Partitions Selected", org_0000 listed
                open_account_page(page, base_url)
                dialog = open_partition_picker(page, ORGS)  # "Select all (1000)"
                pick_org(page, dialog, PICKED)
                expect(dialog).to_contain_text(PICKED)
                dialog.get_by_role("button", name="Launch 1 run").click()
                expect(page.get_by_text(re.compile(r"^Launched run "))).to_be_visible(timeout=PAGE_MS)
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": PICKED}))
                assert len(runs) == 1, [r.tags for r in runs]
                assert runs[0].asset_selection == {dg.AssetKey(["salesforce", "account"])}
                assert instance.get_runs_count() == PAST_RUNS + 1  # one org picked, one run: no other org's
                open_runs_list(page, base_url)
                expect(page.locator(f"a[href='/runs/{runs[0].run_id}']").first).to_be_visible(timeout=PAGE_MS)
                page.screenshot(path=ARTIFACTS / "dagster-ui-many-orgs-runs.png")
            except BaseException:
                page.screenshot(path=ARTIFACTS / "dagster-ui-many-orgs-failure.png")
                raise
            finally:
                browser.close()
