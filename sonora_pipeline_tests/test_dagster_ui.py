"""The Dagster UI, driven in a real browser against a real instance, does what a person needs from it.

The other suites run the definitions in process. This test proves what they cannot: that `dg dev` (what
`sonora-pipeline demo` runs: webserver plus daemon) loads the code location from `workspace.yaml` with the
project's `dagster.yaml`; that the lineage and the catalog show every Salesforce object asset, every
customer-model table, the org inventory and the write-back, each in its group; and that someone can pick
the latest sync window of `salesforce/account` in the Materialize dialog, launch it, follow the run to
"Success" on its page, and then find every Account of the org in the DuckDB mirror. The run goes through
the run queue like any manual materialization.

Screenshots go to `test-artifacts/`: the asset graph, the catalog, the succeeded run, and on failure the
page as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import duckdb
import pytest
import requests
from playwright.sync_api import Locator, Page, expect, sync_playwright

from sonora_pipeline.cli.ui import ui_command
from sonora_pipeline.defs.model.assets import model_key
from sonora_pipeline.defs.partitions import sync_window
from sonora_pipeline.defs.salesforce.assets import asset_key_for
from sonora_pipeline.defs.settings import SETTINGS
from sonora_pipeline.defs.writeback.assets import WRITEBACK_KEY
from sonora_pipeline.localorg.org import LocalOrg
from sonora_pipeline.model.build import SPECS

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1440, "height": 1600}  # tall enough for the catalog (a virtualized list) to show every asset
SERVER_START_SECONDS = 90
PAGE_MS = 30_000
RUN_MS = 120_000

EXPECTED_GROUPS: dict[str, set[dg.AssetKey]] = {
    "salesforce": {asset_key_for(name) for name in SETTINGS.sync.objects},
    "customer_model": {model_key(table) for table in SPECS},
    "salesforce_meta": {dg.AssetKey(["salesforce", "org_inventory"])},
    "writeback": {WRITEBACK_KEY},
}


# -- the servers ------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_home(tmp_path: Path) -> Path:
    """The project's instance settings (run queue, `duckdb_writer` pool, run retries) in a fresh DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    # The instance has "seen the NUX": no "Join the Dagster community" dialog over the pages.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    return home


def server_environment(org: LocalOrg, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)  # SONORA_CONFIG is the suite's settings (set by conftest)
    env.pop("SONORA_AUTOMATION", None)  # sensors and schedules stay stopped: the only run is the test's
    env.update({
        **org.credentials.as_environment(),
        "SONORA_DUCKDB_PATH": str(tmp_path / "mirror.duckdb"),
        "DAGSTER_HOME": str(dagster_home(tmp_path)),
    })
    return env


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], cwd: Path, start_seconds: float = SERVER_START_SECONDS) -> Iterator[str]:
    """`dg dev` on a loopback port; yields the UI's URL once it answers.

    The daemon is needed, not only the webserver: the instance queues runs (the default QueuedRunCoordinator;
    `run_retries` needs the daemon too), so a run launched from the UI would otherwise stay "Queued"."""
    port = free_port()
    log_path = cwd / "dagster-dev.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            ui_command(port),  # what `sonora-pipeline demo` runs: `dg dev -w workspace.yaml`
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # one process group: webserver, daemon, code servers, run workers
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_server(base_url, server, log_path, start_seconds)
        yield base_url
    finally:
        stop_process_group(server)


def wait_for_server(base_url: str, server: subprocess.Popen, log_path: Path,
                    start_seconds: float = SERVER_START_SECONDS) -> None:
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dg dev exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{base_url}/server_info", timeout=2).ok:
                return
        time.sleep(0.5)
    pytest.fail(f"dg dev did not answer on {base_url} within {start_seconds:.0f} s:\n"
                f"{log_path.read_text()[-4000:]}")


