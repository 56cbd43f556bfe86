"""What is measured: the bare baseline, Execute per agent, and WatchTask streams."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from bench.cpu import CpuWindow
from bench.echo_server import METHOD as ECHO_METHOD
from bench.load import LoadResult, LoadSettings, OperationFailed, measure
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc

CALL_LIMIT = 120.0  # seconds; a call slower than this is an error, not a sample
EXECUTE_INPUT = "Hello from the bench: how fast can you answer?"
_SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED
_TERMINAL = {
    tasks_pb2.TASK_STATE_SUCCEEDED,
    tasks_pb2.TASK_STATE_FAILED,
    tasks_pb2.TASK_STATE_CANCELLED,
    tasks_pb2.TASK_STATE_TIMED_OUT,
}


class Target(Protocol):
    """What a scenario drives: an address to dial and the CPU clock of what serves it."""

    @property
    def address(self) -> str:
        """``host:port`` to dial."""
        ...

    def cpu_seconds(self) -> float | None:
        """CPU seconds the serving processes used so far (None when unreadable)."""
        ...


@dataclass(frozen=True)
class Measurement:
    """One scenario's name, what it counts, and its result."""

    key: str
    title: str
    result: LoadResult
    streams: bool = False  # items are events, and latency is a whole stream


def execute_request(agent: str) -> tasks_pb2.ExecuteRequest:
    """The request every Execute scenario sends (and the baseline echoes, as bytes).

    ``no_cache``: every call repeats the same input, and the bench measures the agent
    run, not result-cache hits.
    """
    return tasks_pb2.ExecuteRequest(
        task=tasks_pb2.TaskSpec(input=EXECUTE_INPUT, agent=agent, no_cache=True)
    )


def _require_success(task: tasks_pb2.Task) -> None:
    if task.state != _SUCCEEDED:
        raise OperationFailed(tasks_pb2.TaskState.Name(task.state))


async def bare_echo(server: Target, settings: LoadSettings) -> Measurement:
    """The bare grpc.aio echo server, sent the bytes of an ExecuteRequest."""
    payload = execute_request("echo").SerializeToString()
    async with grpc.aio.insecure_channel(server.address) as channel:
        echo = channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)

        async def call() -> int:
            await echo(payload, timeout=CALL_LIMIT)
            return 1

        result = await measure(call, settings, server.cpu_seconds)
    return Measurement("bare_echo", "bare grpc.aio echo (baseline)", result)


async def execute(
    server: Target, settings: LoadSettings, agent: str, window: CpuWindow | None = None
) -> Measurement:
    """Execute on ``agent``: the whole task lifecycle, answered when the task ends."""
    request = execute_request(agent)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)

        async def call() -> int:
            response = await stub.Execute(request, timeout=CALL_LIMIT)
            _require_success(response.task)
            return 1

        result = await measure(call, settings, server.cpu_seconds, window)
    return Measurement(f"execute_{agent}", f"Execute, agent {agent}", result)


async def watch_to_end(
    stub: tasks_pb2_grpc.TaskServiceStub,
    task_id: str,
    on_event: Callable[[tasks_pb2.TaskEvent], None] | None = None,
) -> int:
    """WatchTask from the start to the terminal event; the number of events.

    ``on_event`` sees each event as it arrives. OperationFailed when the sequences had a
    gap, the stream ended without a terminal event, or the task did not succeed.
    """
    events, last = 0, None
    async for response in stub.WatchTask(
        tasks_pb2.WatchTaskRequest(task_id=task_id), timeout=CALL_LIMIT
    ):
        if on_event is not None:
            on_event(response.event)
        events += 1
        last = response.event
    if last is None or last.sequence != events:
        raise OperationFailed("GAP_IN_EVENTS")
    if not last.HasField("state_changed") or last.state_changed.state not in _TERMINAL:
        raise OperationFailed("NO_TERMINAL_EVENT")
    if last.state_changed.state != _SUCCEEDED:
        raise OperationFailed(tasks_pb2.TaskState.Name(last.state_changed.state))
    return events


def watch_input(words: int) -> str:
    """An input of ``words`` words: the offline model streams one delta per word."""
    return " ".join(f"word{index}" for index in range(words))


async def watch_live(
    server: Target, settings: LoadSettings, words: int
) -> tuple[Measurement, list[str]]:
    """SubmitTask (assistant agent, a long input, no cache), then WatchTask it to the end.

    Returns the measurement and the ids of the tasks watched, for the replay scenario.
    """
    request = tasks_pb2.SubmitTaskRequest(
        task=tasks_pb2.TaskSpec(input=watch_input(words), agent="assistant", no_cache=True)
    )
    watched: list[str] = []
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)

        async def call() -> int:
            submitted = await stub.SubmitTask(request, timeout=CALL_LIMIT)
            events = await watch_to_end(stub, submitted.task.id)
            watched.append(submitted.task.id)
            return events

        result = await measure(call, settings, server.cpu_seconds)
    title = f"SubmitTask + WatchTask live, {words}-word input"
    return Measurement("watch_live", title, result, streams=True), watched


async def watch_replay(server: Target, settings: LoadSettings, task_ids: list[str]) -> Measurement:
    """WatchTask of finished tasks: every event replayed from the store."""
    if not task_ids:
        raise ValueError("watch_replay needs finished tasks (run watch_live first)")
    next_id = itertools.cycle(task_ids).__next__
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)

        async def call() -> int:
            return await watch_to_end(stub, next_id())

        result = await measure(call, settings, server.cpu_seconds)
    return Measurement("watch_replay", "WatchTask replay of finished tasks", result, streams=True)
