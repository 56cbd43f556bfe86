"""Runs one task on its agent: attempts, retries, timeout, cancellation, outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from switchboard.server.agents import AgentError, AgentRun, AgentRuntime
from switchboard.server.config import AgentConfig
from switchboard.server.domain import AgentChanged, LogRecord, TaskError, TaskState
from switchboard.server.orchestrator.tracked import TrackedTask

_log = logging.getLogger(__name__)

# What a cancellation that nobody asked for (server shutdown) does to a task: it is
# queued again and runs after the restart.
SHUTDOWN_REASON = "interrupted by server shutdown; queued again"
_BACKOFF_BASE = 0.2
_BACKOFF_CAP = 5.0


class TaskRunner:
    """Runs tracked tasks; reports each ended run through ``on_end``."""

    def __init__(self, on_end: Callable[[TrackedTask, TaskState], None]) -> None:
        self._on_end = on_end

    async def run(self, tracked: TrackedTask, agent: AgentConfig, runtime: AgentRuntime) -> None:
        """Run ``tracked`` to a terminal state (or back to QUEUED on shutdown)."""
        loop = asyncio.get_running_loop()
        timeout = agent.timeout.total_seconds()
        if tracked.task.spec.timeout is not None:
            timeout = tracked.task.spec.timeout.total_seconds()
        deadline = loop.time() + timeout
        if tracked.deadline is not None:
            deadline = min(deadline, tracked.deadline)
        state = TaskState.FAILED
        tracked.started = True
        try:
            if tracked.cancel_reason:
                raise asyncio.CancelledError
            state = await self._attempts(tracked, agent, runtime, deadline)
        except asyncio.CancelledError:
            state = await self._interrupted(tracked)
        finally:
            self._on_end(tracked, state)

    async def _attempts(
        self, tracked: TrackedTask, agent: AgentConfig, runtime: AgentRuntime, deadline: float
    ) -> TaskState:
        loop = asyncio.get_running_loop()
        # Not awaited: the journal writes events in order, and only the end must be
        # stored before anyone is told about it.
        tracked.transition(TaskState.RUNNING, attempts=tracked.task.attempts + 1)
        tracked.record(AgentChanged(agent.name), agent=agent.name)
        attempt = 1
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    outcome = await runtime.run(self._run_of(tracked, attempt), tracked.emit)
            except TimeoutError:
                error = TaskError("DEADLINE_EXCEEDED", "the task ran out of time", "TASK_TIMED_OUT")
                await tracked.transition(TaskState.TIMED_OUT, error.message, error)
                return TaskState.TIMED_OUT
            except AgentError as exc:
                delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)) * random.random()
                if not (
                    exc.retryable
                    and attempt < agent.retry.attempts
                    and loop.time() + delay < deadline
                ):
                    code = "UNAVAILABLE" if exc.retryable else "FAILED_PRECONDITION"
                    error = TaskError(code, exc.message, exc.reason)
                    await tracked.transition(TaskState.FAILED, exc.message, error)
                    return TaskState.FAILED
                tracked.record(
                    LogRecord("warning", f"attempt {attempt} failed ({exc.message}); retrying")
                )
                await asyncio.sleep(delay)
                attempt += 1
                tracked.record(
                    LogRecord("info", f"attempt {attempt} started"),
                    attempts=tracked.task.attempts + 1,
                )
                continue
            except Exception as exc:
                _log.exception("agent %s crashed on task %s", agent.name, tracked.task.id)
                message = f"the agent failed unexpectedly ({type(exc).__name__})"
                error = TaskError("INTERNAL", message, "AGENT_CRASHED")
                await tracked.transition(TaskState.FAILED, message, error)
                return TaskState.FAILED
            await tracked.transition(
                TaskState.SUCCEEDED, output_text=outcome.output_text, agent=outcome.agent
            )
            return TaskState.SUCCEEDED

    async def _interrupted(self, tracked: TrackedTask) -> TaskState:
        if tracked.task.state.terminal:
            # The cancellation came after the run ended: the end stands.
            end, state = tracked.last_write, tracked.task.state
        elif tracked.cancel_reason:
            error = TaskError("CANCELLED", tracked.cancel_reason, "TASK_CANCELLED")
            end = tracked.transition(TaskState.CANCELLED, tracked.cancel_reason, error)
            state = TaskState.CANCELLED
        else:
            end, state = tracked.transition(TaskState.QUEUED, SHUTDOWN_REASON), TaskState.QUEUED
        # Shielded: the write must land even though this coroutine is being cancelled.
        # It is cancelled itself only when a stopping server gives up on a store that
        # is down; the stored state is then recovered at the next start.
        if end is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(end)
        return state

    @staticmethod
    def _run_of(tracked: TrackedTask, attempt: int) -> AgentRun:
        spec = tracked.task.spec
        return AgentRun(
            task_id=tracked.task.id,
            agent=spec.agent,
            input=spec.input,
            instructions=spec.instructions,
            tools=spec.tools,
            attempt=attempt,
        )
