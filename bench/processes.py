"""The servers under test, each in its own process on loopback, and their CPU clocks."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.cpu import process_cpu_seconds
from bench.echo_server import METHOD as ECHO_METHOD
from tests.scrape import metric_value

REPO_ROOT = Path(__file__).resolve().parents[1]
_START_LIMIT = 60.0  # seconds; the first start imports the Agents SDK and migrates
_STOP_LIMIT = 30.0


class ServerFailed(RuntimeError):
    """A server process did not start, or died."""


@dataclass
class ServerProcess:
    """A running server: where it listens, its process and its log file."""

    name: str
    address: str
    process: asyncio.subprocess.Process
    log: Path
    metrics_address: str | None = None  # HOST:PORT of its /metrics, when it has one

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the process used so far (None where /proc is missing)."""
        return process_cpu_seconds(self.process.pid)

    async def metric(self, name: str) -> float | None:
        """The value of the unlabelled series ``name`` on its /metrics (None when unknown)."""
        if self.metrics_address is None:
            return None
        # None when unreachable too: a figure the report shows as unknown, not a failed run.
        return await metric_value(f"http://{self.metrics_address}/metrics", name)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's output, for error messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), _STOP_LIMIT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _switchboard_executable() -> str:
    beside_python = Path(sys.executable).with_name("switchboard")
    found = str(beside_python) if beside_python.exists() else shutil.which("switchboard")
    if found is None:
        raise ServerFailed("no `switchboard` command: pip install -e '.[server]' first")
    return found


async def _spawn(
    name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None
) -> ServerProcess:
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    return ServerProcess(name, argv[argv.index("--address") + 1], process, log)


async def _wait_ready(
    server: ServerProcess, probe: Callable[[grpc.aio.Channel], Awaitable[bool]]
) -> None:
    deadline = asyncio.get_running_loop().time() + _START_LIMIT
    async with grpc.aio.insecure_channel(server.address) as channel:
        while True:
            if server.process.returncode is not None:
                raise ServerFailed(
                    f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            try:
                if await probe(channel):
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                await server.stop()
                raise ServerFailed(
                    f"{server.name} not ready after {_START_LIMIT} s:\n{server.log_tail()}"
                )
            await asyncio.sleep(0.1)  # polling a process that reports readiness nowhere else


async def _task_service_serving(channel: grpc.aio.Channel) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="switchboard.v1.TaskService")
    response = await stub.Check(request, timeout=1)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def _echo_answers(channel: grpc.aio.Channel) -> bool:
    echo = channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)
    return bool(await echo(b"ping", timeout=1) == b"ping")


async def start_switchboard(
    workdir: Path,
    *,
    name: str = "switchboard",
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """`switchboard serve` on a free loopback port, ready to take tasks.

    By default on its embedded default: a new SQLite file in ``workdir``. ``database_url``
    names another store (which must be migrated already when ``env`` turns auto-migration
    off); ``env`` adds settings. The metrics listener takes a free port of its own.
    """
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    argv = [
        _switchboard_executable(),
        "serve",
        "--address",
        f"127.0.0.1:{free_port()}",
        "--database-url",
        url,
    ]
    # One client floods it on purpose: per-caller rate limits would measure themselves.
    # The metrics port is chosen here (not by the kernel) so that the bench can read it,
    # and never clashes with a server already running on this machine.
    metrics_address = f"127.0.0.1:{free_port()}"
    settings = {
        "SWITCHBOARD_RATE_LIMIT__ENABLED": "false",
        "SWITCHBOARD_METRICS_ADDRESS": metrics_address,
        **(env or {}),
    }
    server = await _spawn(name, argv, workdir, settings)
    server.metrics_address = metrics_address
    await _wait_ready(server, _task_service_serving)
    return server


async def migrate(database_url: str) -> None:
    """`switchboard migrate`: bring the store at ``database_url`` to the current schema."""
    process = await asyncio.create_subprocess_exec(
        _switchboard_executable(),
        "migrate",
        "--database-url",
        database_url,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), _START_LIMIT)
    if process.returncode != 0:
        raise ServerFailed(
            f"switchboard migrate exited with {process.returncode}:\n"
            + output.decode(errors="replace")
        )


async def start_echo_server(workdir: Path) -> ServerProcess:
    """The bare grpc.aio echo server (bench/echo_server.py)."""
    argv = [sys.executable, "-m", "bench.echo_server", "--address", f"127.0.0.1:{free_port()}"]
    server = await _spawn("echo-server", argv, workdir)
    await _wait_ready(server, _echo_answers)
    return server
