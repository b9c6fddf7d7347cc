"""The four places a data engineer goes with many orgs, driven in the browser by role and text (not Dagster's
CSS class names): the Account asset page, its partitions view, the Materialize dialog's partition picker
(type an org's name, tick it), and the runs list. Each step returns once what a person waits for is shown,
so the benchmark can time it and the test can assert it."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

ACCOUNT_PATH = "/assets/salesforce/account"
PAGE_MS = 120_000  # generous: these pages are timed by the benchmark, not asserted on


def open_account_page(page: Page, base_url: str) -> None:
    """The asset's overview: its name in the breadcrumb and the Materialize button ready."""
    page.goto(base_url + ACCOUNT_PATH)
    expect(page.get_by_role("button", name="Materialize…")).to_be_enabled(timeout=PAGE_MS)
    expect(page.get_by_text("Latest materialization")).to_be_visible(timeout=PAGE_MS)


def open_partitions_view(page: Page, base_url: str, orgs: int) -> None:
    """The Partitions tab: every org counted, and the first org's row listed."""
    page.goto(base_url + ACCOUNT_PATH + "?view=partitions")
    expect(page.get_by_text(f"{orgs:,} Partitions Selected")).to_be_visible(timeout=PAGE_MS)
    expect(page.get_by_text("org_0000", exact=True).first).to_be_visible(timeout=PAGE_MS)


def open_partition_picker(page: Page, orgs: int) -> Locator:
    """From the asset page: Materialize… then the dialog's partition field, listing every org; returns the
    dialog."""
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize salesforce / account")
    expect(dialog).to_be_visible(timeout=PAGE_MS)
    dialog.get_by_text("Select a partition or create one").click()
    expect(page.get_by_text(f"Select all ({orgs})", exact=True)).to_be_visible(timeout=PAGE_MS)
    return dialog


def pick_org(page: Page, dialog: Locator, org: str) -> None:
    """Type the org's name in the picker's filter, tick the one org it leaves, close the list."""
    page.get_by_placeholder("Filter partitions").fill(org)
    expect(page.get_by_text("Select all (1)", exact=True)).to_be_visible(timeout=PAGE_MS)
    # the row's name is the org twice (full and middle-truncated copies of the label)
    row = page.get_by_role("menuitem").filter(has_text=re.compile(rf"^{re.escape(org)}\s*({re.escape(org)})?$"))
    expect(row).to_have_count(1)
    row.click()
    page.keyboard.press("Escape")  # closes the list, not the dialog
    expect(dialog).to_contain_text("1 partition", timeout=PAGE_MS)


def open_runs_list(page: Page, base_url: str) -> None:
    """The runs list with its first page of runs shown."""
    page.goto(base_url + "/runs")
    expect(page.locator("a[href^='/runs/']").first).to_be_visible(timeout=PAGE_MS)
    expect(page.get_by_text("Loading runs…")).to_have_count(0, timeout=PAGE_MS)
