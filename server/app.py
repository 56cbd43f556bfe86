"""The server process: store, orchestrator and the gRPC server in front of them.

Besides the two services, the server answers the standard health protocol
(liveness on ``""``, readiness on each service name) and server reflection, so
``grpcurl`` works without proto files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import Tracer

from switchboard.server.agents import build_runtimes
from switchboard.server.api import AgentServicer, AuthServicer, TaskServicer
from switchboard.server.assembly import (
    ConfigurationError,
    Parts,
    RuntimeFactory,
    assemble,
    check_settings,
)
from switchboard.server.auth import server_credentials
from switchboard.server.config import Settings
from switchboard.server.listen import bind_problem
from switchboard.server.orchestrator import Orchestrator
from switchboard.server.telemetry import MetricsServer
from switchboard.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

_log = logging.getLogger(__name__)

SERVICE_NAMES = (
    tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
    agents_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
)
"""The services whose readiness the health protocol reports."""

_REFLECTED = (
    *SERVICE_NAMES,
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
)

__all__ = ["SERVICE_NAMES", "App", "BindError", "ConfigurationError"]

# Cheap enough (one store round trip) to run this often without a thought.
_READINESS_INTERVAL = 5.0
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class BindError(RuntimeError):
    """The server could not listen on its address (taken, or not an address of this host)."""


class App:
    """One Switchboard server. It starts once; ``stop`` ends it for good."""

    def __init__(
        self,
        settings: Settings,
        runtimes: RuntimeFactory = build_runtimes,
        tracer: Tracer | None = None,
        *,
        reuse_port: bool = False,
        on_serving: Callable[[], None] | None = None,
    ) -> None:
        """``runtimes`` builds the agents' runtimes; ``tracer`` traces calls (None: off).

        ``reuse_port`` shares the port with other servers that set it (the workers of
        ``serve --workers N``); otherwise a taken port is an error. ``serve`` calls
        ``on_serving`` once it serves and handles signals.
        """
        self.settings = settings
        self._reuse_port = reuse_port
        self._on_serving = on_serving
        self._runtimes = runtimes
        self._tracer = tracer
        # The grpc_health stubs do not know the aio module.
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server: grpc.aio.Server | None = None
        self._parts: Parts | None = None
        self._metrics_server: MetricsServer | None = None
        self.metrics_port = 0
        """The port of the /metrics listener (0 when it is off or not started)."""
        self._readiness: asyncio.Task[None] | None = None
        self._ready: bool | None = None
        self._port = 0
        self._started = False
        self._stopped = False
        self._stop_requested = asyncio.Event()

    @property
    def port(self) -> int:
        """The port the server listens on (0 until it started)."""
        return self._port

    @property
    def orchestrator(self) -> Orchestrator:
        """The running orchestrator; an error before ``start``."""
        return self.parts.orchestrator

    @property
    def parts(self) -> Parts:
        """What the server is made of; an error before ``start``."""
        if self._parts is None:
            raise RuntimeError("the app has not started")
        return self._parts

    async def start(self) -> int:
        """Open the store, start the orchestrator, then serve; return the bound port."""
        if self._started:
            raise RuntimeError("an App starts once")
        self._started = True
        # Fail fast on a taken port, with the OS's reason, before opening the store
        # and claiming tasks this server could not serve.
        problem = bind_problem(self.settings.address, reuse_port=self._reuse_port)
        if problem is not None:
            raise BindError(f"cannot listen on {self.settings.address}: {problem}")
        try:
            await self._start_parts()
        except BaseException:
            await self.stop(0)
            raise
        return self._port

    async def _start_parts(self) -> None:
        settings = self.settings
        runtimes = check_settings(settings, self._runtimes)
        try:
            credentials = server_credentials(settings.tls)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self._parts = parts = await assemble(settings, runtimes, self._tracer)
        await parts.orchestrator.start()
        # The server comes last and starts right after binding: a gRPC server that
        # bound a port but never started keeps the port until the process ends.
        server = grpc.aio.server(
            interceptors=parts.interceptors(settings, self._tracer),
            options=settings.server.grpc_options(reuse_port=self._reuse_port),
        )
        self._port = _bind(server, settings.address, credentials, reuse_port=self._reuse_port)
        tasks_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(parts.orchestrator), server)
        agents_pb2_grpc.add_AgentServiceServicer_to_server(
            AgentServicer(parts.orchestrator), server
        )
        auth_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(parts.users, settings.auth), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(_REFLECTED, server)
        for name in SERVICE_NAMES:
            await self._health.set(name, _NOT_SERVING)
        await server.start()
        self._server = server
        _log.info(
            "listening on %s (port %d, %s)",
            settings.address,
            self._port,
            "TLS" if credentials else "plaintext",
            extra={"address": settings.address, "port": self._port},
        )
        await self._check_readiness()
        self._readiness = asyncio.create_task(self._watch_readiness(), name="readiness")
        if settings.metrics_address:
            self._metrics_server = MetricsServer(parts.metrics, self._is_ready)
            try:
                self.metrics_port = await self._metrics_server.start(settings.metrics_address)
            except (OSError, ValueError) as exc:
                raise BindError(f"cannot listen on {settings.metrics_address}: {exc}") from exc
            _log.info("metrics on %s (port %d)", settings.metrics_address, self.metrics_port)

    async def _is_ready(self) -> bool:
        """Readiness for /readyz: what gRPC health says (false once shutdown began)."""
        return bool(self._ready) and not self._stopped

    async def stop(self, grace: float | None = None) -> None:
        """Shut down gracefully: NOT_SERVING, refuse new calls, drain, stop work, close.

        In-flight calls and running tasks get ``grace`` seconds each (default: the
        configured grace period). Stopping a stopped App does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        if grace is None:
            grace = self.settings.server.grace_period.total_seconds()
        if self._readiness is not None:
            self._readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness
            self._readiness = None
        await self._health.enter_graceful_shutdown()
        _log.info("shutdown: health reports NOT_SERVING")
        drain = self.settings.server.drain_delay.total_seconds()
        if drain > 0 and self._server is not None:
            # Calls still arrive until load balancers see NOT_SERVING: keep serving them.
            _log.info("shutdown: serving %.1f s more while endpoints drop this server", drain)
            await asyncio.sleep(drain)
        # Together: the orchestrator stops taking work at once, so calls cut at the end
        # of the grace period leave their tasks to be requeued, not cancelled.
        stopping = []
        if self._server is not None:
            _log.info("shutdown: refusing new calls; in-flight calls get %.1f s", grace)
            stopping.append(self._server.stop(grace))
        if self._parts is not None:
            _log.info("shutdown: stopping the orchestrator; running tasks get %.1f s", grace)
            stopping.append(self._parts.orchestrator.stop(grace))
        await asyncio.gather(*stopping)
        self._server = None
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        if self._parts is not None:
            _log.info("shutdown: closing the store")
            await self._parts.close()
            self._parts = None
        _log.info("shutdown: done")

    async def serve(self) -> None:
        """Start, run until SIGTERM or SIGINT (or ``request_stop``), then stop gracefully.

        The handlers are in place before the start, so a signal during a slow start
        still stops the server (as PID 1 in a container, a signal without a handler is
        ignored). A second signal exits at once, without draining.
        """
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            await self.start()
            if self._on_serving is not None:
                self._on_serving()
            await self._stop_requested.wait()
        finally:
            await self.stop()
            for signum in signals:
                loop.remove_signal_handler(signum)

    def request_stop(self) -> None:
        """Begin the graceful stop ``serve`` makes on SIGTERM; idempotent."""
        self._stop_requested.set()

    def _on_signal(self, signum: signal.Signals) -> None:
        if self._stop_requested.is_set():
            _log.warning("received %s again: exiting now, without draining", signum.name)
            logging.shutdown()
            os._exit(128 + signum)
        _log.info("received %s: shutting down", signum.name)
        self._stop_requested.set()

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(_READINESS_INTERVAL)
            await self._check_readiness()

    async def _check_readiness(self) -> None:
        try:
            ready = await self.orchestrator.ready()
        except Exception:
            _log.warning("readiness check failed", exc_info=True)
            ready = False
        if ready == self._ready:
            return
        self._ready = ready
        _log.info("readiness: %s", "SERVING" if ready else "NOT_SERVING")
        for name in SERVICE_NAMES:
            await self._health.set(name, _SERVING if ready else _NOT_SERVING)


def _bind(
    server: grpc.aio.Server,
    address: str,
    credentials: grpc.ServerCredentials | None,
    *,
    reuse_port: bool,
) -> int:
    try:
        if credentials is not None:
            return server.add_secure_port(address, credentials)
        return server.add_insecure_port(address)
    except RuntimeError as exc:  # gRPC says only "Failed to bind"
        problem = bind_problem(address, reuse_port=reuse_port) or "gRPC could not bind it"
        raise BindError(f"cannot listen on {address}: {problem}") from exc
