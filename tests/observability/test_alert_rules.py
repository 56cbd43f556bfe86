"""observability/alert_rules.yml: valid, unit-tested both ways, labelled, with runbooks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.observability.rules import Alert, alerts, load_yaml, rule_cases, runbook_sections
from tests.observability.tools import (
    ALERT_RULES,
    ALERTMANAGER_YML,
    OBSERVABILITY,
    RULE_TESTS,
    check,
    run,
)

ALERTS = alerts()
NAMES = [alert.name for alert in ALERTS]
# The brief of issue #6: the original design's five, and what the service added since.
REQUIRED = {
    "HighErrorRate",
    "HighResponseTime",
    "AgentDown",
    "HighQueueLength",
    "CircuitBreakerOpen",
    "NoReadyReplicas",
    "HighRateLimitedFraction",
    "StoreErrors",
    "EventBusFallback",
    "RateLimiterDegraded",
}
RECEIVERS = {"critical": "oncall-pager", "warning": "team-chat"}


def test_promtool_accepts_the_rules() -> None:
    output = check("promtool", "check", "rules", ALERT_RULES)
    assert f"SUCCESS: {len(ALERTS)} rules found" in output


def test_the_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool test files in observability/tests"
    output = check("promtool", "test", "rules", *RULE_TESTS, cwd=OBSERVABILITY)
    assert "SUCCESS" in output
    assert "FAILED" not in output


def test_the_unit_tests_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """promtool compares rendered annotations exactly: a changed expectation fails."""
    (source,) = (path for path in RULE_TESTS if path.name == "alert_rules_test.yml")
    tests = load_yaml(source)
    tests["rule_files"] = [str(ALERT_RULES)]
    text = yaml.safe_dump(tests, sort_keys=False)
    assert "now 0.20/s." in text
    broken = tmp_path / source.name
    broken.write_text(text.replace("now 0.20/s.", "now 0.30/s.", 1))
    done = run("promtool", "test", "rules", broken)
    assert done.returncode != 0
    assert "HighErrorRate" in done.stdout
    assert "now 0.30/s." in done.stdout
    # The same file unchanged passes: the failure is the expectation, nothing else.
    (tmp_path / "intact.yml").write_text(text)
    assert run("promtool", "test", "rules", tmp_path / "intact.yml").returncode == 0


def test_every_required_alert_exists_once() -> None:
    assert len(NAMES) == len(set(NAMES))
    assert set(NAMES) >= REQUIRED


@pytest.mark.parametrize("alert", ALERTS, ids=NAMES)
def test_each_alert_is_tested_firing_and_quiet(alert: Alert) -> None:
    cases = [case for case in rule_cases() if case["alertname"] == alert.name]
    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"no promtool case makes {alert.name} fire"
    assert quiet, f"no promtool case keeps {alert.name} quiet"
    for case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_labels"]["severity"] == alert.labels["severity"]
            assert set(expected["exp_annotations"]) == set(alert.annotations)


def test_the_unit_tests_name_only_real_alerts() -> None:
    assert {case["alertname"] for case in rule_cases()} <= set(NAMES)


@pytest.mark.parametrize("alert", ALERTS, ids=NAMES)
def test_each_alert_has_severity_summary_description_and_runbook(alert: Alert) -> None:
    assert alert.labels.get("severity") in RECEIVERS
    assert set(alert.annotations) == {"summary", "description", "runbook_url"}
    assert alert.annotations["summary"].strip()
    assert alert.annotations["description"].strip()
    assert alert.annotations["runbook_url"] == f"docs/runbooks.md#{alert.name.lower()}"


@pytest.mark.parametrize("alert", ALERTS, ids=NAMES)
def test_each_alert_has_a_runbook_entry(alert: Alert) -> None:
    anchor = alert.annotations["runbook_url"].split("#", 1)[1]
    sections = runbook_sections()
    assert anchor in sections, f"docs/runbooks.md has no section #{anchor}"
    body = sections[anchor]
    for part in ("**Meaning.**", "**Impact.**", "**First checks.**", "**Mitigation.**"):
        assert part in body, f"runbook #{anchor} lacks {part}"


def test_every_runbook_entry_is_an_alert() -> None:
    alert_anchors = {name.lower() for name in NAMES}
    assert set(runbook_sections()) == alert_anchors


def test_the_original_response_time_query_is_fixed() -> None:
    """The original design took a quantile of the raw histogram; ours sums rates by le."""
    (slow,) = (alert for alert in ALERTS if alert.name == "HighResponseTime")
    expr = " ".join(slow.expr.split())
    assert re.search(
        r"histogram_quantile\(0\.95, sum by \((job, )?le\) "
        r"\(rate\(agent_task_duration_seconds_bucket\[5m\]\)\)\)",
        expr,
    ), expr


# -- Alertmanager ------------------------------------------------------------------------


def test_amtool_accepts_the_alertmanager_config() -> None:
    output = check("amtool", "check-config", ALERTMANAGER_YML)
    assert "SUCCESS" in output


@pytest.mark.parametrize("alert", ALERTS, ids=NAMES)
def test_each_alert_routes_to_the_receiver_of_its_severity(alert: Alert) -> None:
    severity = alert.labels["severity"]
    output = check(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        f"alertname={alert.name}",
        f"severity={severity}",
        "job=switchboard",
    )
    receivers = [line for line in output.splitlines() if not line.startswith("Warning:")]
    assert receivers == [RECEIVERS[severity]]


def test_the_inhibit_rules_name_real_alerts() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    named = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname(!?=)"(\w+)"', matcher)
            if match:
                named.add(match.group(2))
        assert set(rule["equal"]) >= {"job"}
    assert named
    assert named <= set(NAMES)
