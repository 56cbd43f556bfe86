"""The alert rules, their promtool tests and the runbooks, read as data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.observability.tools import ALERT_RULES, RULE_TESTS, RUNBOOKS


@dataclass(frozen=True)
class Alert:
    """One alerting rule of alert_rules.yml."""

    name: str
    expr: str
    duration: str
    labels: dict[str, str]
    annotations: dict[str, str]


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text())


def alerts() -> list[Alert]:
    """Every alerting rule, in file order."""
    found = []
    for group in load_yaml(ALERT_RULES)["groups"]:
        for rule in group["rules"]:
            found.append(
                Alert(
                    name=rule["alert"],
                    expr=rule["expr"],
                    duration=rule.get("for", "0s"),
                    labels=rule.get("labels", {}),
                    annotations=rule.get("annotations", {}),
                )
            )
    return found


def rule_cases() -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of the promtool test files."""
    return [
        case
        for path in RULE_TESTS
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's level-2 sections: anchor -> body."""
    sections: dict[str, str] = {}
    anchor = None
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            anchor = github_anchor(line[3:])
            sections[anchor] = ""
        elif anchor is not None:
            sections[anchor] += line + "\n"
    return sections
