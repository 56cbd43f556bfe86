"""Reading series out of a registry or a scrape, as exact label sets."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


def labels(**values: str) -> Labels:
    """A label set, comparable with the keys ``series`` returns."""
    return frozenset(values.items())


def series(source: CollectorRegistry | str, name: str) -> dict[Labels, float]:
    """Every sample named ``name``: its label set -> value (from a registry or a scrape)."""
    families: Iterable[Metric] = (
        text_string_to_metric_families(source) if isinstance(source, str) else source.collect()
    )
    return {
        frozenset(sample.labels.items()): sample.value
        for family in families
        for sample in family.samples
        if sample.name == name
    }


def grpc_labels(kind: str, service: str, method: str, **more: str) -> Labels:
    """The labels of a gRPC series (``grpc_code=...`` as ``more`` for handled)."""
    return labels(grpc_type=kind, grpc_service=service, grpc_method=method, **more)
