"""Runs one task on its agent: attempts, retries, timeout, cancellation, outcome."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import tenacity

from switchboard.server.agents import AgentError, AgentOutcome, AgentRun, AgentRuntime
from switchboard.server.cache import CachedResult, ResultCache, cache_key, replayable
from switchboard.server.config import AgentConfig
from switchboard.server.domain import (
    AgentChanged,
    EventPayload,
    LogRecord,
    OutputDelta,
    TaskError,
    TaskState,
    ToolCalled,
)
from switchboard.server.orchestrator.breaker import CircuitBreaker, Outcome
from switchboard.server.orchestrator.status import AgentCounters
from switchboard.server.orchestrator.tracked import TrackedTask

_log = logging.getLogger(__name__)

# What a cancellation that nobody asked for (server shutdown) does to a task: it is
# queued again and runs after the restart.
SHUTDOWN_REASON = "interrupted by server shutdown; queued again"


@dataclass(frozen=True, slots=True)
class Worker:
    """What runs an agent's tasks: configuration, runtime, circuit breaker, tallies."""

    config: AgentConfig
    runtime: AgentRuntime
    breaker: CircuitBreaker
    counters: AgentCounters = field(default_factory=AgentCounters)


class CircuitOpen(AgentError):
    """The agent's breaker refused the call: its provider has been failing."""

    def __init__(self, worker: Worker) -> None:
        seconds = worker.breaker.retry_after.total_seconds()
        super().__init__(
            f"agent {worker.config.name!r} is unavailable: its last "
            f"{worker.config.breaker.failure_threshold} tasks failed on its provider; "
            f"retry in {seconds:.0f} s",
            reason="CIRCUIT_OPEN",
        )


