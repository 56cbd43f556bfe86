"""The Prometheus series of one server: gRPC calls, tasks, agents, cache and rate limits.

Each ``Metrics`` owns its registry (never prometheus-client's global one), so tests
build independent instances. Three kinds of series live here:

- gRPC series, named as the go-grpc-middleware Prometheus provider names them;
  the metrics interceptor updates them;
- task durations and batch outcomes, pushed by the orchestrator as tasks end (the
  orchestrator calls ``task_ended`` / ``batch_task_ended``: see ``TaskObserver``);
- everything the orchestrator already counts or knows live (tasks by status, tokens,
  queue, agents' health and breakers, cache hits) is read at scrape time from the
  object given to ``track``, so no count is kept twice and gauges are never stale.

Scrape-time reads touch orchestrator state: collect on the event loop's thread (the
``MetricsServer`` does).

Label values are bounded: statuses, configured agent ids, registered gRPC methods,
rate-limit method classes. Never task or user ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from switchboard.server.domain import Task, TaskState

# Types only: the orchestrator imports telemetry (tracing), so no import back at run time.
if TYPE_CHECKING:
    from switchboard.server.cache import CacheStats
    from switchboard.server.orchestrator import AgentStatus, QueueStats

# Every counter would otherwise get a twin `*_created` series; the gRPC and domain
# series are read as rates, where the creation time adds nothing but cardinality.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""``grpc_server_handling_seconds``: from a cache read (ms) to an Execute (minutes)."""

TASK_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
"""``agent_task_duration_seconds``: LLM tasks, seconds to minutes (the original 1..600 included)."""

TERMINAL_STATUSES = tuple(state.value for state in TaskState if state.terminal)
"""The ``status`` label values of the task series."""

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
"""``circuit_breaker_state`` values by breaker state."""

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class LiveState(Protocol):
    """What the scrape-time series read (the orchestrator is one)."""

    def agents(self) -> Sequence[AgentStatus]:
        """Every configured agent's status and counters."""
        ...

    @property
    def cache_stats(self) -> CacheStats:
        """The result cache's counters."""
        ...

    @property
    def queue_stats(self) -> QueueStats:
        """The durable queue's and the event writer's counters."""
        ...


class Metrics:
    """One registry with every series of the server (see the module doc)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        registry = self.registry
        self.grpc_started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            _GRPC_LABELS,
            registry=registry,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, regardless of success or failure.",
            (*_GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.grpc_msg_received = Counter(
            "grpc_server_msg_received_total",
            "RPC request messages received on the server.",
            _GRPC_LABELS,
            registry=registry,
        )
        self.grpc_msg_sent = Counter(
            "grpc_server_msg_sent_total",
            "RPC response messages sent by the server.",
            _GRPC_LABELS,
            registry=registry,
        )
        self.grpc_handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, in seconds.",
            _GRPC_LABELS,
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self._task_duration = Histogram(
            "agent_task_duration_seconds",
            "Time from a task's start (RUNNING) to its terminal state, in seconds.",
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self._batch_tasks = Counter(
            "agent_batch_tasks_total",
            "Tasks of BatchExecute calls by terminal status.",
            ("status",),
            registry=registry,
        )
        self._rate_limited = Counter(
            "rate_limited_total",
            "Calls refused by the rate limiter, by method class.",
            ("method_class",),
            registry=registry,
        )
        for status in TERMINAL_STATUSES:
            self._batch_tasks.labels(status)

    def track(self, state: LiveState) -> None:
        """Read the task, agent and cache series from ``state`` at every scrape (once)."""
        self.registry.register(_LiveCollector(state))

    def track_limiter(self, limiter: LimiterState) -> None:
        """Read the rate limiter's fallback state at every scrape (once)."""
        self.registry.register(
            _DegradedCollector(
                "rate_limiter_degraded",
                "1 while the shared rate-limit store (Redis) fails and limits are per process.",
                "rate_limiter_fallbacks",
                "Calls rate-limited in this process because the shared store failed.",
                lambda: (limiter.degraded, limiter.fallbacks),
            )
        )

    def track_bus(self, bus: BusState) -> None:
        """Read the shared event bus's state at every scrape (once)."""
        self.registry.register(
            _DegradedCollector(
                "event_bus_degraded",
                "1 while the shared event bus (Redis) fails: watchers fall back to the store.",
                "event_bus_publish_errors",
                "Event publications to the shared bus that failed.",
                lambda: (bus.degraded, bus.publish_errors),
            )
        )

    def task_ended(self, task: Task) -> None:
        """A task reached a terminal state: observe how long it ran (if it ever ran)."""
        if task.start_time is not None and task.end_time is not None:
            self._task_duration.observe((task.end_time - task.start_time).total_seconds())

    def batch_task_ended(self, task: Task) -> None:
        """A BatchExecute call delivered one of its tasks, ended in ``task.state``."""
        self._batch_tasks.labels(task.state.value).inc()

    def rate_limited(self, method_class: str) -> None:
        """The rate limiter refused a call of ``method_class`` (a configured class name)."""
        self._rate_limited.labels(method_class).inc()


_Reading = Callable[[], tuple[bool, int]]


class LimiterState(Protocol):
    """What the rate limiter's series read (every Limiter is one)."""

    @property
    def degraded(self) -> bool:
        """True while its shared store (Redis) fails and limits are in-process."""
        ...

    @property
    def fallbacks(self) -> int:
        """Calls limited in-process because the shared store failed."""
        ...


