"""The Prometheus tools the observability tests run, and the files they check.

promtool, prometheus and amtool come from Debian packages (``prometheus``,
``prometheus-alertmanager``). When one is missing, ``observability/install-tools.sh``
installs them as root, and otherwise fails saying how: these checks never skip.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO_ROOT / "observability"
ALERT_RULES = OBSERVABILITY / "alert_rules.yml"
RULE_TESTS = sorted((OBSERVABILITY / "tests").glob("*.yml"))
PROMETHEUS_YML = OBSERVABILITY / "prometheus.yml"
PROMETHEUS_KUBERNETES_YML = OBSERVABILITY / "prometheus-kubernetes.yml"
ALERTMANAGER_YML = OBSERVABILITY / "alertmanager.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "switchboard.json"
COLLECTOR = OBSERVABILITY / "otel-collector.yaml"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"
INSTALL = OBSERVABILITY / "install-tools.sh"

TOOLS = ("promtool", "prometheus", "amtool")


def missing_tools() -> list[str]:
    """The tools not on PATH."""
    return [name for name in TOOLS if shutil.which(name) is None]


@functools.cache
def _install() -> str:
    """Run install-tools.sh once; what it printed when it failed ("" on success)."""
    done = subprocess.run(
        ["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False
    )
    return "" if done.returncode == 0 else (done.stderr or done.stdout).strip()


def tool(name: str) -> str:
    """The path of ``name``; installs the tools first when one is missing (or fails)."""
    path = shutil.which(name)
    if path is None:
        problem = _install()
        path = shutil.which(name)
        if path is None:
            pytest.fail(
                f"{name} is not installed and {INSTALL.relative_to(REPO_ROOT)} could not "
                f"install it:\n{problem}",
                pytrace=False,
            )
    return path


def run(
    name: str,
    *args: str | Path,
    cwd: Path | None = None,
    merge_stderr: bool = True,
    stdin: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion (bounded) with ``stdin`` as its input; its exit code and output.

    stderr goes into stdout unless ``merge_stderr`` is False (then it is kept apart).
    """
    return subprocess.run(
        [tool(name), *map(str, args)],
        cwd=cwd,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


def check(
    name: str,
    *args: str | Path,
    cwd: Path | None = None,
    merge_stderr: bool = True,
    stdin: str = "",
) -> str:
    """Run a tool that must succeed; its output. A failure shows everything it printed."""
    done = run(name, *args, cwd=cwd, merge_stderr=merge_stderr, stdin=stdin)
    assert done.returncode == 0, (
        f"{name} {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr or ''}"
    )
    return done.stdout
