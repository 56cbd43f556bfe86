"""Run real programs from the end-to-end tests.

The ``running_server`` fixture serves in the test's own event loop, so every program
runs as an asyncio subprocess: a blocking ``subprocess.run`` would stall the loop and
with it the server the program is talking to.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Completed:
    """What a finished program printed and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Completed:
        """Fail the test, showing the program's output, unless it exited with 0."""
        if self.returncode != 0:
            pytest.fail(
                f"{' '.join(self.argv)} exited with {self.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}",
                pytrace=False,
            )
        return self


async def run_process(
    *argv: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    limit: float = 90,
) -> Completed:
    """Run a program to its end (killed after ``limit`` s); ``env`` adds to the environment."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        pytest.fail(
            f"{' '.join(map(str, argv))} did not finish in {limit} s\n"
            f"stdout:\n{stdout.decode()}\nstderr:\n{stderr.decode()}",
            pytrace=False,
        )
    assert process.returncode is not None
    return Completed(tuple(map(str, argv)), process.returncode, stdout.decode(), stderr.decode())
