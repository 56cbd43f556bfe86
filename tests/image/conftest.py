"""The image tests: a stage of their own (scripts/image-check.sh), not part of a plain run.

They need the image built first and podman as root, and they take a minute, so they
run only when the marker expression names them (``pytest -m image tests/image``, as
scripts/image-check.sh does); any other run deselects them and says so.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Iterator

import pytest

from .podman import REPO_ROOT, Podman, fail

IMAGE_ENV = "SWITCHBOARD_IMAGE"
DEFAULT_IMAGE = "localhost/switchboard:dev"
_HERE = REPO_ROOT / "tests" / "image"
_MEASURED = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (the run uses --strict-markers) and a place for measurements."""
    config.addinivalue_line(
        "markers", "image: builds on the container image; run with scripts/image-check.sh"
    )
    config.stash[_MEASURED] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``image``; deselect them unless ``-m`` names ``image``."""
    ours = [item for item in items if _HERE in item.path.parents]
    for item in ours:
        item.add_marker(pytest.mark.image)
    # `-m "not postgres"` must not start containers: only an expression naming the
    # marker selects them (and then it decides, e.g. `-m image`).
    if not ours or "image" in (config.option.markexpr or ""):
        return
    items[:] = [item for item in items if item not in ours]
    config.hook.pytest_deselected(items=ours)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the run measured (seconds to SERVING, drain time)."""
    measured = terminalreporter.config.stash.get(_MEASURED, {})
    if measured:
        terminalreporter.section("image measurements")
        for name, value in measured.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def measured(pytestconfig: pytest.Config) -> dict[str, str]:
    """Numbers to print at the end of the run (name -> value)."""
    return pytestconfig.stash[_MEASURED]


@pytest.fixture(scope="session")
def podman() -> Podman:
    """The podman command set up by scripts/image-check.sh."""
    return Podman.from_environment()


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The image under test: $SWITCHBOARD_IMAGE, built by scripts/image-check.sh."""
    name = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    if podman.run("image", "exists", name, check=False).returncode != 0:
        fail(f"no image {name}: build it with scripts/image-check.sh (or set {IMAGE_ENV})")
    return name


@pytest.fixture(scope="session")
def project_version() -> str:
    """The version in pyproject.toml, which the image's labels must carry."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        version: str = tomllib.load(file)["project"]["version"]
    return version


@pytest.fixture
def volume(podman: Podman) -> Iterator[str]:
    """A new named volume for the data directory, removed after the test."""
    name = f"switchboard-image-test-{uuid.uuid4().hex[:10]}"
    podman.run("volume", "create", name)
    yield name
    podman.run("volume", "rm", "--force", name, check=False)
