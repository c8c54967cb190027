"""The Dagster UI as analysts use it, in a real Chromium against a real ``dagster dev`` on the project.

The lake holds four bronze hours (2026-01-05 10:00-13:00) written as the stream writes them. The
run-launching sensors are stopped (the UI's own backfill is under test); ``bronze_report_sensor``
runs. A broken writer (``corrupt_defs.py``) materialises hour 13:00 of ``silver/events`` with
duplicates in the same instance, so the project's blocking check fails there.
"""

from __future__ import annotations

import re
import time

import pytest
from dagster import AssetKey, DagsterInstance
from playwright.sync_api import Page, expect

from iot_pipeline_tests.ui import server
from iot_pipeline_tests.ui.conftest import BROKEN_HOUR, Dagster

pytestmark = [pytest.mark.ui, pytest.mark.spark, pytest.mark.slow]

# asset key -> (group, kinds), as docs/assets.md lists them
ASSETS = {
    "kafka/iot_events": ("ingestion", {"kafka"}),
    "bronze/events": ("ingestion", {"spark", "parquet"}),
    "bronze/quarantine": ("ingestion", {"spark", "parquet"}),
    "live/device_type_minute_stats": ("ingestion", {"spark", "parquet"}),
    "silver/events": ("silver", {"spark", "parquet"}),
    "silver/event_id_index": ("silver", {"spark", "parquet"}),
    "silver/device_minute_stats": ("silver", {"spark", "parquet"}),
    "gold/daily_event_duration_p95": ("gold", {"spark", "parquet", "csv"}),
    "gold/daily_device_type_summary": ("gold", {"spark", "parquet"}),
}
BACKFILL = ("2026-01-05-10:00", "2026-01-05-12:00")


