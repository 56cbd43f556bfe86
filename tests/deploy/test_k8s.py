"""The Kubernetes manifests of deploy/k8s, checked with the real tools.

Every overlay renders with kustomize (kubectl's); every rendered object validates against
the Kubernetes schemas (kubernetes-validate --strict, oldest and newest supported
version) and the custom resources against the fields of their CRDs; the YAML lints
clean. Then the objects must say what docs/deploy.md says: hardened pods, gRPC probes on
the health services the server reports, a termination grace longer than the server's
shutdown, settings the server accepts, the autoscaler's metrics and the adapter rule
behind them (evaluated by promtool), mesh retries only where a retry is safe, and the
blue-green switch.
"""

from __future__ import annotations

import math
import re
import shutil
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy.engine import make_url

from switchboard.server.agents import build_runtimes
from switchboard.server.app import SERVICE_NAMES
from switchboard.server.assembly import check_settings
from switchboard.server.config import Settings
from switchboard.server.orchestrator.limits import MAX_TIMEOUT
from switchboard.v1 import agents_pb2, auth_pb2, tasks_pb2
from tests.deploy.k8s_crds import SCHEMAS
from tests.deploy.k8s_manifests import (
    K8S,
    KUBECTL_HELP,
    REPO,
    Obj,
    container,
    container_port,
    environment,
    example_secrets,
    kustomize,
    labels,
    mounted_file,
    named,
    objects,
    of_kind,
    pod_labels,
    pod_templates,
    port_of,
    run,
    selects,
    server_settings,
    servers,
    tool,
)

BASE = "base"
PRODUCTION = "overlays/production"
ISTIO = "overlays/istio"
BLUE_GREEN = "overlays/blue-green"
BLUE_GREEN_MIGRATE = "overlays/blue-green/migrate"
DEV = "overlays/dev"
OVERLAYS = [BASE, PRODUCTION, ISTIO, BLUE_GREEN, BLUE_GREEN_MIGRATE, DEV]
SERVING = [BASE, PRODUCTION, ISTIO, BLUE_GREEN, DEV]
# Many replicas on PostgreSQL and Redis, JWT auth, autoscaled; dev is one SQLite replica.
SCALED = [BASE, PRODUCTION, ISTIO, BLUE_GREEN]
WITH_MIGRATION = [BASE, PRODUCTION, ISTIO, BLUE_GREEN_MIGRATE]
NAMESPACE = {
    BASE: None,
    PRODUCTION: "switchboard",
    ISTIO: "switchboard",
    BLUE_GREEN: "switchboard",
    BLUE_GREEN_MIGRATE: "switchboard",
    DEV: "switchboard-dev",
}

# API versions kubernetes-validate has schemas for; anything else needs one in k8s_crds.py.
BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "autoscaling/v2",
    "policy/v1",
    "networking.k8s.io/v1",
}
# The oldest Kubernetes the manifests support (the preStop `sleep` action is on by
# default from 1.30) and the newest kubernetes-validate has schemas for.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]

TASK_SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name
# What `switchboard serve` does after SIGTERM, on top of the configured delays: the
# bounded flush of traces in server/cli.py (tracing.shutdown(5.0)).
TRACE_FLUSH = timedelta(seconds=5)
# Room left for the last steps (closing pools, process exit) before SIGKILL.
SHUTDOWN_MARGIN = timedelta(seconds=10)
# Methods a proxy may repeat on another replica: reads and resumable streams.
IDEMPOTENT_METHODS = {
    f"/{TASK_SERVICE}/GetTask",
    f"/{TASK_SERVICE}/ListTasks",
    f"/{TASK_SERVICE}/WatchTask",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    *(
        f"/{service.full_name}/{method.name}"
        for service in agents_pb2.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ),
}
# Retry conditions under which the request surely never reached a replica.
NEVER_ARRIVED = {"connect-failure", "refused-stream"}
# The patch docs/deploy.md gives to promote the green track by hand.
PROMOTE_GREEN = '{"spec":{"selector":{"track":"green"}}}'


