"""How long the Dagster UI takes for the pages a data engineer uses, with 10 and with 1,000 registered orgs
(as many dynamic partitions of `salesforce_orgs`) and a few hundred past runs. Prints, per org count, the
seconds (first visit, then the median of the next visits) to:

  - load the Account asset page (`/assets/salesforce/account`: Materialize… ready),
  - load its partitions view (every org counted, the first org listed),
  - open the Materialize dialog's partition picker listing every org,
  - type an org's name in the picker and tick it (the dialog then says "1 partition"),
  - load the runs list (its first page of runs shown).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/ui_orgs.py              # 10 and 1,000 orgs, 300 runs
    PYTHONPATH=$PWD .venv/bin/python benchmarks/ui_orgs.py 100 5000     # other org counts

`dg dev` (webserver, daemon, code servers) runs with the registry set, as the demo runs it; the orgs do not
answer (loading pages never calls an org) and sensors stay stopped. Chromium is the system's (/usr/bin/chromium).
The machine's load average is printed with each org count: these are wall-clock seconds of a shared machine,
so compare the columns of one run, not runs of different days.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from sonora_pipeline_tests.orgs.ui_pages import (
    open_account_page,
    open_partition_picker,
    open_partitions_view,
    open_runs_list,
    pick_org,
)
from sonora_pipeline_tests.orgs.ui_setup import many_orgs_ui, org_names
from sonora_pipeline_tests.test_dagster_ui import CHROMIUM, CHROMIUM_ARGS, VIEWPORT

PAST_RUNS = 300
VISITS = 4  # the first is cold (the UI's scripts and the code location's first answers); the median of the rest
STEPS = ("account page", "partitions view", "picker open", "filter to one org", "runs list")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def visit(page, base_url: str, orgs: int, org: str) -> dict[str, float]:
    times = {"account page": timed(lambda: open_account_page(page, base_url))}
    dialog = None

    def picker():
        nonlocal dialog
        dialog = open_partition_picker(page, orgs)

    times["picker open"] = timed(picker)
    times["filter to one org"] = timed(lambda: pick_org(page, dialog, org))
    page.keyboard.press("Escape")
    times["partitions view"] = timed(lambda: open_partitions_view(page, base_url, orgs))
    times["runs list"] = timed(lambda: open_runs_list(page, base_url))
    return times


def measure(orgs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="ui-orgs-") as tmp:
        started = time.perf_counter()
        with many_orgs_ui(Path(tmp), orgs, PAST_RUNS) as (base_url, _instance):
            print(f"{orgs} orgs: dg dev answered after {time.perf_counter() - started:.0f} s "
                  f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)
            org = org_names(orgs)[-1]
            results: dict[str, list[float]] = {step: [] for step in STEPS}
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                for _ in range(VISITS):
                    for step, seconds in visit(page, base_url, orgs, org).items():
                        results[step].append(seconds)
                browser.close()
            print(f"{orgs} orgs measured (load average {os.getloadavg()[0]:.1f})", flush=True)
            return results


def main(counts: list[int]) -> None:
    table = {orgs: measure(orgs) for orgs in counts}
    print(f"\nseconds (first visit / median of the next {VISITS - 1}), {PAST_RUNS} past runs")
    print(f"{'step':<20}" + "".join(f"{f'{n:,} orgs':>18}" for n in counts))
    for step in STEPS:
        cells = [f"{t[step][0]:.2f} / {statistics.median(t[step][1:]):.2f}" for t in table.values()]
        print(f"{step:<20}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 1000])