def inside(inner: dict, outer: dict) -> bool:
    return (
        outer["x"] <= inner["x"]
        and outer["y"] <= inner["y"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def open_global_lineage(page: Page, url: str) -> None:
    """The global lineage with every group expanded (a click on each collapsed group; the page
    remembers it, and a reload lays the expanded graph out to fit the window)."""
    page.goto(f"{url}/asset-groups")
    collapsed = page.get_by_role("img", name="unfold_more")
    expect(collapsed).to_have_count(3)
    while (n := collapsed.count()) > 0:
        collapsed.first.click()
        expect(collapsed).to_have_count(n - 1)
    page.reload()
    page.get_by_text("iot_events").last.wait_for()
    expect(page.get_by_text("Loading...")).to_have_count(0)


def test_global_lineage_shows_every_asset_with_its_group_and_kinds(dagster_ui: Dagster, page: Page) -> None:
    from iot_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(ASSETS)
    for key, (group, kinds) in ASSETS.items():  # the table above is the definitions' truth
        node = graph.get(AssetKey.from_user_string(key))
        assert (node.group_name, set(node.kinds)) == (group, kinds), key

    page.set_viewport_size({"width": 1920, "height": 1200})
    open_global_lineage(page, dagster_ui.url)
    page.shots("global-lineage")
    boxes = page.locator("foreignObject")
    groups: dict[str, dict] = {}
    nodes: list[tuple[str, dict, object]] = []
    for i in range(boxes.count()):
        box = boxes.nth(i)
        text = (box.text_content() or "").strip()
        if text in ("ingestion", "silver", "gold"):
            groups[text] = box.bounding_box()
        elif "Latest event" in text:
            nodes.append((text.split("Latest event")[0], box.bounding_box(), box))
    assert set(groups) == {"ingestion", "silver", "gold"}
    for key, (group, kinds) in ASSETS.items():
        name = key.split("/")[-1]
        found = [(bb, box) for n, bb, box in nodes if n == name and inside(bb, groups[group])]
        assert len(found) == 1, f"{key}: {len(found)} nodes named {name!r} in group {group}"
        box = found[0][1]
        for kind in kinds:
            expect(box.locator(f"[aria-label='{kind}']")).to_have_count(1)
    assert len(nodes) == len(ASSETS)


def test_p95_page_shows_description_columns_checks_and_upstream_to_kafka(
    dagster_ui: Dagster, page: Page
) -> None:
    url = f"{dagster_ui.url}/assets/gold/daily_event_duration_p95"
    page.goto(url)
    expect(page.get_by_text("95th percentile of event_duration per device type and UTC day")).to_be_visible()
    expect(page.get_by_text("3 sample standard deviations").first).to_be_visible()
    columns = page.get_by_role("table").filter(has_text="Column name")
    for column in ("event_date", "device_type", "events_total", "outliers_removed", "p95_event_duration"):
        expect(columns.get_by_text(column, exact=True)).to_be_visible()
    expect(
        columns.get_by_text("Exact 95th percentile (linear interpolation) of kept events.")
    ).to_be_visible()
    page.shots("overview")

    page.goto(f"{url}?view=checks")
    expect(page.get_by_text("Checks (3)")).to_be_visible()
    for check in ("schema", "p95_within_kept_range", "min_distinct_events"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
    page.shots("checks")

    page.goto(f"{url}?view=lineage&lineageScope=upstream&lineageDepth=4")
    page.get_by_text("iot_events").last.wait_for()
    names = [
        (page.locator("foreignObject").nth(i).text_content() or "")
        for i in range(page.locator("foreignObject").count())
    ]
    nodes = sorted(n.split("Latest event")[0] for n in names if "Latest event" in n)
    # p95 <- silver/events (and its event_id_index) <- bronze/events <- kafka/iot_events; nothing
    # downstream, no quarantine
    assert nodes == ["daily_event_duration_p95", "event_id_index", "events", "events", "iot_events"], nodes
    page.shots("upstream-lineage")


def test_bronze_hours_landed_by_the_stream_show_as_materialised_partitions(
    dagster_ui: Dagster, page: Page
) -> None:
    """bronze_report_sensor's first tick reports the four hours of the lake."""
    page.goto(f"{dagster_ui.url}/assets/bronze/events?view=partitions")
    materialized = page.get_by_text(re.compile(r"^Materialized \(\d+\)$"))
    deadline = time.monotonic() + 120
    while materialized.text_content() != "Materialized (4)" and time.monotonic() < deadline:
        page.wait_for_timeout(3000)
        page.reload()
    expect(materialized).to_have_text("Materialized (4)")
    page.goto(f"{dagster_ui.url}/assets/bronze/events?view=partitions&partition=2026-01-05-11:00")
    # 400 rows of the hour (two ingest batches), from the Parquet footers; the test's files mix
    # Kafka partitions, so no offsets (the stream writes one Kafka partition per file)
    meta = page.get_by_role("table").filter(has_text="reported_by")
    expect(meta.get_by_role("row").filter(has_text="dagster/row_count")).to_contain_text("400")
    expect(meta.get_by_role("row").filter(has_text="closed")).to_contain_text("true")
    expect(meta.get_by_text("newest_event_time")).to_be_visible()
    page.shots("bronze-partitions")


def backfill_runs(url: str, backfill_id: str) -> list[dict]:
    query = """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { status runs(limit: 10) { runId status } } } }"""
    data = server.graphql(url, query, {"id": backfill_id})["data"]["partitionBackfillOrError"]
    return data


def test_backfill_of_silver_hours_from_the_materialize_dialog_is_one_successful_run(
    dagster_ui: Dagster, page: Page
) -> None:
    page.goto(f"{dagster_ui.url}/assets/silver/events")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Show all partitions").click()
    dialog.get_by_placeholder(re.compile("^ex: ")).fill(f"[{BACKFILL[0]}...{BACKFILL[1]}]")
    dialog.get_by_placeholder(re.compile("^ex: ")).press("Enter")
    expect(dialog.get_by_text("3 partitions", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Backfills all partitions in a single run.")).to_be_visible()
    page.shots("materialize-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"^Created backfill [a-z]+$"))
    expect(toast).to_be_visible()
    backfill_id = toast.text_content().split()[-1]
    page.shots("backfill-created")

    deadline = time.monotonic() + 780  # one Spark start per step; many minutes on a loaded 2-core machine
    state = backfill_runs(dagster_ui.url, backfill_id)
    while state["status"] in ("REQUESTED", "CANCELING", "FAILING") and time.monotonic() < deadline:
        time.sleep(3)
        state = backfill_runs(dagster_ui.url, backfill_id)
    assert state["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), state
    assert [r["status"] for r in state["runs"]] == ["SUCCESS"], state  # one run for three hours

    page.goto(f"{dagster_ui.url}/runs/b/{backfill_id}")
    body = page.locator("body")
    expect(body).to_contain_text(re.compile(r"Status\s*Succeeded"))
    expect(body).to_contain_text(re.compile(r"silver / events\s*100% completed\s*3\s*0\s*3\s*0"))
    page.shots("backfill-page")
    page.goto(f"{dagster_ui.url}/assets/silver/events?view=partitions")
    # 10-12 from the backfill, 13 from the broken writer of the other test (it did materialise)
    expect(page.get_by_text(re.compile(r"^Materialized \((3|4)\)$"))).to_be_visible()
    for hour in ("10", "11", "12"):
        page.goto(f"{dagster_ui.url}/assets/silver/events?view=partitions&partition=2026-01-05-{hour}:00")
        expect(page.get_by_text("rows_written").first).to_be_visible()
    page.shots("silver-partitions")


def test_failed_blocking_check_is_visible_and_its_downstream_did_not_run(
    dagster_ui: Dagster, page: Page
) -> None:
    dagster_ui.broken_run.wait(timeout=300)
    log = dagster_ui.broken_log.read_text()
    assert dagster_ui.broken_run.returncode != 0, log[-3000:]  # the blocking check failed the run

    with DagsterInstance.from_config(dagster_ui.env["DAGSTER_HOME"]) as instance:
        (broken,) = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == BROKEN_HOUR]
    assert broken.status.value == "FAILURE"

    # The check's history holds the failed evaluation of the broken hour (the backfill's, which
    # passed and has no partition, may be the latest one shown in the list).
    page.goto(f"{dagster_ui.url}/assets/silver/events?view=checks")
    page.get_by_text("unique_event_id", exact=True).first.click()
    expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
    page.get_by_role("tab", name="Execution history").or_(
        page.get_by_text("Execution history", exact=True)
    ).first.click()
    row = page.get_by_role("row").filter(has_text=BROKEN_HOUR)
    expect(row).to_contain_text("Failed")
    page.shots("failed-check")

    page.goto(f"{dagster_ui.url}/assets/silver/device_minute_stats?view=partitions&partition={BROKEN_HOUR}")
    expect(page.get_by_text(re.compile("failed, and did not materialize this asset"))).to_be_visible()
    page.shots("downstream-not-materialised")
    # The instance agrees: silver/events has the hour, its downstream does not.
    with DagsterInstance.from_config(dagster_ui.env["DAGSTER_HOME"]) as instance:
        silver = instance.get_materialized_partitions(AssetKey.from_user_string("silver/events"))
        stats = instance.get_materialized_partitions(AssetKey.from_user_string("silver/device_minute_stats"))
    assert BROKEN_HOUR in silver
    assert BROKEN_HOUR not in stats
