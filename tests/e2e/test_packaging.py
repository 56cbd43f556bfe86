"""The built wheel: one `switchboard` import name, both console scripts, a light client.

Builds the wheel from this checkout once per session, inspects it, then installs it
without the `server` extra into a fresh virtualenv (so nothing leaks in from the dev
environment) and uses the client there.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from .programs import REPO_ROOT, run_process

pytestmark = pytest.mark.timeout(600)

# Source folder -> where its files must land in the wheel.
PACKAGED = {
    "server": "switchboard/server",
    "client": "switchboard/client",
    "gen/python/switchboard/v1": "switchboard/v1",
}
SERVER_ONLY = {
    "sqlalchemy",
    "openai-agents",
    "pydantic",
    "pydantic-settings",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "grpcio-health-checking",
    "grpcio-reflection",
}


def _run(*argv: str | Path, cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, REPO_ROOT)
    [built] = out.glob("switchboard-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def _dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        [path] = [item for item in archive.namelist() if item.endswith(f".dist-info/{name}")]
        return archive.read(path).decode()


@pytest.fixture(scope="module")
def requirements(wheel: Path) -> list[Requirement]:
    metadata = HeaderParser().parsestr(_dist_info(wheel, "METADATA"))
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def _source_files(folder: str) -> set[str]:
    """Files of ``folder`` that a build sees: tracked or new, not git-ignored."""
    listing = _run("git", "ls-files", "--cached", "--others", "--exclude-standard", "--", folder)
    return {
        path
        for path in listing.splitlines()
        if (REPO_ROOT / path).is_file()  # deleted but not yet committed
    }


def test_only_the_switchboard_package_is_at_the_top(wheel_files: set[str]) -> None:
    top_level = {name.split("/", 1)[0] for name in wheel_files}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert top_level - dist_info == {"switchboard"}
    assert not {"server", "client", "gen"} & top_level
    assert not [name for name in wheel_files if "__pycache__" in name or name.endswith(".pyc")]


@pytest.mark.parametrize("folder", sorted(PACKAGED))
def test_every_source_file_is_in_the_wheel(wheel_files: set[str], folder: str) -> None:
    sources = _source_files(folder)
    assert sources, f"nothing to package in {folder}"
    expected = {PACKAGED[folder] + path.removeprefix(folder) for path in sources}
    assert expected - wheel_files == set()


def test_migrations_and_type_markers_are_shipped(wheel_files: set[str]) -> None:
    migrations = "switchboard/server/store/migrations/"
    assert f"{migrations}env.py" in wheel_files
    assert any(name.startswith(f"{migrations}versions/") for name in wheel_files)
    assert "switchboard/v1/py.typed" in wheel_files


def test_console_scripts(wheel: Path) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {
        "switchboard": "switchboard.server.cli:main",
        "swb": "switchboard.client.cli:main",
    }


def test_the_client_needs_none_of_the_server_dependencies(
    requirements: list[Requirement],
) -> None:
    base = {requirement.name.lower() for requirement in requirements if not requirement.marker}
    assert {"grpcio", "protobuf"} <= base
    assert not base & SERVER_ONLY
    server_extra = {
        requirement.name.lower()
        for requirement in requirements
        if requirement.marker and requirement.marker.evaluate({"extra": "server"})
    }
    assert server_extra >= SERVER_ONLY


@pytest.fixture(scope="module")
def client_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed without extras; its bin folder."""
    venv = tmp_path_factory.mktemp("client-venv")
    # Fresh and isolated (no --system-site-packages): only what the wheel pulls in.
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel)
    return venv / "bin"


def test_client_imports_without_the_server_extra(client_venv: Path) -> None:
    _run(
        client_venv / "python",
        "-c",
        "import switchboard.client, switchboard.v1.tasks_pb2, switchboard.v1.tasks_pb2_grpc",
    )
    for module in ("sqlalchemy", "agents", "pydantic", "alembic"):
        done = subprocess.run(
            [client_venv / "python", "-c", f"import {module}"], capture_output=True, check=False
        )
        assert done.returncode != 0, f"{module} is installed without the server extra"


def test_swb_help_without_the_server_extra(client_venv: Path) -> None:
    usage = _run(client_venv / "swb", "--help")
    assert usage.startswith("usage: swb")
    assert {"run", "submit", "watch", "get", "ls", "cancel", "agents"} <= set(usage.split())


async def test_swb_runs_a_task_without_the_server_extra(
    client_venv: Path, running_server: Any
) -> None:
    # The server runs in this test's event loop: the client must run as an asyncio
    # subprocess, or the loop (and so the server) would stall while waiting for it.
    done = await run_process(
        client_venv / "swb", "--address", running_server.address, "--json", "run", "hello"
    )
    task = json.loads(done.check().stdout)
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert task["spec"]["input"] == "hello"