@pytest.fixture(scope="module")
def kubectl() -> str:
    return tool("kubectl", KUBECTL_HELP)


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, str]:
    """Every overlay, rendered once for the module."""
    return {overlay: kustomize(kubectl, K8S / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def manifests(rendered: dict[str, str]) -> dict[str, list[Obj]]:
    return {overlay: objects(text) for overlay, text in rendered.items()}


def _pyproject_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _seconds(duration: str) -> float:
    """A Go/protobuf duration such as ``3600s`` or ``1m30s`` in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"([0-9.]+)(ms|s|m|h)", duration)
    assert parts, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- rendering and validation ------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_distinct_named_objects(
    manifests: dict[str, list[Obj]], overlay: str
) -> None:
    objs = manifests[overlay]
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in objs]
    assert len(keys) == len(set(keys)), f"{overlay}: duplicate objects {keys}"
    for obj in objs:
        assert obj["apiVersion"], obj
        assert obj["kind"], obj
        assert obj["metadata"].get("namespace") == NAMESPACE[overlay], (
            f"{overlay}: {obj['kind']}/{obj['metadata']['name']} is in namespace "
            f"{obj['metadata'].get('namespace')!r}"
        )
        assert labels(obj).get("app.kubernetes.io/name") == "switchboard", obj["metadata"]
    # Kustomize's local config (the blue-green track switch) never reaches the cluster.
    assert not any(
        "config.kubernetes.io/local-config" in (obj["metadata"].get("annotations") or {})
        for obj in objs
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_kubernetes_validate_strict(
    rendered: dict[str, str], tmp_path: Path, version: str
) -> None:
    validator = tool("kubernetes-validate", "install the dev extra: pip install -e '.[dev]'")
    files = {}
    for overlay, text in rendered.items():
        path = tmp_path / (overlay.replace("/", "_") + ".yaml")
        path.write_text(text)
        files[str(path)] = objects(text)
    files[str(K8S / "examples" / "secrets.yaml")] = objects(
        (K8S / "examples" / "secrets.yaml").read_text()
    )
    result = run([validator, "--strict", "-k", version, *files])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed: dict[str, list[str]] = {name: [] for name in files}
    unknown: dict[str, list[tuple[str, str]]] = {name: [] for name in files}
    for line in output.splitlines():
        if found := re.fullmatch(r"INFO (\S+) passed for resource (\S+) against version .*", line):
            passed[found[1]].append(found[2])
        elif found := re.fullmatch(
            r"WARN (\S+) Couldn't find schema for kind (\w+) with api version (\S+) for .*", line
        ):
            unknown[found[1]].append((found[3], found[2]))
        else:
            pytest.fail(f"unexpected kubernetes-validate output: {line}")
    for name, objs in files.items():
        builtin = [obj for obj in objs if (obj["apiVersion"], obj["kind"]) not in SCHEMAS]
        custom = [(obj["apiVersion"], obj["kind"]) for obj in objs if obj not in builtin]
        expected = sorted(f"{obj['kind'].lower()}/{obj['metadata']['name']}" for obj in builtin)
        assert sorted(passed[name]) == expected, f"{name}: not every built-in kind was validated"
        # Only custom resources go unchecked here: test_custom_resources_match_their_crd_fields.
        assert sorted(unknown[name]) == sorted(custom), f"{name}: schema missing for {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_match_their_crd_fields(
    manifests: dict[str, list[Obj]], overlay: str
) -> None:
    for obj in manifests[overlay]:
        schema = SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if schema is None:
            assert obj["apiVersion"] in BUILTIN_API_VERSIONS, (
                f"{overlay}: {obj['kind']} ({obj['apiVersion']}) is a custom resource without "
                "a schema in tests/deploy/k8s_crds.py"
            )
            continue
        jsonschema.validate(obj, schema)


def test_yaml_lints_clean() -> None:
    yamllint = tool("yamllint", "install the dev extra: pip install -e '.[dev]'")
    result = run([yamllint, "--strict", "-c", ".yamllint.yaml", "deploy/k8s", ".yamllint.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


# --- the server pods -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_hardened(manifests: dict[str, list[Obj]], overlay: str) -> None:
    templates = pod_templates(manifests[overlay])
    assert templates
    for owner, template in templates:
        spec = template["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, owner
        assert pod["runAsUser"] == 1001, owner
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        assert spec["automountServiceAccountToken"] is False, owner
        for each in spec["containers"]:
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, owner
            assert context["readOnlyRootFilesystem"] is True, owner
            assert context["capabilities"] == {"drop": ["ALL"]}, owner
            assert context.get("privileged", False) is False, owner
            assert context.get("runAsNonRoot", True) is True, owner
            assert set(each["resources"]) == {"limits", "requests"}, owner
            # Writable places are volumes: the root filesystem is read-only.
            mounted = {mount["mountPath"] for mount in each.get("volumeMounts", [])}
            assert "/tmp" in mounted, owner


@pytest.mark.parametrize("overlay", SERVING)
def test_server_deployments(manifests: dict[str, list[Obj]], overlay: str) -> None:
    deployments = servers(manifests[overlay])
    assert len(deployments) == (2 if overlay == BLUE_GREEN else 1)
    for deployment in deployments:
        spec = deployment["spec"]
        assert selects(spec["selector"]["matchLabels"], pod_labels(deployment))
        assert spec["replicas"] == (1 if overlay == DEV else 3)
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
        server = container(deployment, "switchboard")
        assert server["command"] == ["switchboard"]
        assert server["args"] == ["serve"]
        # The original design's sizing.
        assert server["resources"] == {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1000m", "memory": "1Gi"},
        }
        # Services named switchboard* would add SWITCHBOARD_* variables to the settings.
        assert spec["template"]["spec"]["enableServiceLinks"] is False
        spread = spec["template"]["spec"]["topologySpreadConstraints"]
        assert {rule["topologyKey"] for rule in spread} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        for rule in spread:
            assert selects(rule["labelSelector"]["matchLabels"], pod_labels(deployment))
            assert rule["matchLabelKeys"] == ["pod-template-hash"]
        volumes = {volume["name"] for volume in spec["template"]["spec"]["volumes"]}
        assert {mount["name"] for mount in server["volumeMounts"]} <= volumes


@pytest.mark.parametrize("overlay", SERVING)
def test_probes_ask_the_health_services_the_server_reports(
    manifests: dict[str, list[Obj]], overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = manifests[overlay]
    for deployment in servers(objs):
        server = container(deployment, "switchboard")
        settings = server_settings(objs, deployment, tmp_path, monkeypatch)
        grpc_port = container_port(server, "grpc")
        assert grpc_port == port_of(settings.address)
        assert container_port(server, "metrics") == port_of(settings.metrics_address)
        probes = {
            kind: server[f"{kind}Probe"]["grpc"] for kind in ("startup", "liveness", "readiness")
        }
        assert all(probe["port"] == grpc_port for probe in probes.values())
        # "" is the process (SERVING until shutdown); readiness is a service the server
        # marks NOT_SERVING while its store does not answer and once shutdown begins.
        assert probes["startup"]["service"] == ""
        assert probes["liveness"]["service"] == ""
        assert probes["readiness"]["service"] == TASK_SERVICE
        assert TASK_SERVICE in SERVICE_NAMES
        startup = server["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


@pytest.mark.parametrize("overlay", SERVING)
def test_termination_grace_outlasts_the_shutdown(
    manifests: dict[str, list[Obj]], overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = manifests[overlay]
    for deployment in servers(objs):
        settings = server_settings(objs, deployment, tmp_path, monkeypatch)
        pre_stop = timedelta(
            seconds=container(deployment, "switchboard")["lifecycle"]["preStop"]["sleep"]["seconds"]
        )
        # Endpoints must have dropped the pod before it stops serving.
        assert pre_stop >= timedelta(seconds=5)
        shutdown = (
            pre_stop
            + settings.server.drain_delay
            + settings.server.grace_period
            + settings.store.shutdown_write_timeout
            + TRACE_FLUSH
        )
        grace = timedelta(
            seconds=deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        )
        assert grace >= shutdown + SHUTDOWN_MARGIN, (
            f"terminationGracePeriodSeconds {grace} leaves no room after a {shutdown} shutdown"
        )
        if overlay == ISTIO:
            proxy = yaml.safe_load(
                deployment["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"]
            )
            assert proxy["holdApplicationUntilProxyStarts"] is True
            # The sidecar carries the server's traffic (PostgreSQL, Redis) until it is done.
            drain = timedelta(seconds=_seconds(proxy["terminationDrainDuration"]))
            assert shutdown <= drain < grace


@pytest.mark.parametrize("overlay", SERVING)
def test_server_settings_start(
    manifests: dict[str, list[Obj]], overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's settings pass every check `switchboard serve` makes before the store."""
    objs = manifests[overlay]
    for deployment in servers(objs):
        settings = server_settings(objs, deployment, tmp_path, monkeypatch)
        runtimes = check_settings(settings, build_runtimes)
        assert settings.default_agent in runtimes
        if overlay == DEV:
            assert settings.auth.mode == "none"
            assert settings.auth.allow_unauthenticated
            assert make_url(settings.database_url).drivername == "sqlite+aiosqlite"
            assert settings.store.auto_migrate
            assert settings.redis_url is None
            continue
        _assert_scaled_settings(objs, deployment, settings)


def _assert_scaled_settings(objs: list[Obj], deployment: Obj, settings: Settings) -> None:
    """Many replicas: shared PostgreSQL and Redis, JWT with a mounted key, the Job migrates."""
    assert make_url(settings.database_url).drivername == "postgresql+asyncpg"
    assert settings.redis_url
    assert settings.redis_url.startswith(("redis://", "rediss://"))
    assert settings.store.auto_migrate is False
    assert settings.auth.mode == "jwt"
    assert not settings.auth.allow_unauthenticated
    assert settings.auth.public_key_file is not None
    kind, name, key = mounted_file(objs, deployment, str(settings.auth.public_key_file))
    assert kind == "Secret"
    assert key in example_secrets()[name]
    # Clients behind a virtual IP reconnect now and then, so new replicas get connections.
    assert settings.server.max_connection_age is not None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_referenced_accounts_config_and_secrets_exist(
    manifests: dict[str, list[Obj]], overlay: str
) -> None:
    objs = manifests[overlay]
    secrets = example_secrets()
    config_maps = {obj["metadata"]["name"] for obj in of_kind(objs, "ConfigMap")}
    accounts = {obj["metadata"]["name"] for obj in of_kind(objs, "ServiceAccount")}
    for owner, template in pod_templates(objs):
        assert template["spec"]["serviceAccountName"] in accounts, owner
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, owner
            if "secret" in volume:
                secret = volume["secret"]
                assert secret["secretName"] in secrets, owner
                for item in secret.get("items", []):
                    assert item["key"] in secrets[secret["secretName"]], owner
        for each in template["spec"]["containers"]:
            environment(each, secrets)  # fails on a Secret or key the examples lack


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(manifests: dict[str, list[Obj]], overlay: str) -> None:
    for owner, template in pod_templates(manifests[overlay]):
        for each in template["spec"]["containers"]:
            image = each["image"]
            name, _, tag = image.rpartition(":")
            assert name, f"{owner}: untagged {image}"
            assert re.fullmatch(r"[\w][\w.-]{0,127}", tag), f"{owner}: untagged {image}"
            assert tag != "latest", f"{owner}: {image}"
            if overlay in (BASE, PRODUCTION, ISTIO, DEV):
                assert tag == _pyproject_version(), f"{owner}: {image} is not this release"
            if overlay in (PRODUCTION, ISTIO):
                # Pulled from the registry, not whatever a node has cached as switchboard:x.
                assert "/" in name, f"{owner}: {image} names no registry"


# --- services, policy, disruption, monitoring ----------------------------------------------


@pytest.mark.parametrize("overlay", SERVING)
def test_services_reach_the_server_ports(manifests: dict[str, list[Obj]], overlay: str) -> None:
    objs = manifests[overlay]
    deployments = servers(objs)
    services = {obj["metadata"]["name"]: obj for obj in of_kind(objs, "Service")}
    assert {"switchboard", "switchboard-headless", "switchboard-metrics"} <= set(services)
    for name, service in services.items():
        backing = [d for d in deployments if selects(service["spec"]["selector"], pod_labels(d))]
        assert backing, f"Service {name} selects no server pod"
        for port in service["spec"]["ports"]:
            for deployment in backing:
                container_port(container(deployment, "switchboard"), port["targetPort"])
    mesh = services["switchboard"]["spec"]
    assert mesh["type"] == "ClusterIP"
    assert mesh["ports"] == [
        {
            "name": "grpc",
            "port": 50051,
            "targetPort": "grpc",
            "protocol": "TCP",
            "appProtocol": "grpc",
        }
    ]
    assert services["switchboard-headless"]["spec"]["clusterIP"] == "None"
    assert services["switchboard-headless"]["spec"]["ports"][0]["appProtocol"] == "grpc"
    # Scraped whether ready or not: a pod failing readiness is the one to look at.
    assert services["switchboard-metrics"]["spec"]["publishNotReadyAddresses"] is True


@pytest.mark.parametrize("overlay", SERVING)
def test_network_policy(manifests: dict[str, list[Obj]], overlay: str) -> None:
    objs = manifests[overlay]
    policy = named(objs, "NetworkPolicy", "switchboard")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    for deployment in servers(objs):
        assert selects(policy["podSelector"]["matchLabels"], pod_labels(deployment))
        server = container(deployment, "switchboard")
        for rule in policy["ingress"]:
            for port in rule["ports"]:
                container_port(server, port["port"])
    ingress = {port["port"]: rule["from"] for rule in policy["ingress"] for port in rule["ports"]}
    assert set(ingress) == {"grpc", "metrics"}
    assert ingress["metrics"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    egress = {
        (port["protocol"], port["port"]) for rule in policy["egress"] for port in rule["ports"]
    }
    secrets = example_secrets()
    database = make_url(secrets["switchboard-database"]["url"]).port
    redis = make_url(secrets["switchboard-redis"]["url"]).port
    assert {("UDP", 53), ("TCP", 53), ("TCP", database), ("TCP", redis), ("TCP", 443)} <= egress
    https = next(
        rule for rule in policy["egress"] if rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    )
    blocks = [peer["ipBlock"] for peer in https["to"]]
    # The providers are on the Internet; the cloud metadata endpoint is not reachable.
    assert "169.254.0.0/16" in blocks[0]["except"]
    assert "10.0.0.0/8" in blocks[0]["except"]


@pytest.mark.parametrize("overlay", SERVING)
def test_disruption_budget_covers_each_deployment(
    manifests: dict[str, list[Obj]], overlay: str
) -> None:
    objs = manifests[overlay]
    budgets = of_kind(objs, "PodDisruptionBudget")
    for deployment in servers(objs):
        covering = [
            b
            for b in budgets
            if selects(b["spec"]["selector"]["matchLabels"], pod_labels(deployment))
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", [BASE, PRODUCTION, ISTIO, BLUE_GREEN])
def test_service_monitor_scrapes_every_replica_as_job_switchboard(
    manifests: dict[str, list[Obj]], overlay: str
) -> None:
    objs = manifests[overlay]
    monitor = named(objs, "ServiceMonitor", "switchboard")["spec"]
    scraped = [
        s
        for s in of_kind(objs, "Service")
        if selects(monitor["selector"]["matchLabels"], labels(s))
    ]
    # One Service only: two would scrape every pod twice.
    assert [s["metadata"]["name"] for s in scraped] == ["switchboard-metrics"]
    service = scraped[0]
    # The alert rules (observability/alert_rules.yml) expect job="switchboard".
    assert labels(service)[monitor["jobLabel"]] == "switchboard"
    assert [e["port"] for e in monitor["endpoints"]] == [
        p["name"] for p in service["spec"]["ports"]
    ]
    assert monitor["endpoints"][0]["path"] == "/metrics"
    # Every server pod, of either blue-green track, is behind it.
    for deployment in servers(objs):
        assert selects(service["spec"]["selector"], pod_labels(deployment))


# --- autoscaling ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", SCALED)
def test_autoscaler(manifests: dict[str, list[Obj]], overlay: str) -> None:
    objs = manifests[overlay]
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    spec = hpa["spec"]
    target = named(objs, spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"])
    assert target in servers(objs)
    assert spec["minReplicas"] <= target["spec"]["replicas"] <= spec["maxReplicas"]
    metrics = {
        (metric["type"], (metric.get("resource") or metric["pods"]["metric"])["name"]): (
            metric.get("resource") or metric["pods"]
        )["target"]
        for metric in spec["metrics"]
    }
    assert metrics == {
        ("Resource", "cpu"): {"type": "Utilization", "averageUtilization": 70},
        ("Resource", "memory"): {"type": "Utilization", "averageUtilization": 80},
        ("Pods", "agent_queue_length"): {"type": "AverageValue", "averageValue": "5"},
    }


def test_adapter_rule_makes_the_autoscaler_average_the_global_queue_per_replica(
    tmp_path: Path,
) -> None:
    """promtool evaluates the rule's query: three replicas each reporting a global queue of 30.

    One pod is scraped twice and another Deployment's pod reports too: neither may
    change the result. Each pod's value must be 30/3, so the autoscaler's average over
    its pods is 10 and it wants ceil(3 * 10 / 5) = 6 = ceil(30 / 5) replicas.
    """
    promtool = tool(
        "promtool",
        "run observability/install-tools.sh, or apt-get install prometheus (it brings promtool)",
    )
    values = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    # The chart's default rules would serve agent_queue_length undivided.
    assert values["rules"]["default"] is False
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == "agent_queue_length"
    assert re.fullmatch(r"agent_queue_length\{.*\}", rule["seriesQuery"])
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    pods = ["switchboard-a", "switchboard-b", "switchboard-c"]
    global_queue = 30
    # How the adapter fills the template when the autoscaler asks for
    # .../namespaces/switchboard/pods/*/agent_queue_length with the Deployment's pods.
    query = (
        rule["metricsQuery"]
        .replace("<<.Series>>", "agent_queue_length")
        .replace("<<.LabelMatchers>>", f'namespace="switchboard",pod=~"{"|".join(pods)}"')
        .replace("<<.GroupBy>>", "pod")
    )
    assert "<<" not in query
    series = [
        *(
            f'agent_queue_length{{namespace="switchboard",pod="{pod}",job="switchboard"}}'
            for pod in pods
        ),
        f'agent_queue_length{{namespace="switchboard",pod="{pods[0]}",job="again"}}',
        'agent_queue_length{namespace="switchboard",pod="other-0",job="other"}',
    ]
    per_pod = global_queue / len(pods)
    (tmp_path / "rules.yml").write_text("groups: []\n")
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    {"series": name, "values": f"{100 if 'other-0' in name else global_queue}x4"}
                    for name in series
                ],
                "promql_expr_test": [
                    {
                        "expr": query,
                        "eval_time": "30s",
                        "exp_samples": [
                            {"labels": f'{{pod="{pod}"}}', "value": per_pod} for pod in pods
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "adapter_test.yml").write_text(yaml.safe_dump(unit_test))
    result = run([promtool, "test", "rules", "adapter_test.yml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The autoscaler's arithmetic for a Pods metric with an AverageValue target.
    target = 5
    desired = math.ceil(len(pods) * (per_pod / target))
    assert desired == math.ceil(global_queue / target) == 6


# --- the migration Job ----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", WITH_MIGRATION)
def test_migration_job(manifests: dict[str, list[Obj]], overlay: str) -> None:
    objs = manifests[overlay]
    job = named(objs, "Job", "switchboard-migrate")
    migrate = container(job, "migrate")
    assert migrate["command"] == ["switchboard"]
    assert migrate["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = {variable["name"]: variable for variable in migrate["env"]}
    assert env["SWITCHBOARD_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "switchboard-database",
        "key": "url",
    }
    if overlay == BLUE_GREEN_MIGRATE:
        tracks = {container(d, "switchboard")["image"] for d in servers(manifests[BLUE_GREEN])}
        assert migrate["image"] in tracks, "the migration runs a release one of the tracks runs"
        return
    (deployment,) = servers(objs)
    server = container(deployment, "switchboard")
    assert migrate["image"] == server["image"]
    server_url = next(v for v in server["env"] if v["name"] == "SWITCHBOARD_DATABASE_URL")
    assert server_url["valueFrom"] == env["SWITCHBOARD_DATABASE_URL"]["valueFrom"]
    if overlay == ISTIO:
        # A sidecar would keep the Job's pod running after the migration ends.
        assert pod_labels(job)["sidecar.istio.io/inject"] == "false"


def test_dev_runs_alone_without_shared_services(manifests: dict[str, list[Obj]]) -> None:
    objs = manifests[DEV]
    kinds = {obj["kind"] for obj in objs}
    assert not kinds & {"HorizontalPodAutoscaler", "Job", "ServiceMonitor", "Secret"}
    (deployment,) = servers(objs)
    server = container(deployment, "switchboard")
    assert not any("valueFrom" in v and "secretKeyRef" in v["valueFrom"] for v in server["env"])
    assert all(source["secretRef"].get("optional") for source in server.get("envFrom", []))


# --- Istio ------------------------------------------------------------------------------------


def _route_for(routes: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """The first VirtualService route whose match takes this path, as Envoy picks it."""
    for route in routes:
        matches = route.get("match")
        if not matches:
            return route
        for match in matches:
            uri = match["uri"]
            if ("prefix" in uri and path.startswith(uri["prefix"])) or uri.get("exact") == path:
                return route
    raise AssertionError(f"no route takes {path}")


def _methods() -> Iterator[str]:
    for module in (tasks_pb2, agents_pb2, auth_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield f"/{service.full_name}/{method.name}"
    yield "/grpc.health.v1.Health/Check"
    yield "/grpc.health.v1.Health/Watch"


def test_istio_retries_only_what_is_safe_to_repeat(manifests: dict[str, list[Obj]]) -> None:
    objs = manifests[ISTIO]
    service = named(objs, "Service", "switchboard")
    virtual = named(objs, "VirtualService", "switchboard")["spec"]
    assert virtual["hosts"] == [service["metadata"]["name"]]
    rule = named(objs, "DestinationRule", "switchboard")["spec"]
    assert rule["host"] == service["metadata"]["name"]
    assert rule["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    ports = {port["port"] for port in service["spec"]["ports"]}
    for route in virtual["http"]:
        for destination in route["route"]:
            assert destination["destination"]["host"] == service["metadata"]["name"]
            assert destination["destination"]["port"]["number"] in ports
        # Explicit everywhere: Istio's default policy would retry UNAVAILABLE.
        assert "retries" in route, route.get("name")
        assert "timeout" in route, route.get("name")
    assert "match" not in virtual["http"][-1], "the last route must take every other method"
    for path in _methods():
        route = _route_for(virtual["http"], path)
        conditions = set(route["retries"]["retryOn"].split(","))
        if path not in IDEMPOTENT_METHODS:
            assert conditions <= NEVER_ARRIVED, (
                f"{path} may be retried after it arrived: {conditions}"
            )
        # Never cut a call the server would still finish.
        assert _seconds(route["timeout"]) > MAX_TIMEOUT.total_seconds(), path
    watch = _route_for(virtual["http"], f"/{TASK_SERVICE}/WatchTask")
    assert _seconds(watch["timeout"]) >= 3600
    assert "unavailable" in watch["retries"]["retryOn"]


def test_istio_mesh_membership(manifests: dict[str, list[Obj]]) -> None:
    objs = manifests[ISTIO]
    (deployment,) = servers(objs)
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    peer = named(objs, "PeerAuthentication", "switchboard")["spec"]
    assert selects(peer["selector"]["matchLabels"], pod_labels(deployment))
    assert peer["mtls"]["mode"] == "STRICT"
    server = container(deployment, "switchboard")
    assert {int(port) for port in peer["portLevelMtls"]} == {container_port(server, "metrics")}
    # The sidecar gets its configuration from istiod, or the pod never starts.
    policy = named(objs, "NetworkPolicy", "switchboard")["spec"]
    assert any(
        port["port"] == 15012
        and rule["to"][0]["namespaceSelector"]["matchLabels"]
        == {"kubernetes.io/metadata.name": "istio-system"}
        for rule in policy["egress"]
        for port in rule["ports"]
    )


# --- blue-green --------------------------------------------------------------------------------


def _tracks(directory: Path) -> dict[str, str]:
    tracks = yaml.safe_load((directory / "overlays" / "blue-green" / "tracks.yaml").read_text())
    return dict(tracks["data"])


def _assert_blue_green(objs: list[Obj], live: str, preview: str) -> None:
    deployments = {d["metadata"]["name"]: d for d in servers(objs)}
    assert set(deployments) == {"switchboard-blue", "switchboard-green"}
    for name, deployment in deployments.items():
        track = name.removeprefix("switchboard-")
        assert deployment["spec"]["selector"]["matchLabels"]["track"] == track
        assert pod_labels(deployment)["track"] == track
    for name in ("switchboard", "switchboard-headless"):
        assert named(objs, "Service", name)["spec"]["selector"]["track"] == live, name
    assert named(objs, "Service", "switchboard-preview")["spec"]["selector"]["track"] == preview
    # The metrics Service scrapes both tracks, whichever one is live.
    assert "track" not in named(objs, "Service", "switchboard-metrics")["spec"]["selector"]
    (hpa,) = of_kind(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"switchboard-{live}"


def test_blue_green_serves_the_live_track(manifests: dict[str, list[Obj]]) -> None:
    tracks = _tracks(K8S)
    assert {tracks["live"], tracks["preview"]} == {"blue", "green"}
    _assert_blue_green(manifests[BLUE_GREEN], tracks["live"], tracks["preview"])


def test_blue_green_promotion_is_one_edit(kubectl: str, tmp_path: Path) -> None:
    """Swapping live and preview in tracks.yaml moves the Services and the autoscaler."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    tracks = tree / "overlays" / "blue-green" / "tracks.yaml"
    before = _tracks(tree)
    text = tracks.read_text()
    swapped = text.replace(f"live: {before['live']}", "live: SWAP").replace(
        f"preview: {before['preview']}", f"preview: {before['live']}"
    )
    tracks.write_text(swapped.replace("live: SWAP", f"live: {before['preview']}"))
    after = _tracks(tree)
    assert after == {"live": before["preview"], "preview": before["live"]}
    _assert_blue_green(
        objects(kustomize(kubectl, tree / BLUE_GREEN)), after["live"], after["preview"]
    )


def test_blue_green_promotion_by_hand(
    kubectl: str, manifests: dict[str, list[Obj]], tmp_path: Path
) -> None:
    """The emergency one-liner of docs/deploy.md, applied to the rendered Services offline."""
    assert PROMOTE_GREEN in (REPO / "docs" / "deploy.md").read_text()
    for name in ("switchboard", "switchboard-headless"):
        service = named(manifests[BLUE_GREEN], "Service", name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(service))
        result = run(
            [
                kubectl,
                "patch",
                "--local",
                "-f",
                str(path),
                "--type",
                "merge",
                "-p",
                PROMOTE_GREEN,
                "-o",
                "yaml",
            ]
        )
        assert result.returncode == 0, result.stderr
        patched = yaml.safe_load(result.stdout)["spec"]["selector"]
        assert patched == {**service["spec"]["selector"], "track": "green"}
