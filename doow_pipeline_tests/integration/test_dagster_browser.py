"""The Dagster UI used as a data engineer uses it, in a real browser: Debian's headless Chromium driven by
Playwright, against `dagster dev` (webserver + daemon) on 127.0.0.1 serving a project written by the test
helpers on the emulator, with a connection whose client secret has expired beside three healthy ones.

The test clicks its way through the UI and reads what the pages show:
(a) the lineage graph and the catalog name every connection's asset distinctly;
(b) a 7-day backfill launched by clicking (Materialize -> partitions dialog -> a 7-day range -> Launch
    backfill) finishes as one run;
(c) a usage_daily partition shows that day's own numbers, compared with the day's totals computed
    independently from the emulator's scenario (expected_usage);
(d) the healthy connections' usage is in the warehouse, and the connection_status page shows the expired
    connection as failing with its fix.

Screenshots, with stable names, go to test-artifacts/ui/ (git-ignored); the final message of the issue lists
them. Every wait is on a page condition (Playwright's auto-waiting and `expect`), never a fixed sleep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from doow_pipeline_tests.azure_emulator import DEMO_SCENARIO
from doow_pipeline_tests.azure_emulator.scenario import load_scenario
from doow_pipeline_tests.dagster_ui import DagsterUI, dagster_ui
from doow_pipeline_tests.demo import DEMO_CONNECTIONS, EXPIRED, PROD, dagster_home
from doow_pipeline_tests.project import ConnectionSpec, expected_usage, write_project
from doow_pipeline_tests.servers import CHROMIUM_FLAGS, PROJECT_ROOT

SCENARIO = load_scenario(DEMO_SCENARIO)
NOW = SCENARIO.current_time()
LAST = NOW.date() - timedelta(days=1)
FIRST = LAST - timedelta(days=6)
EXPIRED_SPEC = ConnectionSpec("expired", EXPIRED, PROD)
SPECS = [*DEMO_CONNECTIONS, EXPIRED_SPEC]
SHOTS = PROJECT_ROOT / "test-artifacts" / "ui"
# A backfill run on a loaded 2-core machine: the run worker starts, fetches 4 connections, writes DuckDB.
RUN_BUDGET_MS = 480_000
PAGE_BUDGET_MS = 60_000


@pytest.fixture
def page(chromium, tmp_path) -> Iterator[Page]:
    """A 1600x1000 page of Debian's Chromium (never a browser Playwright downloads), fresh empty profile."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # new and empty
            executable_path=chromium.binary,
            args=list(CHROMIUM_FLAGS),
            headless=True,
            viewport={"width": 1600, "height": 1000},
        )
        context.set_default_timeout(PAGE_BUDGET_MS)
        expect.set_options(timeout=PAGE_BUDGET_MS)
        page = context.new_page()
        # Dagster's one-time "Join the Dagster community" prompt covers the page whenever it shows up.
        page.add_locator_handler(
            page.get_by_text("Join the Dagster community"), lambda: page.get_by_role("button", name="Skip").click()
        )
        try:
            yield page
        finally:
            context.close()


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path))
    return path


def metadata_rows(table: Locator) -> dict[str, str]:
    """A metadata table as shown: label -> the value's text (top-level rows only, not nested tables')."""
    rows = {}
    for row in table.locator(":scope > tbody > tr").all():
        cells = row.locator(":scope > td").all()
        rows[cells[0].inner_text().strip()] = cells[1].inner_text().strip()
    return rows


def _usage(warehouse: Path) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT * FROM azure_openai.usage_daily").pl()


