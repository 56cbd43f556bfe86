"""The servers under test, each in its own process on loopback, and their CPU clocks."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.echo_server import METHOD as ECHO_METHOD

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

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the process used so far (None where /proc is missing)."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        # The fields after the command name, which may itself hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

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


async def start_switchboard(workdir: Path) -> ServerProcess:
    """`switchboard serve` on its embedded default: a new SQLite file in ``workdir``."""
    argv = [
        _switchboard_executable(),
        "serve",
        "--address",
        f"127.0.0.1:{free_port()}",
        "--database-url",
        f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
    ]
    # One client floods it on purpose: per-caller rate limits would measure themselves.
    # Its metrics listener takes a free port, so the bench never clashes with a server
    # already running on this machine.
    env = {
        "SWITCHBOARD_RATE_LIMIT__ENABLED": "false",
        "SWITCHBOARD_METRICS_ADDRESS": "127.0.0.1:0",
    }
    server = await _spawn("switchboard", argv, workdir, env)
    await _wait_ready(server, _task_service_serving)
    return server


async def start_echo_server(workdir: Path) -> ServerProcess:
    """The bare grpc.aio echo server (bench/echo_server.py)."""
    argv = [sys.executable, "-m", "bench.echo_server", "--address", f"127.0.0.1:{free_port()}"]
    server = await _spawn("echo-server", argv, workdir)
    await _wait_ready(server, _echo_answers)
    return server
