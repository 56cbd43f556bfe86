"""A task's whole trace, received by a real OTLP receiver: the call's server span, the
task's queue wait and agent run, the Agents SDK's model and tool calls, the store writes.

The server is the real TaskService on a real orchestrator and store, behind the errors
and tracing interceptors, with agents on the offline model (its ``/tool`` and
``/handoff`` directives make it call tools and hand off without any network).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from agents.tracing import Span, Trace, TracingProcessor, add_trace_processor, set_trace_processors

from switchboard.server.agents import AgentError, AgentOutcome, AgentRun, Emit, build_runtimes
from switchboard.server.agents.tracing_bridge import OtelBridge
from switchboard.server.api import TaskServicer
from switchboard.server.config import AgentConfig, Settings
from switchboard.server.events import InProcessBus
from switchboard.server.interceptors import ErrorsInterceptor
from switchboard.server.interceptors.tracing import TracingInterceptor
from switchboard.server.orchestrator import Orchestrator
from switchboard.server.store import TaskStore
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.telemetry.json_logs import json_lines
from tests.telemetry.otlp import (
    STATUS_ERROR,
    STATUS_UNSET,
    Exporting,
    ReceivedSpan,
    Receiver,
    exporting,
)

TOOL_CALL = '/tool calculator {"expression": "6 * 7"}'
EXECUTE = "switchboard.v1.TaskService/Execute"


class _Refusing:
    """A runtime whose provider refuses every task (or crashes, with ``crash``)."""

    def __init__(self, crash: bool = False) -> None:
        self._crash = crash

    @property
    def tools(self) -> frozenset[str]:
        return frozenset()

    async def run(self, run: AgentRun, emit: Emit) -> AgentOutcome:
        if self._crash:
            raise RuntimeError("a bug in the runtime")
        raise AgentError("the provider refused the request", reason="MODEL_ERROR")

    async def aclose(self) -> None:
        pass


@dataclass
class Served:
    tasks: tasks_pb2_grpc.TaskServiceStub


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def tracing(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Exporting]:
    async with exporting(monkeypatch) as exported:
        yield exported


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start the TaskService with ``agents`` (the first is the default), traced by ``tracer``."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def start(
        *agents: AgentConfig, tracing: Exporting | None, runtimes: Any = build_runtimes
    ) -> Served:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / f'{len(stops)}.db'}",
            agents=list(agents),
            default_agent=agents[0].name,
        )
        tracer = tracing.handle.tracer if tracing is not None else None
        store = await TaskStore.open(settings.database_url, migrate=True)
        orchestrator = Orchestrator(
            settings, store, InProcessBus(), runtimes(settings), tracer=tracer
        )
        await orchestrator.start()
        server = grpc.aio.server(interceptors=[ErrorsInterceptor(), TracingInterceptor(tracer)])
        tasks_pb2_grpc.add_TaskServiceServicer_to_server(TaskServicer(orchestrator), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

        async def stop() -> None:
            await channel.close()
            await server.stop(None)
            await orchestrator.stop(1)
            await store.close()

        stops.append(stop)
        return Served(tasks_pb2_grpc.TaskServiceStub(channel))

    yield start
    for stop in reversed(stops):
        await stop()


def _spec(text: str, **fields: Any) -> tasks_pb2.TaskSpec:
    return tasks_pb2.TaskSpec(input=text, **fields)


def _traceparent() -> tuple[str, str, tuple[tuple[str, str]]]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, (("traceparent", f"00-{trace_id}-{parent_id}-01"),)


def _named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def _only(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    [span] = _named(spans, name)
    return span


def _strings(receiver: Receiver) -> list[str]:
    """Every string an exported span carries in its attributes."""
    return [
        value
        for span in receiver.spans
        for value in span.attributes.values()
        if isinstance(value, str)
    ]


async def test_an_execute_call_exports_its_whole_span_tree(
    serve: Serve, tracing: Exporting
) -> None:
    served = await serve(
        AgentConfig(name="assistant", model="offline", tools=["calculator"]), tracing=tracing
    )
    trace_id, parent_id, metadata = _traceparent()
    response = await served.tasks.Execute(
        tasks_pb2.ExecuteRequest(task=_spec(TOOL_CALL)), metadata=metadata, timeout=30
    )
    task = response.task
    assert task.state == tasks_pb2.TASK_STATE_SUCCEEDED
    assert task.output_text.endswith("calculator returned: 42")

    receiver = await tracing.flush()
    server = receiver.one(EXECUTE)
    assert (server.trace_id, server.parent_id) == (trace_id, parent_id)
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert {span.trace_id for span in receiver.spans} == {trace_id}

    below_server = receiver.children(server)
    assert sorted(span.name for span in below_server) == [
        "agent run",
        "queue wait",
        "store.create_task",
    ]
    run = _only(below_server, "agent run")
    assert run.attributes == {
        "switchboard.task_id": task.id,
        "switchboard.agent": "assistant",
        "switchboard.task.state": "SUCCEEDED",
        "switchboard.task.attempts": 1,
        "switchboard.task.cached": False,
    }
    assert run.status == STATUS_UNSET
    assert _only(below_server, "queue wait").attributes["switchboard.task_id"] == task.id

    below_run = receiver.children(run)
    agent = _only(below_run, "invoke_agent assistant")
    assert agent.attributes["gen_ai.agent.name"] == "assistant"
    commits = _named(below_run, "store.commit")
    assert commits
    assert all(commit.attributes["switchboard.store.events"] >= 1 for commit in commits)
    assert all(commit.attributes["switchboard.store.tasks"] == 1 for commit in commits)

    below_agent = receiver.children(agent)
    # The model called the tool, got its result, then answered: two model calls, one tool call.
    assert sorted(span.name for span in below_agent) == [
        "chat offline",
        "chat offline",
        "execute_tool calculator",
    ]
    for call in _named(below_agent, "chat offline"):
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == "offline"
        assert call.attributes["gen_ai.usage.input_tokens"] > 0
        assert call.attributes["gen_ai.usage.output_tokens"] > 0
    tool = _only(below_agent, "execute_tool calculator")
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.status == STATUS_UNSET

    # No payload reaches a span: not the input, not the tool's arguments or result.
    strings = _strings(receiver)
    assert not [text for text in strings if "6 * 7" in text or "expression" in text]
    assert "42" not in strings


async def test_a_handoff_is_a_span_and_each_agent_runs_under_the_agent_run(
    serve: Serve, tracing: Exporting
) -> None:
    served = await serve(
        AgentConfig(name="assistant", model="offline", handoffs=["billing"]),
        AgentConfig(name="billing", model="offline", tools=["calculator"]),
        tracing=tracing,
    )
    response = await served.tasks.Execute(
        tasks_pb2.ExecuteRequest(task=_spec(f"/handoff billing\n{TOOL_CALL}")), timeout=30
    )
    assert response.task.agent == "billing"

    receiver = await tracing.flush()
    run = receiver.one("agent run")
    agents = [span for span in receiver.children(run) if span.name.startswith("invoke_agent")]
    assert sorted(span.name for span in agents) == [
        "invoke_agent assistant",
        "invoke_agent billing",
    ]
    handoff = receiver.one("handoff")
    assert handoff.parent_id == _only(agents, "invoke_agent assistant").span_id
    assert handoff.attributes["switchboard.handoff.from_agent"] == "assistant"
    assert handoff.attributes["switchboard.handoff.to_agent"] == "billing"
    billing = _only(agents, "invoke_agent billing")
    assert "execute_tool calculator" in [span.name for span in receiver.children(billing)]


async def test_a_submitted_task_runs_in_the_trace_of_the_submit_call(
    serve: Serve, tracing: Exporting
) -> None:
    served = await serve(AgentConfig(name="assistant", model="offline"), tracing=tracing)
    trace_id, _, metadata = _traceparent()
    submitted = await served.tasks.SubmitTask(
        tasks_pb2.SubmitTaskRequest(task=_spec("hello")), metadata=metadata
    )
    watch = served.tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=submitted.task.id))
    events = [response.event async for response in watch]
    assert events[-1].state_changed.state == tasks_pb2.TASK_STATE_SUCCEEDED

    receiver = await tracing.flush()
    submit = receiver.one("switchboard.v1.TaskService/SubmitTask")
    assert submit.trace_id == trace_id
    # The task ran after the call returned, yet under its span.
    below_submit = receiver.children(submit)
    names = sorted(span.name for span in below_submit)
    assert names == ["agent run", "queue wait", "store.create_task"]
    # The wait began during the call, when the task was queued, and ended when it ran.
    wait, run = _only(below_submit, "queue wait"), _only(below_submit, "agent run")
    assert submit.start_ns <= wait.start_ns <= submit.end_ns
    assert wait.start_ns <= wait.end_ns <= run.start_ns
    watched = receiver.one("switchboard.v1.TaskService/WatchTask")
    assert watched.trace_id != trace_id
    assert watched.attributes["rpc.grpc.status_code"] == 0


async def test_a_cached_answer_is_an_agent_run_without_model_calls(
    serve: Serve, tracing: Exporting
) -> None:
    served = await serve(AgentConfig(name="assistant", model="offline"), tracing=tracing)
    for _ in range(2):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest(task=_spec("hello")), timeout=30)

    receiver = await tracing.flush()
    first, second = sorted(
        receiver.named("agent run"), key=lambda s: s.attributes["switchboard.task.cached"]
    )
    assert (
        first.attributes["switchboard.task.cached"],
        second.attributes["switchboard.task.cached"],
    ) == (False, True)
    assert "invoke_agent assistant" in [span.name for span in receiver.children(first)]
    assert not [s for s in receiver.children(second) if s.name.startswith("invoke_agent")]


@pytest.mark.parametrize(("crash", "reason"), [(False, "MODEL_ERROR"), (True, "AGENT_CRASHED")])
async def test_a_failed_task_marks_its_agent_run_as_an_error(
    serve: Serve, tracing: Exporting, crash: bool, reason: str
) -> None:
    served = await serve(
        AgentConfig(name="assistant", model="offline"),
        tracing=tracing,
        runtimes=lambda settings: {"assistant": _Refusing(crash)},
    )
    with json_lines() as logs:
        response = await served.tasks.Execute(
            tasks_pb2.ExecuteRequest(task=_spec("hello")), timeout=30
        )
    assert response.task.state == tasks_pb2.TASK_STATE_FAILED

    receiver = await tracing.flush()
    run = receiver.one("agent run")
    assert run.status == STATUS_ERROR
    assert run.attributes["switchboard.task.state"] == "FAILED"
    assert run.attributes["error.type"] == reason
    # The call itself succeeded: it returned the failed task.
    assert receiver.one(EXECUTE).status == STATUS_UNSET
    crashes = [line for line in logs() if "crashed" in line["message"]]
    if crash:  # the runner logged it, in the agent run
        [line] = crashes
        assert (line["trace_id"], line["span_id"]) == (run.trace_id, run.span_id)
    else:
        assert crashes == []


async def test_a_refused_call_makes_no_task_spans(serve: Serve, tracing: Exporting) -> None:
    served = await serve(AgentConfig(name="assistant", model="offline"), tracing=tracing)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.tasks.Execute(tasks_pb2.ExecuteRequest(task=_spec("")), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    receiver = await tracing.flush()
    assert receiver.names() == [EXECUTE]
    span = receiver.one(EXECUTE)
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert span.status == STATUS_UNSET


class _SdkTraces(TracingProcessor):
    """Counts the traces the Agents SDK starts."""

    def __init__(self) -> None:
        self.started = 0

    def on_trace_start(self, trace: Trace) -> None:
        self.started += 1

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        pass

    def on_span_end(self, span: Span[Any]) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@pytest.fixture
def sdk_traces() -> Any:
    """Counts the SDK's traces next to the bridge, then leaves the bridge alone again."""
    counter = _SdkTraces()
    add_trace_processor(counter)
    yield counter
    set_trace_processors([OtelBridge()])


@pytest.mark.parametrize("traced", [False, True])
async def test_the_sdk_makes_spans_only_when_tracing_is_on(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, sdk_traces: _SdkTraces, traced: bool
) -> None:
    async def run(tracing: Exporting | None) -> None:
        served = await serve(
            AgentConfig(name="assistant", model="offline", tools=["calculator"]),
            tracing=tracing,
        )
        response = await served.tasks.Execute(
            tasks_pb2.ExecuteRequest(task=_spec(TOOL_CALL)), timeout=30
        )
        assert response.task.state == tasks_pb2.TASK_STATE_SUCCEEDED

    if traced:
        async with exporting(monkeypatch) as tracing:
            await run(tracing)
    else:
        await run(None)
    assert sdk_traces.started == (1 if traced else 0)
