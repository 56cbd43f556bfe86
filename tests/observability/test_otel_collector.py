"""observability/otel-collector.yaml: a collector config whose pipelines hold together.

No collector binary exists here, so this checks what the collector would refuse at
start: every component a pipeline names is defined (``type`` or ``type/name``), every
defined one is used, the OTLP receiver listens where Switchboard exports, and the
memory limiter comes first.
"""

from __future__ import annotations

from typing import Any

from tests.observability.rules import load_yaml
from tests.observability.tools import COLLECTOR

CONFIG: dict[str, Any] = load_yaml(COLLECTOR)
KINDS = ("receivers", "processors", "exporters")


def _pipelines() -> dict[str, dict[str, list[str]]]:
    pipelines: dict[str, dict[str, list[str]]] = CONFIG["service"]["pipelines"]
    return pipelines


def test_every_component_a_pipeline_names_is_defined_and_every_one_is_used() -> None:
    assert _pipelines()
    for kind in KINDS:
        defined = set(CONFIG[kind])
        used: set[str] = set()
        for name, pipeline in _pipelines().items():
            named = pipeline.get(kind, [])
            assert len(named) == len(set(named)), f"{name}: {kind} listed twice"
            assert set(named) <= defined, f"{name}: undefined {kind} {set(named) - defined}"
            used |= set(named)
        assert used == defined, f"defined but unused {kind}: {defined - used}"
    assert set(CONFIG["service"]["extensions"]) == set(CONFIG["extensions"])


def test_every_pipeline_receives_and_exports() -> None:
    for name, pipeline in _pipelines().items():
        assert name.split("/")[0] in {"traces", "metrics", "logs"}
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name


def test_the_traces_pipeline_takes_otlp_and_exports_to_a_backend_and_debug() -> None:
    traces = _pipelines()["traces"]
    assert traces["receivers"] == ["otlp"]
    assert traces["processors"][0] == "memory_limiter"
    assert "batch" in traces["processors"]
    types = [exporter.split("/")[0] for exporter in traces["exporters"]]
    assert "debug" in types
    assert "otlp_grpc" in types


def test_the_otlp_receiver_listens_on_the_standard_ports() -> None:
    protocols = CONFIG["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_the_backend_exporter_has_an_endpoint_and_retries() -> None:
    backends = {
        name: exporter
        for name, exporter in CONFIG["exporters"].items()
        if name.split("/")[0] == "otlp_grpc"
    }
    assert backends
    for name, exporter in backends.items():
        host, _, port = exporter["endpoint"].rpartition(":")
        assert host, name
        assert port.isdigit(), name
        assert exporter["retry_on_failure"]["enabled"] is True
        assert exporter["sending_queue"]["enabled"] is True
