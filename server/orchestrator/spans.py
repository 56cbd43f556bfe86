"""The orchestrator's spans: a task's queue wait and agent run, and the store writes.

A task runs in an asyncio task of its own, long after the call that submitted it
returned, so it keeps where it came from (``Origin``): the trace context current at
submission, and when it was queued. Its spans are children of that context, which is
the submitting call's server span when the call was traced:

- ``queue wait``: from submission to dispatch;
- ``agent run``: the whole run (attempts, retries, cache replay), current while it
  runs, so the Agents SDK's spans (model and tool calls) nest under it.

Store writes are spans too. The journal commits the events of many tasks at once: a
commit is a child of the first write's context and links to the other writers' spans.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode

from switchboard.server.domain import Task, TaskState
from switchboard.server.telemetry.tracing import bind_tracer

if TYPE_CHECKING:
    from switchboard.server.orchestrator.tracked import TrackedTask

# A span's links are kept in memory until it ends; a batch of thousands of writers
# need not be linked one by one.
_MAX_LINKS = 32
_FAILED = (TaskState.FAILED, TaskState.TIMED_OUT)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a task came from: the trace context at submission, and when (ns since epoch)."""

    context: otel_context.Context
    queued_ns: int

    @classmethod
    def here(cls) -> Origin:
        """The current context, now."""
        return cls(otel_context.get_current(), time.time_ns())


async def traced_run(
    tracer: trace.Tracer, tracked: TrackedTask, agent: str, run: Callable[[], Awaitable[None]]
) -> None:
    """Await ``run()``, the dispatched task's run, under its queue wait and agent run spans."""
    origin, task_id = tracked.origin, tracked.task.id
    attributes = {"switchboard.task_id": task_id, "switchboard.agent": agent}
    tracer.start_span(
        "queue wait", origin.context, attributes=attributes, start_time=origin.queued_ns
    ).end()
    span = tracer.start_span("agent run", origin.context, attributes=attributes)
    token = otel_context.attach(
        bind_tracer(tracer, trace.set_span_in_context(span, origin.context))
    )
    try:
        await run()
    finally:
        otel_context.detach(token)
        _end_run(span, tracked.task)


def _end_run(span: trace.Span, task: Task) -> None:
    span.set_attributes(
        {
            "switchboard.task.state": task.state.name,
            "switchboard.task.attempts": task.attempts,
            "switchboard.task.cached": task.cached,
        }
    )
    if task.error is not None:
        span.set_attribute("error.type", task.error.reason)
    if task.state in _FAILED:
        span.set_status(Status(StatusCode.ERROR, task.error.message if task.error else None))
    span.end()


@contextlib.contextmanager
def store_span(
    tracer: trace.Tracer,
    name: str,
    contexts: Sequence[otel_context.Context] = (),
    **counts: int,
) -> Iterator[trace.Span]:
    """A span around one store write, current inside; a failure marks it ERROR.

    Its parent is the first of ``contexts`` (default: the current context); the spans
    current in the others are linked. ``counts`` become ``switchboard.store.<name>``.
    """
    parent = contexts[0] if contexts else None
    links = _links(contexts[1:], trace.get_current_span(parent).get_span_context())
    attributes = {f"switchboard.store.{key}": value for key, value in counts.items()}
    with tracer.start_as_current_span(name, parent, links=links, attributes=attributes) as span:
        yield span


def _links(contexts: Sequence[otel_context.Context], parent: trace.SpanContext) -> list[Link]:
    seen = {parent.span_id}
    links: list[Link] = []
    # Writes of one task mostly share one context object: look at each once.
    for context in {id(context): context for context in contexts}.values():
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid and span_context.span_id not in seen:
            seen.add(span_context.span_id)
            links.append(Link(span_context))
            if len(links) == _MAX_LINKS:
                break
    return links