def stop_process_group(server: subprocess.Popen) -> None:
    """SIGTERM to the group (dg dev shuts its services down in about 2 s), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10)


# -- the pages --------------------------------------------------------------------------------------------------

def asset_path(key: dg.AssetKey) -> str:
    return "/assets/" + "/".join(key.path)


def asset_label(key: dg.AssetKey) -> str:
    return " / ".join(key.path)  # how the UI writes a key: "salesforce / account"


def check_asset_graph(page: Page, base_url: str) -> None:
    """The global lineage draws one node per group, labelled with its name and its number of assets."""
    page.goto(f"{base_url}/asset-groups")
    nodes = page.locator("svg foreignObject")
    expect(nodes).to_have_count(len(EXPECTED_GROUPS), timeout=PAGE_MS)
    for group, keys in EXPECTED_GROUPS.items():
        node = nodes.filter(has=page.get_by_text(group, exact=True))
        # "customer_model12" once the statuses are in ("customer_model12 assets (fetching statuses)" before)
        expect(node).to_have_text(re.compile(rf"^{group}\s*{len(keys)}$"), timeout=PAGE_MS)
    page.screenshot(path=ARTIFACTS / "dagster-ui-asset-graph.png")


def check_catalog(page: Page, base_url: str) -> None:
    """The catalog lists every asset of the code location, with its status."""
    page.goto(f"{base_url}/assets")
    total = sum(len(keys) for keys in EXPECTED_GROUPS.values())
    expect(page.locator("a[href^='/assets/']")).to_have_count(total, timeout=PAGE_MS)
    # statuses in: "Never materialized", or "0 ... 699 partitions" for a sync window asset
    expect(page.get_by_text(re.compile(r"^Loading"))).to_have_count(0, timeout=PAGE_MS)
    expect(page.get_by_text(re.compile(r"^\d+ partitions$"))).to_have_count(len(EXPECTED_GROUPS["salesforce"]))
    page.screenshot(path=ARTIFACTS / "dagster-ui-assets.png")


def group_link(page: Page | Locator, group: str) -> Locator:
    """A catalog row's group cell: a link named by the group (after its icon's name, "asset_group", in the
    Dagster releases of today), by role and name, not by Dagster's CSS class names, which change between
    releases."""
    return page.get_by_role("link", name=re.compile(rf"(^|\s){re.escape(group)}$"))


def check_groups_in_catalog(page: Page, base_url: str) -> None:
    """Filtered on a group, the catalog lists exactly that group's assets, each row naming the group."""
    for group, keys in EXPECTED_GROUPS.items():
        selection = quote(f'group:"{group}"')  # the catalog's search box, as the URL keeps it
        page.goto(f"{base_url}/assets?asset-selection={selection}")
        asset_links = page.locator("a[href^='/assets/']")
        expect(asset_links).to_have_count(len(keys), timeout=PAGE_MS)
        shown = {link.get_attribute("href") for link in asset_links.all()}
        assert shown == {asset_path(k) for k in keys}, f"catalog filtered on group {group}"
        # every row's group cell names the group: as many group links as assets, no more, no fewer
        expect(group_link(page, group)).to_have_count(len(keys))


def materialize_latest_window(page: Page, base_url: str, key: dg.AssetKey) -> None:
    """Materialize… on the asset page, "Latest" window only, "Launch 1 run", then "View" in the toast."""
    page.goto(base_url + asset_path(key))
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Launch runs to materialize {asset_label(key)}", timeout=PAGE_MS)
    dialog.get_by_role("button", name="Latest", exact=True).click()
    expect(dialog).to_contain_text("1 partition")
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(page.get_by_text(re.compile(r"^Launched run "))).to_be_visible(timeout=PAGE_MS)
    # the toast's "View" is a link styled as a button, outside the accessibility tree
    page.locator("a[href^='/runs/']").filter(has_text=re.compile(r"^View$")).click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"), timeout=PAGE_MS)


def wait_for_run_success(page: Page, key: dg.AssetKey, partition: str) -> None:
    """The run page's header: the window and the asset, then the run's status tag reaching "Success"."""
    expect(page.get_by_text(f"partition: {partition}", exact=True)).to_be_visible(timeout=PAGE_MS)
    expect(page.get_by_text(asset_label(key), exact=True).first).to_be_visible()
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$"))
    expect(status).to_be_visible(timeout=RUN_MS)
    expect(status).to_have_text("Success")
    page.screenshot(path=ARTIFACTS / "dagster-ui-run-succeeded.png")


def drive_ui(base_url: str, key: dg.AssetKey, partition: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        try:
            check_asset_graph(page, base_url)
            check_catalog(page, base_url)
            check_groups_in_catalog(page, base_url)
            materialize_latest_window(page, base_url, key)
            wait_for_run_success(page, key, partition)
        except BaseException:
            page.screenshot(path=ARTIFACTS / "dagster-ui-failure.png")
            raise
        finally:
            browser.close()


def mirrored_rows(db_path: Path, table: str) -> int:
    with duckdb.connect(str(db_path), read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.mark.ui
@pytest.mark.timeout(240)
def test_dagster_ui_shows_the_assets_and_materializes_an_object(tmp_path, local_org_factory):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`) to run the "
                    "Dagster UI test.")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dagster-ui-failure.png").unlink(missing_ok=True)  # a previous run's
    account = asset_key_for("Account")
    org = local_org_factory(records=400, seed=3)
    org.advance_clock(8)  # past the settings' 5 s lag
    accounts = org.state()["records"]["Account"]
    with dagster_dev(server_environment(org, tmp_path), cwd=tmp_path) as base_url:
        drive_ui(base_url, account, sync_window.get_last_partition_key())
    # The first materialization of an object is its initial import (sync.initial_import: all): every Account.
    assert mirrored_rows(tmp_path / "mirror.duckdb", "salesforce.account") == accounts > 0