class TaskRunner:
    """Runs tracked tasks; reports each ended run through ``on_end``.

    Results are reused through ``cache``: a task asking what a recent one asked is
    answered from it, replaying its events, without calling the model.
    """

    def __init__(
        self, on_end: Callable[[TrackedTask, TaskState], None], cache: ResultCache
    ) -> None:
        self._on_end = on_end
        self._cache = cache

    async def run(self, tracked: TrackedTask, worker: Worker) -> None:
        """Run ``tracked`` to a terminal state (or back to QUEUED on shutdown)."""
        loop = asyncio.get_running_loop()
        spec_timeout = tracked.task.spec.timeout or worker.config.timeout
        deadline = loop.time() + spec_timeout.total_seconds()
        if tracked.deadline is not None:
            deadline = min(deadline, tracked.deadline)
        state = TaskState.FAILED
        tracked.started = True
        try:
            if tracked.cancel_reason or tracked.lease.lost:
                raise asyncio.CancelledError
            state = await self._run(tracked, worker, deadline)
        except asyncio.CancelledError:
            state = await self._interrupted(tracked)
        finally:
            self._on_end(tracked, state)

    async def _run(self, tracked: TrackedTask, worker: Worker, deadline: float) -> TaskState:
        # Not awaited: the journal writes events in order, and only the end must be
        # stored before anyone is told about it.
        tracked.transition(TaskState.RUNNING, attempts=tracked.task.attempts + 1)
        tracked.record(AgentChanged(worker.config.name), agent=worker.config.name)
        key = _cache_key(tracked, worker)
        try:
            async with asyncio.timeout_at(deadline):
                if key is not None and (hit := await self._cache.get(key)) is not None:
                    return await self._replay(tracked, hit)
                recorder = _Recorder(tracked)
                outcome = await self._through_breaker(recorder, worker, deadline)
        except TimeoutError:
            error = TaskError("DEADLINE_EXCEEDED", "the task ran out of time", "TASK_TIMED_OUT")
            await tracked.transition(TaskState.TIMED_OUT, error.message, error)
            return TaskState.TIMED_OUT
        except AgentError as exc:
            unavailable = exc.retryable or isinstance(exc, CircuitOpen)
            code = "UNAVAILABLE" if unavailable else "FAILED_PRECONDITION"
            error = TaskError(code, exc.message, exc.reason)
            await tracked.transition(TaskState.FAILED, exc.message, error)
            return TaskState.FAILED
        except Exception as exc:
            _log.exception("agent %s crashed on task %s", worker.config.name, tracked.task.id)
            message = f"the agent failed unexpectedly ({type(exc).__name__})"
            error = TaskError("INTERNAL", message, "AGENT_CRASHED")
            await tracked.transition(TaskState.FAILED, message, error)
            return TaskState.FAILED
        await tracked.transition(
            TaskState.SUCCEEDED, output_text=outcome.output_text, agent=outcome.agent
        )
        # A run that called tools may have depended on the moment (the time, a fetched
        # page) or changed something: its answer is not reused.
        if key is not None and not any(isinstance(p, ToolCalled) for p in recorder.payloads):
            result = CachedResult(outcome.output_text, outcome.agent, tuple(recorder.payloads))
            await self._cache.put(key, result, worker.config.cache_ttl)
        return TaskState.SUCCEEDED

    @staticmethod
    async def _replay(tracked: TrackedTask, hit: CachedResult) -> TaskState:
        tracked.record(LogRecord("info", "served from the result cache; the model was not called"))
        for payload in hit.payloads:
            tracked.record(
                replace(payload, attempt=tracked.task.attempts)
                if isinstance(payload, OutputDelta)
                else payload
            )
        await tracked.transition(
            TaskState.SUCCEEDED, output_text=hit.output_text, agent=hit.agent, cached=True
        )
        return TaskState.SUCCEEDED

    async def _attempts(self, recorder: _Recorder, worker: Worker, deadline: float) -> AgentOutcome:
        """Attempts until one succeeds, bounded by the retry policy and the deadline."""
        policy = worker.config.retry

        tracked = recorder.tracked

        def log_retry(state: tenacity.RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            tracked.record(
                LogRecord(
                    "warning",
                    f"attempt {state.attempt_number} failed ({failure}); "
                    f"retrying in {state.upcoming_sleep:.2f} s",
                )
            )

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(policy.attempts), _StopBefore(deadline)
            ),
            wait=tenacity.wait_exponential_jitter(
                multiplier=policy.initial_backoff.total_seconds(),
                max=policy.max_backoff.total_seconds(),
                jitter=policy.initial_backoff.total_seconds(),
            ),
            retry=tenacity.retry_if_exception(_worth_retrying),
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number > 1:
                    tracked.record(
                        LogRecord("info", f"attempt {number} started"),
                        attempts=tracked.task.attempts + 1,
                    )
                recorder.payloads.clear()  # only the attempt that succeeds is reused
                return await self._call(recorder, worker, number)
        raise AssertionError("unreachable: tenacity returns or re-raises")

    async def _through_breaker(
        self, recorder: _Recorder, worker: Worker, deadline: float
    ) -> AgentOutcome:
        """Every attempt of the task, counted by the agent's breaker as one call."""
        if not worker.breaker.allow():
            raise CircuitOpen(worker)
        verdict = Outcome.FAILURE
        try:
            result = await self._attempts(recorder, worker, deadline)
            verdict = Outcome.SUCCESS
            return result
        except AgentError as exc:
            # A request the provider refused as invalid says nothing about its health.
            verdict = Outcome.FAILURE if exc.retryable else Outcome.NEUTRAL
            raise
        except asyncio.CancelledError:
            # Cancelled by a client, a shutdown or the deadline: only the deadline (the
            # provider was too slow) is the provider's fault.
            timed_out = asyncio.get_running_loop().time() >= deadline
            verdict = Outcome.FAILURE if timed_out else Outcome.NEUTRAL
            raise
        finally:
            worker.breaker.record(verdict)

    @staticmethod
    async def _call(recorder: _Recorder, worker: Worker, attempt: int) -> AgentOutcome:
        """One attempt."""
        spec = recorder.tracked.task.spec
        run = AgentRun(
            task_id=recorder.tracked.task.id,
            agent=spec.agent,
            input=spec.input,
            instructions=spec.instructions,
            tools=spec.tools,
            attempt=attempt,
        )
        return await worker.runtime.run(run, recorder.emit)

    async def _interrupted(self, tracked: TrackedTask) -> TaskState:
        if tracked.lease.lost:
            # Another replica has the task now: whatever we wrote next would be refused.
            return tracked.task.state
        if tracked.task.state.terminal:
            # The cancellation came after the run ended: the end stands.
            end, state = tracked.last_write, tracked.task.state
        elif tracked.cancel_reason:
            error = TaskError("CANCELLED", tracked.cancel_reason, "TASK_CANCELLED")
            end = tracked.transition(TaskState.CANCELLED, tracked.cancel_reason, error)
            state = TaskState.CANCELLED
        else:
            # Its lease goes with the write: another replica may run it at once.
            end = tracked.transition(TaskState.QUEUED, SHUTDOWN_REASON, release=True)
            state = TaskState.QUEUED
        # Shielded: the write must land even though this coroutine is being cancelled.
        # It is cancelled itself only when a stopping server gives up on a store that
        # is down; the stored state is then recovered at the next start.
        if end is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(end)
        return state


class _Recorder:
    """Passes an attempt's events on to the task, keeping those a cache hit replays."""

    def __init__(self, tracked: TrackedTask) -> None:
        self.tracked = tracked
        self.payloads: list[EventPayload] = []

    async def emit(self, payload: EventPayload) -> None:
        if isinstance(payload, OutputDelta):
            payload = replace(payload, attempt=self.tracked.task.attempts)
        if replayable(payload):
            self.payloads.append(payload)
        await self.tracked.emit(payload)


def _cache_key(tracked: TrackedTask, worker: Worker) -> str | None:
    """The task's result-cache key, or None when its result must not be reused."""
    spec, config = tracked.task.spec, worker.config
    if spec.no_cache or config.cache_ttl <= timedelta(0):
        return None
    # The agent's configuration is part of the key: changing it must not serve old answers.
    fingerprint = hashlib.sha256(
        config.model_dump_json(
            include={"model", "base_url", "instructions", "tools", "handoffs"}
        ).encode()
    ).hexdigest()[:16]
    # Per owner: one tenant must not learn what another asked (a hit says so).
    return cache_key(
        agent=f"{config.name}@{fingerprint}/{tracked.task.owner}",
        model=config.model,
        instructions="\n\n".join(filter(None, (config.instructions, spec.instructions))),
        input=spec.input,
        tools=spec.tools,
    )


class _StopBefore(tenacity.stop.stop_base):
    """Stop retrying when waiting for the next attempt would reach the deadline."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        now = asyncio.get_running_loop().time()
        return now + retry_state.upcoming_sleep >= self._deadline


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, AgentError) and exc.retryable
