"""Real ``switchboard serve`` replicas sharing one database, for the multi-replica tests.

Each replica is the venv's ``switchboard`` script in a process group of its own, on free
loopback ports (gRPC and metrics), configured through ``SWITCHBOARD_*`` variables plus a
YAML file of agents shared by all. Readiness is the gRPC health protocol's answer for
``switchboard.v1.TaskService``, polled within a bound. A replica can be killed (SIGKILL,
as a crash), stopped (SIGTERM, graceful) and started again on the same ports; its output
goes to ``<workdir>/<name>.log`` (appended across restarts) and is shown when it fails.

Each replica sends its own API key (``key-<name>``) to the fake model server, so a model
request tells which replica runs the task it belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.ratelimit.spare_redis import free_port
from tests.scrape import metric_value

TASK_SERVICE = "switchboard.v1.TaskService"
"""The service name whose health is the replica's readiness (server/app.py)."""

MODEL_KEY_ENV = "REPLICA_MODEL_KEY"
"""The variable the scripted agent's API key comes from: a different value per replica."""

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Bounds of the waits below; a replica starts in about 2 s on an idle machine.
START_BOUND = 45.0
STOP_BOUND = 30.0
_POLL = 0.05
_LOG_TAIL = 6000


def switchboard_script() -> Path:
    """The ``switchboard`` console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("switchboard")
    if not script.is_file():
        pytest.fail(
            f"no switchboard script next to {sys.executable}: pip install -e '.[server,dev]'",
            pytrace=False,
        )
    return script


def agents_config(model_base_url: str) -> dict[str, Any]:
    """The agents every replica runs: the offline default, echo, and ``scripted``.

    ``scripted`` talks to the fake OpenAI server at ``model_base_url`` (chat completions,
    streamed), one task at a time per replica, never from the cache: a test scripts
    each of its model turns, holds them and sees which replica asked for them.
    """
    return {
        "default_agent": "assistant",
        "agents": [
            {"name": "assistant", "model": "offline"},
            {"name": "echo", "model": "echo"},
            {
                "name": "scripted",
                "model": "compat:scripted-model",
                "base_url": model_base_url,
                "api_key_env": MODEL_KEY_ENV,
                "tools": ["calculator"],
                "max_concurrency": 1,
                "cache_ttl": 0,
                "retry": {"attempts": 3, "initial_backoff": 0.05, "max_backoff": 0.2},
            },
        ],
    }


@dataclass(frozen=True)
class Shared:
    """What every replica of a cluster has in common.

    ``env`` holds settings beyond the defaults below (it wins over them).
    """

    database_url: str
    config_file: Path
    redis_url: str | None = None
    redis_prefix: str = "switchboard:"
    env: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The replicas' environment without their own addresses and key.

        Inherited ``SWITCHBOARD_*`` and ``OTEL_*`` variables are dropped: a developer's
        shell must not change what the replicas run.
        """
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("SWITCHBOARD_", "OTEL_")) or name.startswith("SWITCHBOARD_TEST")
        }
        settings = {
            "SWITCHBOARD_CONFIG": str(self.config_file),
            "SWITCHBOARD_DATABASE_URL": self.database_url,
            "SWITCHBOARD_REDIS_PREFIX": self.redis_prefix,
            # Migrated once by the harness, as a migration job would in production.
            "SWITCHBOARD_STORE__AUTO_MIGRATE": "false",
            "SWITCHBOARD_QUEUE__LEASE_TTL": "2",
            "SWITCHBOARD_QUEUE__POLL_INTERVAL": "0.2",
            "SWITCHBOARD_SERVER__GRACE_PERIOD": "5",
            # Envoy (as tests/integration/envoy.py runs it) checks health every 0.2 s and
            # drops a replica after 2 failures, then merges the change into its load
            # balancers within `update_merge_window` (default 1 s): about 1.4 s, plus a
            # margin for a busy machine. Shorter, calls reach a replica that stopped.
            "SWITCHBOARD_SERVER__DRAIN_DELAY": "3",
            # Every call through Envoy comes from one address: one caller to the limiter.
            "SWITCHBOARD_RATE_LIMIT__ENABLED": "false",
            "SWITCHBOARD_LOG_LEVEL": "info",
        }
        if self.redis_url:
            settings["SWITCHBOARD_REDIS_URL"] = self.redis_url
        return inherited | settings | dict(self.env)


def write_agents_config(path: Path, model_base_url: str) -> Path:
    """Write :func:`agents_config` as YAML to ``path`` and return it."""
    path.write_text(yaml.safe_dump(agents_config(model_base_url), sort_keys=False))
    return path