def lineage_shows_every_connection(page: Page, ui: DagsterUI) -> None:
    """(a) Each connection's asset carries its own name in the lineage graph, the sidebar and the catalog."""
    page.goto(f"{ui.url}/asset-groups/azure_openai")
    for spec in SPECS:
        expect(page.get_by_text(f"{spec.name}_metric_points", exact=True).first).to_be_visible()
    expect(page.get_by_text("usage_daily", exact=True).first).to_be_visible()
    # The label these nodes had before they were named by connection: four identical "metric_points".
    expect(page.get_by_text("metric_points", exact=True)).to_have_count(0)
    expect(page.get_by_text("Loading…")).to_have_count(0)
    shot(page, "01-lineage-connections.png")
    page.goto(f"{ui.url}/assets")
    for spec in SPECS:
        link = page.get_by_role("link", name=f"azure_openai / {spec.name}_metric_points")
        expect(link.first).to_be_visible()
    expect(page.get_by_text("Loading…")).to_have_count(0)
    shot(page, "02-catalog-connections.png")


def launch_seven_day_backfill(page: Page, ui: DagsterUI) -> str:
    """(b) Lineage filtered to usage_daily and its upstream connections -> Materialize all -> the partitions
    dialog -> the 7-day range -> Launch backfill; returns the backfill's id from the confirmation."""
    page.goto(f"{ui.url}/asset-groups/azure_openai")
    expect(page.get_by_text("prod_metric_points", exact=True).first).to_be_visible()
    page.get_by_label("Search and filter assets").focus()
    page.keyboard.type('+key:"azure_openai/usage_daily"')
    page.keyboard.press("Enter")
    expect(page.get_by_text("retail_prices", exact=True)).to_have_count(0)  # the filter applied
    page.get_by_role("button", name=re.compile(r"Materialize all")).click()
    # accounts is written by the same step as usage_daily: Dagster asks to include it.
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Launch runs to materialize 6 assets")).to_be_visible()
    partitions = page.get_by_placeholder("No matching partitions")
    partitions.fill(f"[{FIRST}...{LAST}]")
    partitions.press("Enter")
    expect(page.get_by_text("7 partitions", exact=True)).to_be_visible()
    shot(page, "03-backfill-dialog-7-days.png")
    page.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"Created backfill \w+"))
    expect(created).to_be_visible()
    return created.inner_text().split()[-1]


def backfill_finishes_as_one_run(page: Page, ui: DagsterUI, backfill_id: str) -> None:
    page.goto(f"{ui.url}/runs/b/{backfill_id}")
    expect(page.get_by_text(f"{FIRST}...{LAST}")).to_be_visible()
    # Every asset of the backfill at 100%, then the backfill's own status (set by the daemon after its run).
    expect(page.get_by_text("100% completed")).to_have_count(6, timeout=RUN_BUDGET_MS)
    status = page.get_by_text("Status", exact=True).locator("xpath=..")
    expect(status).to_contain_text("Succeeded", timeout=RUN_BUDGET_MS)
    shot(page, "04-backfill-completed.png")
    backfill = ui.graphql(
        f'{{ partitionBackfillOrError(backfillId: "{backfill_id}") {{ ... on PartitionBackfill '
        "{ status numPartitions runs { runId status tags { key value } } } } }"
    )["partitionBackfillOrError"]
    assert backfill["status"] == "COMPLETED_SUCCESS" and backfill["numPartitions"] == 7
    (run,) = backfill["runs"]  # a single-run backfill: the whole range in one run
    assert run["status"] == "SUCCESS"
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        str(FIRST),
        str(LAST),
    )


def partition_shows_that_days_numbers(page: Page, ui: DagsterUI) -> None:
    """(c) The usage_daily partition of LAST, opened from the asset's Partitions tab, shows that day's rows and
    tokens of the healthy connections (the expired one landed nothing) and names the connection missing."""
    truth = expected_usage(SCENARIO, LAST, LAST, DEMO_CONNECTIONS, synced_at=NOW)
    whole_range = expected_usage(SCENARIO, FIRST, LAST, DEMO_CONNECTIONS, synced_at=NOW)
    assert truth.height < whole_range.height  # a range total could not pass for the day's
    page.goto(f"{ui.url}/assets/azure_openai/usage_daily?view=partitions")
    page.get_by_text(str(LAST), exact=True).first.click()
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    metadata = page.get_by_role("table").filter(has_text="dagster/row_count").first
    expect(metadata).to_be_visible()
    shown = metadata_rows(metadata)
    assert shown["dagster/row_count"] == f"{truth.height}" or shown["dagster/row_count"] == f"{truth.height:,}"
    for label in ("total_tokens", "input_tokens", "output_tokens", "requests"):
        value = int(truth[label].sum())
        assert shown[label].replace(",", "") == str(value), (label, shown[label], value)
    assert "expired" in shown["connections_missing"]
    shot(page, "05-usage-daily-partition-metadata.png")


