"""The Grafana dashboard's panels and queries, and PromQL read just enough to check them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.observability.tools import DASHBOARD

# What Grafana puts in place of the dashboard's variables, for running a query elsewhere.
DEFAULT_VARIABLES = {"job": "switchboard", "instance": ".+", "__rate_interval": "1m"}

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"and", "or", "unless", "atan2", "inf", "nan"}
)


@dataclass(frozen=True)
class Target:
    """One query of one panel."""

    panel: str
    ref_id: str
    expr: str
    legend: str


def load() -> dict[str, Any]:
    """The dashboard's JSON model."""
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that is not a row, rows' nested panels included, in order."""
    found = []
    for panel in model["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def targets(model: dict[str, Any]) -> list[Target]:
    """Every query of every panel."""
    return [
        Target(panel["title"], target["refId"], target["expr"], target.get("legendFormat", ""))
        for panel in panels(model)
        for target in panel["targets"]
    ]


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """``expr`` with ``$name`` / ``${name}`` replaced, as Grafana does before it queries."""
    values = DEFAULT_VARIABLES if variables is None else variables

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for the variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (its functions, labels, keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, regexes
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    grouping = r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(grouping, " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
