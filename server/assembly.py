"""The parts of a server, built from the settings, and the interceptor chain over them.

``App`` (app.py) owns the lifecycle; this module knows what the parts are and how
they fit: store, orchestrator, metrics, rate limiter, token verifier, user store,
and the five interceptors, outermost first: errors -> tracing -> metrics -> auth ->
rate limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Tracer

from switchboard.server.agents import AgentRuntime
from switchboard.server.auth import TokenVerifier, check_exposure
from switchboard.server.cache import open_cache
from switchboard.server.config import Settings
from switchboard.server.events import EventBus, InProcessBus, RedisBus
from switchboard.server.interceptors import (
    AuthInterceptor,
    ErrorsInterceptor,
    MetricsInterceptor,
    TracingInterceptor,
)
from switchboard.server.interceptors.ratelimit import RateLimitInterceptor
from switchboard.server.orchestrator import Orchestrator
from switchboard.server.ratelimit import Limiter, build_limiter
from switchboard.server.store import TaskStore, UserStore
from switchboard.server.telemetry import Metrics

_log = logging.getLogger(__name__)

RuntimeFactory = Callable[[Settings], Mapping[str, AgentRuntime]]


class ConfigurationError(ValueError):
    """The settings name something that cannot run (e.g. a tool or an unset API key)."""


@dataclass
class Parts:
    """Everything a running server is made of besides the gRPC server itself."""

    bus: EventBus
    store: TaskStore
    users: UserStore
    orchestrator: Orchestrator
    metrics: Metrics
    limiter: Limiter
    verifier: TokenVerifier | None

    def interceptors(self, settings: Settings, tracer: Tracer | None) -> list[Any]:
        """The chain, outermost first."""
        return [
            ErrorsInterceptor(),
            TracingInterceptor(tracer),
            MetricsInterceptor(self.metrics),
            AuthInterceptor(self.verifier, settings.auth),
            RateLimitInterceptor(
                self.limiter, settings.rate_limit, on_limited=self.metrics.rate_limited
            ),
        ]

    async def close(self) -> None:
        """Release what the parts hold (the orchestrator is stopped by the App)."""
        if self.verifier is not None:
            await self.verifier.stop()
        await self.limiter.aclose()
        await self.bus.aclose()
        await self.store.close()


def check_settings(settings: Settings, runtimes: RuntimeFactory) -> Mapping[str, AgentRuntime]:
    """Everything that can be refused before touching the database; the agents' runtimes.

    Raises ConfigurationError naming the setting.
    """
    try:
        for warning in check_exposure(settings):
            _log.warning("%s", warning)
        return runtimes(settings)
    except ValueError as exc:  # each check names the field in its message
        raise ConfigurationError(str(exc)) from exc


async def assemble(
    settings: Settings, runtimes: Mapping[str, AgentRuntime], tracer: Tracer | None
) -> Parts:
    """Open the store and build the parts (the orchestrator is not started yet)."""
    try:
        verifier = TokenVerifier(settings.auth) if settings.auth.mode == "jwt" else None
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    store = await TaskStore.open(settings.database_url, migrate=settings.store.auto_migrate)
    metrics = Metrics()
    bus: EventBus = InProcessBus()
    if settings.redis_url:
        shared = RedisBus.from_url(settings.redis_url, prefix=settings.redis_prefix)
        metrics.track_bus(shared)
        bus = shared
    orchestrator = Orchestrator(
        settings,
        store,
        bus,
        runtimes,
        cache=open_cache(settings),
        observer=metrics,
        tracer=tracer,
    )
    metrics.track(orchestrator)
    limiter = build_limiter(settings)
    metrics.track_limiter(limiter)
    if verifier is not None:
        verifier.start()
    return Parts(
        bus=bus,
        store=store,
        users=UserStore(store.engine),
        orchestrator=orchestrator,
        metrics=metrics,
        limiter=limiter,
        verifier=verifier,
    )