class BusState(Protocol):
    """What the event bus's series read (the Redis bus is one)."""

    @property
    def degraded(self) -> bool:
        """True while the shared bus (Redis) fails and watchers poll the store."""
        ...

    @property
    def publish_errors(self) -> int:
        """Publications that failed."""
        ...


class _DegradedCollector:
    """A shared dependency's state: a 0/1 'degraded' gauge and a failure counter."""

    def __init__(
        self, name: str, help_text: str, counter: str, counter_help: str, read: _Reading
    ) -> None:
        self._names = (name, help_text, counter, counter_help)
        self._read = read

    def describe(self) -> Iterable[Metric]:
        """The families ``collect`` yields."""
        return self._families(degraded=False, failures=0)

    def collect(self) -> Iterable[Metric]:
        """Read the dependency now."""
        return self._families(*self._read())

    def _families(self, degraded: bool, failures: int) -> list[Metric]:
        name, help_text, counter, counter_help = self._names
        return [
            GaugeMetricFamily(name, help_text, value=1 if degraded else 0),
            CounterMetricFamily(counter, counter_help, value=failures),
        ]


class _LiveCollector:
    """The series read from the orchestrator when Prometheus scrapes."""

    def __init__(self, state: LiveState) -> None:
        self._state = state

    def describe(self) -> Iterable[Metric]:
        """The families ``collect`` yields, without reading state (for name clashes)."""
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        """Every live series, read now."""
        families = _Families()
        agents = self._state.agents()
        for status in TERMINAL_STATUSES:
            ended = sum(agent.outcomes.get(TaskState(status), 0) for agent in agents)
            families.tasks.add_metric([status], ended)
        families.in_progress.add_metric([], sum(agent.in_flight for agent in agents))
        families.queue.add_metric([], sum(agent.queued for agent in agents))
        for agent in agents:
            families.health.add_metric([agent.name], 1 if agent.healthy else 0)
            families.breaker_state.add_metric([agent.name], CIRCUIT_STATES[agent.circuit_state])
            families.breaker_opens.add_metric([agent.name], agent.circuit_opened)
            families.tokens.add_metric([agent.name, "input"], agent.usage.input_tokens)
            families.tokens.add_metric([agent.name, "output"], agent.usage.output_tokens)
        stats = self._state.cache_stats
        families.cache_hits.add_metric([], stats.hits)
        families.cache_misses.add_metric([], stats.misses)
        families.cache_errors.add_metric([], stats.errors)
        queue = self._state.queue_stats
        families.store_write_errors.add_metric([], queue.store_write_errors)
        families.leases_lost.add_metric([], queue.leases_lost)
        families.reclaims.add_metric([], queue.reclaims)
        return families.all()


class _Families:
    """Empty families of the live series, filled by one collection."""

    def __init__(self) -> None:
        self.tasks = CounterMetricFamily(
            "agent_tasks", "Tasks that reached a terminal state, by status.", labels=["status"]
        )
        self.in_progress = GaugeMetricFamily(
            "agent_tasks_in_progress", "Tasks running on an agent now."
        )
        self.queue = GaugeMetricFamily(
            "agent_queue_length",
            "Tasks queued, waiting for an agent, across every replica on the database "
            "(each replica reports the same global count: aggregate with max, not sum).",
        )
        self.health = GaugeMetricFamily(
            "agent_health_status",
            "1 when the agent takes tasks, 0 when its circuit breaker is open.",
            labels=["agent_id"],
        )
        self.breaker_state = GaugeMetricFamily(
            "circuit_breaker_state",
            "The agent's circuit breaker: 0 closed, 1 half-open, 2 open.",
            labels=["agent_id"],
        )
        self.breaker_opens = CounterMetricFamily(
            "circuit_breaker_open", "Times the agent's circuit breaker opened.", labels=["agent_id"]
        )
        self.tokens = CounterMetricFamily(
            "llm_tokens",
            "Model tokens used by finished tasks, by agent and kind (input, output).",
            labels=["agent_id", "kind"],
        )
        self.cache_hits = CounterMetricFamily(
            "cache_hits", "Result-cache lookups that found a result."
        )
        self.cache_misses = CounterMetricFamily(
            "cache_misses", "Result-cache lookups that found nothing (or failed)."
        )
        self.cache_errors = CounterMetricFamily(
            "cache_errors", "Result-cache reads and writes that failed (backend down, garbage)."
        )
        self.store_write_errors = CounterMetricFamily(
            "store_write_errors",
            "Commits of task events the database refused (each is retried until it lands).",
        )
        self.leases_lost = CounterMetricFamily(
            "task_leases_lost",
            "Tasks this replica stopped running because another one claimed them "
            "(this replica had stopped renewing their leases in time).",
        )
        self.reclaims = CounterMetricFamily(
            "task_reclaims",
            "Tasks this replica took over from a replica that stopped renewing their leases.",
        )

    def all(self) -> list[Metric]:
        """Every family, in exposition order."""
        return [
            self.tasks,
            self.in_progress,
            self.queue,
            self.health,
            self.breaker_state,
            self.breaker_opens,
            self.tokens,
            self.cache_hits,
            self.cache_misses,
            self.cache_errors,
            self.store_write_errors,
            self.leases_lost,
            self.reclaims,
        ]
