"""observability/grafana/switchboard.json: a sound Grafana model whose every query is PromQL.

Each query is checked by promtool (as the expression of a generated recording rule),
with the dashboard's variables replaced as Grafana would; the live test
(test_live_prometheus.py) runs them against a real Prometheus.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.dashboard import load, metric_names, panels, substitute, targets
from tests.observability.tools import check, run

MODEL = load()
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Panel title -> the metric its queries must read (the brief of issue #6).
REQUIRED_PANELS = {
    "Request rate by method": "grpc_server_started_total",
    "Latency p50 / p95 / p99 (unary calls)": "grpc_server_handling_seconds_bucket",
    "Errors by code": "grpc_server_handled_total",
    "Task success rate": "agent_tasks_total",
    "Queue length": "agent_queue_length",
    "Tasks in progress": "agent_tasks_in_progress",
    "Agent health": "agent_health_status",
    "Circuit breaker state": "circuit_breaker_state",
    "Tokens per second": "llm_tokens_total",
    "Cache hit ratio": "cache_hits_total",
    "Rate-limited calls": "rate_limited_total",
}


def _by_title() -> dict[str, dict[str, Any]]:
    return {panel["title"]: panel for panel in panels(MODEL)}


def test_the_model_has_identity_time_and_schema() -> None:
    assert MODEL["uid"] == "switchboard"
    assert MODEL["title"] == "Switchboard"
    assert MODEL["id"] is None  # Grafana assigns it on import
    assert isinstance(MODEL["schemaVersion"], int)
    assert MODEL["schemaVersion"] >= 36
    assert MODEL["time"] == {"from": "now-1h", "to": "now"}


def test_the_datasource_is_a_template_variable() -> None:
    variables = {variable["name"]: variable for variable in MODEL["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
    assert variables["instance"]["includeAll"] is True
    assert variables["instance"]["allValue"] == ".+"
    # No panel or query names a data source of its own.
    for panel in panels(MODEL):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_the_required_panels_exist_and_read_their_metric() -> None:
    by_title = _by_title()
    for title, metric in REQUIRED_PANELS.items():
        assert title in by_title, f"no panel {title!r}"
        exprs = [target["expr"] for target in by_title[title]["targets"]]
        assert any(metric in metric_names(expr) for expr in exprs), (title, exprs)


def test_the_latency_panel_shows_p50_p95_and_p99() -> None:
    panel = _by_title()["Latency p50 / p95 / p99 (unary calls)"]
    quantiles = [
        re.match(r"histogram_quantile\(([\d.]+), sum by \(le\)", target["expr"])
        for target in panel["targets"]
    ]
    assert [match.group(1) for match in quantiles if match] == ["0.5", "0.95", "0.99"]
    assert [target["legendFormat"] for target in panel["targets"]] == ["p50", "p95", "p99"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    every = MODEL["panels"]
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in every:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["w"] > 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


def test_every_query_has_a_ref_id_and_filters_by_the_variables() -> None:
    for panel in panels(MODEL):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids, f"{panel['title']!r} has no query"
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    for target in targets(MODEL):
        selectors = re.findall(r"\{([^}]*)\}", target.expr)
        assert selectors, target
        for selector in selectors:
            assert 'job=~"$job"' in selector, target


def test_promtool_accepts_every_query(tmp_path: Path) -> None:
    found = targets(MODEL)
    rules: list[dict[str, Any]] = [
        {"record": f"dashboard:query_{index}", "expr": substitute(target.expr)}
        for index, target in enumerate(found)
    ]
    variables = [var for var in MODEL["templating"]["list"] if var["type"] == "query"]
    for variable in variables:
        # label_values(SELECTOR, label): the selector is PromQL.
        match = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"]["query"])
        assert match, variable
        rules.append({"record": f"dashboard:variable_{variable['name']}", "expr": match.group(1)})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = check("promtool", "check", "rules", path)
    assert f"SUCCESS: {len(found) + len(variables)} rules found" in output


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The check above can fail: a query with an unbalanced parenthesis is refused."""
    (first, *_) = targets(MODEL)
    path = tmp_path / "broken.yml"
    rule = {"record": "dashboard:broken", "expr": substitute(first.expr) + ")"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    assert run("promtool", "check", "rules", path).returncode != 0


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job=~"$job"}[5m]))) > 30',
            {"a_bucket"},
        ),
        ('sum by (job) (up{job="x"}) == 0 or absent(up{job="x"})', {"up"}),
        ("b_total / ignoring (kind) c_total offset 5m", {"b_total", "c_total"}),
        ('rate(d{le="+Inf", q="sum(x)"}[$__rate_interval])', {"d"}),
    ],
)
def test_metric_names_reads_the_selected_metrics(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
