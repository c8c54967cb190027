"""The provisioned Grafana dashboard and datasources."""

from __future__ import annotations

import json
from typing import Any

import yaml

from iot_pipeline_tests.ops.support import DEPLOY, KNOWN_METRICS, referenced_metrics

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "iot-pipeline.json"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def query_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def datasources() -> dict[str, dict[str, Any]]:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    return {ds["uid"]: ds for ds in provisioned["datasources"]}


def test_every_panel_has_queries_on_a_provisioned_datasource() -> None:
    known = datasources()
    panels = query_panels()
    assert len({p["id"] for p in dashboard()["panels"]}) == len(dashboard()["panels"]), (
        "panel ids must be unique"
    )
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in [panel, *panel["targets"]]:
            ds = target["datasource"]
            assert ds["uid"] in known and known[ds["uid"]]["type"] == ds["type"], f"{panel['title']}: {ds}"


def test_prometheus_queries_use_only_the_brief_metric_names() -> None:
    used: set[str] = set()
    for panel in query_panels():
        for target in panel["targets"]:
            if "expr" in target:
                metrics = referenced_metrics(target["expr"])
                unknown = metrics - KNOWN_METRICS
                assert not unknown, f"{panel['title']!r} queries unknown metrics {unknown}"
                used |= metrics
    # Every metric the simulator and the stream export is on the dashboard.
    assert used == KNOWN_METRICS, f"not on the dashboard: {sorted(KNOWN_METRICS - used)}"


def test_the_required_views_exist() -> None:
    titles = " | ".join(p["title"].lower() for p in query_panels())
    for words in (
        "events sent",
        "rows into bronze",
        "consumer lag",
        "p50 / p95",
        "quarantine share",
        "partitions landed",
        "asset check",
    ):
        assert words in titles, f"no panel about {words!r}"
    exprs = [t["expr"] for p in query_panels() for t in p["targets"] if "expr" in t]
    assert any("histogram_quantile(0.95" in e and "end_to_end_latency" in e for e in exprs)
    assert any("histogram_quantile(0.5" in e and "end_to_end_latency" in e for e in exprs)


def test_asset_check_panels_read_dagsters_table() -> None:
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

    sql = [t["rawSql"] for p in query_panels() for t in p["targets"] if "rawSql" in t]
    assert len(sql) >= 2
    for raw in sql:
        assert f"FROM {AssetCheckExecutionsTable.name}" in raw
    columns = {c.name for c in AssetCheckExecutionsTable.columns}
    for column in ("asset_key", "check_name", "execution_status", "evaluation_event_timestamp", "partition"):
        assert column in columns


def test_dashboard_provider_points_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())[
        "providers"
    ][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert (
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards"
        in (DEPLOY.parent / "docker-compose.yml").read_text()
    )
