"""Browser test of the MLflow UI: a search's trials, compared in the runs table.

Starts the real tracking server (``mlflow/start_local.sh``, loopback, a temporary SQLite store), logs
a small fake-but-realistic search into it through search.tracking (``fake_search``), then drives
headless Chromium with Playwright through the comparison workflow of docs/selection.md: filter the
trial runs, sort by ``en_dev``, add metric, parameter and tag columns, and read the values back.
Skipped only where Playwright or a Chromium binary is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_search import demo_trials, log_search
from servers import free_port, server

from search import tracking
from search.tracking import SEARCHED_PREFIX

REPO = Path(__file__).resolve().parents[1]
SEARCHED_TASK = f"{SEARCHED_PREFIX}intermediate_task"
START_LOCAL = REPO / "mlflow" / "start_local.sh"
UI_TIMEOUT_MS = 90_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
]
# The columns the test adds to the runs table, by their MLflow column ids.
COLUMNS = {
    "en_dev": "metrics.`en_dev`",
    "zero_shot_avg": "metrics.`zero_shot_avg`",
    SEARCHED_TASK: f"params.`{SEARCHED_TASK}`",
    "xstilts.status": "tags.`xstilts.status`",
}


def chromium_path() -> str | None:
    """A Chromium binary: $XSTILTS_CHROMIUM, or Debian's/Ubuntu's on PATH."""
    for candidate in (os.environ.get("XSTILTS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@contextlib.contextmanager
def tracking_server(tmp_path: Path) -> Iterator[str]:
    """mlflow/start_local.sh on a free loopback port with a temporary store; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    args = [
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp_path / "store" / "artifacts"),
    ]
    with server(START_LOCAL, args, env, tmp_path, url):
        yield url


def runs_url(url: str, experiment_id: str) -> str:
    """The experiment's runs table, showing only trial runs, best en_dev first (the UI keeps this state in the URL)."""
    query = urllib.parse.urlencode(
        {
            "searchFilter": "tags.`xstilts.kind` = 'trial'",
            "orderByKey": "metrics.`en_dev`",
            "orderByAsc": "false",
            "startTime": "ALL",
            "lifecycleFilter": "Active",
        },
        quote_via=urllib.parse.quote,
    )
    return f"{url}/#/experiments/{experiment_id}/runs?{query}"


def add_columns(page: Any, names: list[str]) -> None:
    """Tick columns in the runs table's *Columns* menu."""
    page.get_by_role("button", name="Columns", exact=True).click()
    for name in names:
        page.get_by_placeholder("Search columns").fill(name)
        node = page.locator(".du-bois-light-tree-treenode", has=page.get_by_text(name, exact=True)).first
        node.locator(".du-bois-light-tree-checkbox").click()
    page.keyboard.press("Escape")


def close_assistant(page: Any) -> None:
    """Close the MLflow Assistant side panel if this MLflow version opens it (it narrows the runs table)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    with contextlib.suppress(Exception):  # no assistant in this MLflow version: nothing to close
        close.first.click(timeout=5000)


def reveal(page: Any, col_id: str) -> None:
    """Scroll the grid right until the column ``col_id`` is rendered (AG Grid virtualises columns)."""
    header = page.locator(f'[role="columnheader"][col-id="{col_id}"]')
    for step in range(40):
        if header.count():
            return
        # The horizontal scrollbar drives the header and the body together.
        page.evaluate(
            """offset => document.querySelectorAll('.ag-body-horizontal-scroll-viewport')
                 .forEach(e => { e.scrollLeft = offset; e.dispatchEvent(new Event('scroll')); })""",
            step * 250,
        )
        page.wait_for_timeout(150)
    raise AssertionError(f"column {col_id} never appeared in the runs table")


def table(page: Any) -> dict[str, dict[str, str]]:
    """Run name -> {column: text} of the rows the grid shows, best first.

    AG Grid splits a row across pinned and scrolling containers (matched by ``row-index``) and renders
    only the columns in view, so each column is scrolled into view before it is read.
    """
    names = page.locator('[role="gridcell"][col-id="attributes.`Run Name`"]')
    order = []
    for index in range(names.count()):
        cell = names.nth(index)
        row_index = cell.evaluate("e => e.closest('[role=row]').getAttribute('row-index')")
        order.append((int(row_index), cell.inner_text().strip().splitlines()[-1]))
    rows: dict[str, dict[str, str]] = {name: {} for _, name in sorted(order)}
    for column, col_id in COLUMNS.items():
        reveal(page, col_id)
        for row_index, name in order:
            found = page.locator(f'[role="row"][row-index="{row_index}"] [col-id="{col_id}"]')
            rows[name][column] = found.first.inner_text().strip() if found.count() else ""
    return rows


@pytest.mark.slow
def test_trials_and_metrics_show_in_the_mlflow_ui(tmp_path: Path) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set XSTILTS_CHROMIUM)")
    screenshot = tmp_path / "mlflow-ui-trials.png"
    with tracking_server(tmp_path) as url:
        log_search(url, "ui", demo_trials("pawsx"))
        from mlflow.tracking import MlflowClient

        experiment = MlflowClient(url).get_experiment_by_name("xstilts-ui")
        assert experiment is not None
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1900, "height": 900})
                page.set_default_timeout(UI_TIMEOUT_MS)
                # The link xstilts prints opens the model-training view (the runs table), not GenAI's traces.
                page.goto(tracking.experiment_url(url, experiment.experiment_id))
                page.get_by_role("button", name="Columns", exact=True).wait_for()
                landing = [
                    name
                    for name in ("Evaluation runs", "Judges")
                    if page.get_by_text(name, exact=True).count()
                ]
                page.goto(runs_url(url, experiment.experiment_id))
                page.get_by_text("pawsx-pawsx-1", exact=True).first.wait_for()
                close_assistant(page)
                add_columns(page, list(COLUMNS))
                page.locator(f'[role="columnheader"][col-id="{COLUMNS["en_dev"]}"]').wait_for()
                rows = table(page)
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
    print(f"screenshot: {screenshot}")
    assert landing == [], f"the experiment's link opened the GenAI view ({landing})"
    # Every trial run, and only trial runs (the parent search run is filtered out), best en_dev first.
    assert list(rows) == ["pawsx-pawsx-3", "pawsx-pawsx-1", "pawsx-pawsx-2", "pawsx-pawsx-0", "pawsx-pawsx-4"]
    assert rows["pawsx-pawsx-1"] == {
        "en_dev": "66",
        "zero_shot_avg": "51",
        SEARCHED_TASK: "mnli",
        "xstilts.status": "completed",
    }
    # The early-stopped trial sorts first on its partial en_dev: why selection needs the status tag.
    assert rows["pawsx-pawsx-3"]["xstilts.status"] == "early_stopped"
    assert rows["pawsx-pawsx-4"]["xstilts.status"] == "failed"
    assert screenshot.stat().st_size > 10_000
