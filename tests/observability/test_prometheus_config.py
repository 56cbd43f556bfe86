"""observability/prometheus*.yml: valid for promtool, and the Kubernetes relabeling does its job.

Debian's Prometheus is built without Kubernetes service discovery, so promtool cannot
read ``kubernetes_sd_configs``. The Kubernetes example is checked by swapping each of
those blocks for a ``file_sd_configs`` that lists what pod discovery would find — the
same ``__meta_kubernetes_*`` labels — and letting ``promtool check service-discovery``
run the example's relabeling on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.observability.rules import load_yaml
from tests.observability.tools import (
    ALERT_RULES,
    PROMETHEUS_KUBERNETES_YML,
    PROMETHEUS_YML,
    check,
)

JOB = "switchboard"
SD_WAIT = "3s"


def _job(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [j for j in config["scrape_configs"] if j["job_name"] == name]
    (job,) = found
    return job


def test_promtool_accepts_the_static_config_and_its_rules() -> None:
    output = check("promtool", "check", "config", PROMETHEUS_YML)
    assert "SUCCESS: 1 rule files found" in output
    assert f"Checking {ALERT_RULES}" in output


def test_the_static_config_scrapes_metrics_and_alerts_to_alertmanager() -> None:
    config = load_yaml(PROMETHEUS_YML)
    assert config["rule_files"] == [ALERT_RULES.name]
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["alertmanager:9093"]
    job = _job(config, JOB)
    assert job["metrics_path"] == "/metrics"
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets
    assert all(target.endswith(":9464") for target in targets)


def _pod(
    name: str,
    ip: str,
    port: int,
    port_name: str,
    *,
    app: str = "switchboard",
    phase: str = "Running",
    ready: str = "true",
) -> dict[str, Any]:
    """One target as Kubernetes pod discovery reports a container port."""
    return {
        "targets": [f"{ip}:{port}"],
        "labels": {
            "__meta_kubernetes_namespace": "switchboard",
            "__meta_kubernetes_pod_name": name,
            "__meta_kubernetes_pod_ip": ip,
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
            "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name": "true",
            "__meta_kubernetes_pod_label_app_kubernetes_io_version": "0.1.0",
            "__meta_kubernetes_pod_container_name": app,
            "__meta_kubernetes_pod_container_port_name": port_name,
            "__meta_kubernetes_pod_container_port_number": str(port),
            "__meta_kubernetes_pod_container_port_protocol": "TCP",
            "__meta_kubernetes_pod_ready": ready,
            "__meta_kubernetes_pod_phase": phase,
            "__meta_kubernetes_pod_node_name": f"node-{ip.rsplit('.', 1)[1]}",
        },
    }


DISCOVERED_PODS = [
    _pod("switchboard-7c9f-a", "10.0.0.11", 9464, "metrics"),
    _pod("switchboard-7c9f-a", "10.0.0.11", 50051, "grpc"),
    # Not ready (e.g. its database is down): scraped all the same.
    _pod("switchboard-7c9f-b", "10.0.0.12", 9464, "metrics", ready="false"),
    _pod("switchboard-7c9f-b", "10.0.0.12", 50051, "grpc", ready="false"),
    # A pod that ended: nothing to scrape.
    _pod("switchboard-5d2e-c", "10.0.0.13", 9464, "metrics", phase="Succeeded", ready="false"),
    # Another application's metrics port in the same namespace.
    _pod("envoy-1", "10.0.0.14", 9464, "metrics", app="envoy"),
]


def _without_kubernetes_sd(tmp_path: Path) -> Path:
    """The Kubernetes example with file discovery of DISCOVERED_PODS in place of Kubernetes'."""
    config = load_yaml(PROMETHEUS_KUBERNETES_YML)
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps(DISCOVERED_PODS))
    managers = tmp_path / "alertmanagers.json"
    managers.write_text(json.dumps([{"targets": ["10.0.1.1:9093"], "labels": {}}]))
    job = _job(config, JOB)
    job["file_sd_configs"] = [{"files": [str(pods)]}]
    del job["kubernetes_sd_configs"]
    for manager in config["alerting"]["alertmanagers"]:
        manager["file_sd_configs"] = [{"files": [str(managers)]}]
        del manager["kubernetes_sd_configs"]
    config["rule_files"] = [str(ALERT_RULES)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_kubernetes_config_discovers_pods_in_its_namespace() -> None:
    config = load_yaml(PROMETHEUS_KUBERNETES_YML)
    job = _job(config, JOB)
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    assert discovery["namespaces"]["names"] == ["switchboard"]
    assert [(s["role"], s["label"]) for s in discovery["selectors"]] == [
        ("pod", "app.kubernetes.io/name=switchboard")
    ]
    (manager,) = config["alerting"]["alertmanagers"]
    assert [sd["role"] for sd in manager["kubernetes_sd_configs"]] == ["endpoints"]
    assert config["rule_files"] == [ALERT_RULES.name]


def test_promtool_accepts_the_kubernetes_config_with_discovery_swapped(tmp_path: Path) -> None:
    output = check("promtool", "check", "config", _without_kubernetes_sd(tmp_path))
    assert "SUCCESS: 1 rule files found" in output


def test_the_kubernetes_relabeling_keeps_each_pods_metrics_port(tmp_path: Path) -> None:
    # promtool waits the whole timeout for more results; file discovery answers at once.
    output = check(
        "promtool",
        "check",
        "service-discovery",
        f"--timeout={SD_WAIT}",
        _without_kubernetes_sd(tmp_path),
        JOB,
        merge_stderr=False,
    )
    results = json.loads(output)
    assert len(results) == len(DISCOVERED_PODS)
    # Discovery reports targets in no fixed order.
    kept = sorted(
        (
            {key: value for key, value in result["labels"].items() if not key.startswith("__")}
            for result in results
            if result["labels"]
        ),
        key=lambda labels: labels["instance"],
    )
    assert kept == [
        {
            "instance": "10.0.0.11:9464",
            "job": JOB,
            "namespace": "switchboard",
            "pod": "switchboard-7c9f-a",
            "node": "node-11",
            "version": "0.1.0",
        },
        {
            "instance": "10.0.0.12:9464",
            "job": JOB,
            "namespace": "switchboard",
            "pod": "switchboard-7c9f-b",
            "node": "node-12",
            "version": "0.1.0",
        },
    ]
    scraped = [result["labels"]["__metrics_path__"] for result in results if result["labels"]]
    assert scraped == ["/metrics", "/metrics"]