class Replica:
    """One ``switchboard serve`` process, restartable on the same ports."""

    def __init__(self, name: str, workdir: Path, shared: Shared) -> None:
        self.name = name
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = workdir / f"{name}.log"
        self._shared = shared
        self._process: asyncio.subprocess.Process | None = None

    def __repr__(self) -> str:
        return f"Replica({self.name!r}, {self.address})"

    @property
    def address(self) -> str:
        """``host:port`` of its gRPC server."""
        return f"127.0.0.1:{self.port}"

    @property
    def model_key(self) -> str:
        """The API key it sends to the model server."""
        return f"key-{self.name}"

    @property
    def running(self) -> bool:
        """True while its process lives."""
        return self._process is not None and self._process.returncode is None

    def environment(self) -> dict[str, str]:
        """Its whole environment: the shared settings, its ports and its model key."""
        return self._shared.environment() | {
            "SWITCHBOARD_ADDRESS": self.address,
            "SWITCHBOARD_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
            MODEL_KEY_ENV: self.model_key,
        }

    async def spawn(self) -> None:
        """Start the process (without waiting for readiness)."""
        if self.running:
            raise RuntimeError(f"{self} is running already")
        sink = _append(self.log, f"--- {self.name} starting on {self.address} ---\n")
        try:
            self._process = await asyncio.create_subprocess_exec(
                switchboard_script(),
                "serve",
                env=self.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                # A group of its own: signals to the test runner's group do not reach it,
                # and killing the group takes anything it started with it.
                start_new_session=True,
            )
        finally:
            sink.close()

    async def start(self) -> None:
        """Start the process and wait until it reports SERVING."""
        await self.spawn()
        await self.wait_ready()

    async def wait_ready(self, bound: float = START_BOUND) -> None:
        """Wait (bounded) until its health says SERVING for the task service."""
        try:
            await self.wait_for_status(SERVING, bound)
        except TimeoutError:
            self.fail(f"did not report SERVING within {bound} s")

    async def wait_for_status(self, status: int, bound: float) -> None:
        """Wait (bounded: TimeoutError) until the task service's health is ``status``."""
        async with asyncio.timeout(bound):
            while await self.readiness() != status:
                if not self.running:
                    self.fail("exited")
                await asyncio.sleep(_POLL)

    async def readiness(self) -> int | None:
        """The task service's health status now, or None when the server does not answer."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            request = health_pb2.HealthCheckRequest(service=TASK_SERVICE)
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=1)
            except grpc.aio.AioRpcError:
                return None
            status: int = response.status
            return status

    async def kill(self) -> None:
        """SIGKILL the whole process group (a crash: nothing is flushed) and reap it."""
        process = self._require_process()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()

    async def terminate(self, bound: float = STOP_BOUND) -> int:
        """SIGTERM (a graceful stop) and wait (bounded) for the exit; the exit status."""
        process = self._require_process()
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(bound):
                return await process.wait()
        except TimeoutError:
            await self.kill()
            self.fail(f"did not exit within {bound} s of SIGTERM")

    async def close(self) -> None:
        """End it for good, at once (SIGKILL): its database is thrown away after it."""
        if self.running:
            await self.kill()

    async def metric(self, name: str) -> float | None:
        """The value of the unlabelled sample ``name`` on its /metrics; None when absent."""
        return await metric_value(f"http://127.0.0.1:{self.metrics_port}/metrics", name)

    async def ready_over_http(self) -> int:
        """The HTTP status of its /readyz (200 ready, 503 not)."""
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"

        def probe() -> int:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        return await asyncio.to_thread(probe)

    def log_tail(self) -> str:
        """The end of its output (all runs)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no output)"
        return text[-_LOG_TAIL:]

    def fail(self, problem: str) -> NoReturn:
        """Fail the test with ``problem`` and the end of the replica's output."""
        pytest.fail(f"replica {self.name} ({self.address}) {problem}\n{self.log_tail()}")

    def _require_process(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError(f"{self} was never started")
        return self._process


def _append(path: Path, line: str) -> IO[bytes]:
    sink = path.open("ab")
    sink.write(line.encode())
    sink.flush()
    return sink


class Cluster:
    """Replicas ``r0``, ``r1``... over one database (and Redis, when configured)."""

    def __init__(self, workdir: Path, shared: Shared, size: int) -> None:
        self.shared = shared
        self.replicas = [Replica(f"r{index}", workdir, shared) for index in range(size)]

    @property
    def addresses(self) -> list[str]:
        """Every replica's gRPC address, in order."""
        return [replica.address for replica in self.replicas]

    def by_key(self, key: str) -> Replica:
        """The replica whose model key is ``key`` (``Bearer`` prefix allowed)."""
        key = key.removeprefix("Bearer ").strip()
        for replica in self.replicas:
            if replica.model_key == key:
                return replica
        raise LookupError(f"no replica sends the model key {key!r}")

    def others(self, replica: Replica) -> list[Replica]:
        """Every replica but ``replica``."""
        return [other for other in self.replicas if other is not replica]

    async def start(self) -> None:
        """Start every replica at once and wait until each is SERVING."""
        await asyncio.gather(*(replica.spawn() for replica in self.replicas))
        await asyncio.gather(*(replica.wait_ready() for replica in self.replicas))

    async def ensure_running(self) -> None:
        """Start again any replica that is not running (a test killed or stopped it)."""
        stopped = [replica for replica in self.replicas if not replica.running]
        await asyncio.gather(*(replica.start() for replica in stopped))

    async def close(self) -> None:
        """Stop every replica."""
        await asyncio.gather(*(replica.close() for replica in self.replicas))

    async def wait_all(self, status: int, bound: float) -> None:
        """Wait (bounded: TimeoutError) until every replica's readiness is ``status``."""
        await asyncio.gather(*(r.wait_for_status(status, bound) for r in self.replicas))


@contextlib.asynccontextmanager
async def running_cluster(workdir: Path, shared: Shared, size: int) -> AsyncIterator[Cluster]:
    """``size`` started replicas over ``shared``; stopped on exit, whatever happened."""
    cluster = Cluster(workdir, shared, size)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.close()