def warehouse_holds_the_healthy_connections(warehouse: Path) -> None:
    """(d) The run wrote every healthy connection's usage; the expired connection wrote nothing."""
    usage = _usage(warehouse).filter(pl.col("usage_date").is_between(FIRST, LAST))
    expected = expected_usage(SCENARIO, FIRST, LAST, DEMO_CONNECTIONS, synced_at=NOW)
    assert usage.height == expected.height > 0
    assert set(usage["connection"]) == {s.name for s in DEMO_CONNECTIONS}
    for column in ("input_tokens", "output_tokens", "total_tokens", "requests"):
        assert usage[column].sum() == expected[column].sum(), column


def connection_status_shows_the_failing_connection(page: Page, ui: DagsterUI) -> None:
    """(d) Materialize connection_status from its page; its check for the expired connection fails with the cause
    and the fix, the healthy ones pass, and its status table shows the expired connection failing."""
    page.goto(f"{ui.url}/assets/azure_openai/connection_status")
    expect(page.get_by_text("Never materialized")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"(^|\s)Materialize$")).click()
    page.get_by_text("Checks", exact=True).first.click()
    page.get_by_text("expired_healthy", exact=True).first.click()
    expect(page.get_by_text(re.compile(r"^failing: The client secret has expired"))).to_be_visible(
        timeout=RUN_BUDGET_MS
    )
    expect(page.get_by_text("Create a new client secret").first).to_be_visible()
    expect(page.get_by_text("Evaluation result").locator("xpath=..")).to_contain_text("Failed")
    shot(page, "07-connection-status-check-expired.png")
    page.goto(f"{ui.url}/assets/azure_openai/connection_status")  # its Overview tab
    status = page.get_by_role("row", name=re.compile(r"^expired failing "))
    expect(status).to_contain_text("The client secret has expired")
    expect(status).to_contain_text("Create a new client secret on the app registration")
    status.scroll_into_view_if_needed()
    shot(page, "06-connection-status-failing.png")
    nodes = ui.graphql(
        '{ assetNodeOrError(assetKey: {path: ["azure_openai", "connection_status"]}) { ... on AssetNode '
        "{ assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization "
        "{ evaluation { success } } } } } } } }"
    )
    results = {
        c["name"]: c["executionForLatestMaterialization"]["evaluation"]["success"]
        for c in nodes["assetNodeOrError"]["assetChecksOrError"]["checks"]
    }
    assert results == {"prod_healthy": True, "dev_healthy": True, "research_healthy": False, "expired_healthy": False}


@pytest.mark.slow
def test_a_data_engineer_in_the_browser(page, tmp_path, emulator):
    project = write_project(tmp_path / "project", emulator.endpoints, SCENARIO, SPECS)
    with dagster_ui(project, dagster_home(tmp_path), tmp_path / "dagster-dev.log") as ui:
        # Dagster's "Join the Dagster community" prompt opens on a fresh instance, whenever the page is ready: over
        # the asset search it cannot be dismissed (the search dialog's backdrop takes the click). Marked seen in the
        # instance first, as its Skip button does, it never opens (the locator handler stays for anything else).
        assert ui.graphql("mutation SetNuxSeen { setNuxSeen }") == {"setNuxSeen": True}
        lineage_shows_every_connection(page, ui)
        backfill_id = launch_seven_day_backfill(page, ui)
        backfill_finishes_as_one_run(page, ui, backfill_id)
        partition_shows_that_days_numbers(page, ui)
        warehouse_holds_the_healthy_connections(project.parent / "doow.duckdb")
        connection_status_shows_the_failing_connection(page, ui)
