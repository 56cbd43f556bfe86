"""The observability files follow the repository's YAML style (.yamllint.yaml)."""

from __future__ import annotations

import subprocess
import sys

from tests.observability.tools import REPO_ROOT


def test_yamllint_is_clean_on_the_observability_files() -> None:
    # Relative to the root, where .yamllint.yaml's ignore patterns apply.
    done = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", "observability"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
