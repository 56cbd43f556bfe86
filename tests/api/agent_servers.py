"""Servers with configured agents, dialled through real channels, for end-to-end tests.

``Served`` is one started server with both stubs on one channel, plus the readers
the agent tests share: the task's whole event stream, payloads of one kind.
Agents are given as ``agent(...)`` dictionaries (``AgentConfig`` fields) with tiny
retry backoffs, so retries cost milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc

from switchboard.v1 import agents_pb2, agents_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from tests.conftest import RunningServer

KEY_ENV = "SWITCHBOARD_TEST_E2E_KEY"
"""The variable the provider agents read their API key from (set by ``serve``)."""
KEY = "sk-e2e-not-a-real-key"

FAST_RETRY: dict[str, Any] = {
    "attempts": 3,
    "initial_backoff": timedelta(milliseconds=10),
    "max_backoff": timedelta(milliseconds=50),
}


def agent(name: str, model: str = "offline", **fields: Any) -> dict[str, Any]:
    """An agent's configuration, retrying fast unless ``retry`` says otherwise.

    Provider models (``openai:``, ``compat:``) read their key from ``KEY_ENV``.
    """
    config: dict[str, Any] = {"name": name, "model": model, "retry": FAST_RETRY, **fields}
    if model.startswith(("openai:", "compat:")):
        config.setdefault("api_key_env", KEY_ENV)
    return config


@dataclass
class Served:
    """A running server and the stubs of one channel to it."""

    server: RunningServer
    channel: grpc.aio.Channel
    tasks: tasks_pb2_grpc.TaskServiceStub
    agents: agents_pb2_grpc.AgentServiceStub

    async def execute(self, text: str, **fields: Any) -> tasks_pb2.Task:
        """Execute a task (``fields`` are other TaskSpec fields); its final state."""
        request = tasks_pb2.ExecuteRequest(task=spec(text, **fields))
        return (await self.tasks.Execute(request, timeout=30)).task

    async def events(self, task_id: str) -> list[tasks_pb2.TaskEvent]:
        """Every event of the task, through WatchTask, up to its terminal one."""
        request = tasks_pb2.WatchTaskRequest(task_id=task_id)
        return [response.event async for response in self.tasks.WatchTask(request, timeout=30)]

    async def agent(self, name: str) -> agents_pb2.Agent:
        """GetAgent."""
        return (await self.agents.GetAgent(agents_pb2.GetAgentRequest(agent_id=name))).agent

    async def stored(self) -> list[tasks_pb2.Task]:
        """Every task the server holds, newest first."""
        request = tasks_pb2.ListTasksRequest(page_size=1000)
        return list((await self.tasks.ListTasks(request)).tasks)


def spec(text: str, **fields: Any) -> tasks_pb2.TaskSpec:
    """A TaskSpec; ``timeout`` may be given in seconds."""
    seconds = fields.pop("timeout", None)
    message = tasks_pb2.TaskSpec(input=text, **fields)
    if seconds is not None:
        message.timeout.FromTimedelta(timedelta(seconds=seconds))
    return message


def function_tool(name: str) -> tasks_pb2.Tool:
    """A task's request for the agent's function tool ``name``."""
    return tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name=name)


def of_kind(events: list[tasks_pb2.TaskEvent], kind: str) -> list[Any]:
    """The payloads named ``kind`` (e.g. ``output_delta``), in order."""
    return [getattr(event, kind) for event in events if event.WhichOneof("payload") == kind]


def output_of(events: list[tasks_pb2.TaskEvent]) -> str:
    """The output text the deltas of the last attempt spell (a retry starts over)."""
    deltas = of_kind(events, "output_delta")
    last = max((delta.attempt for delta in deltas), default=0)
    return "".join(delta.text for delta in deltas if delta.attempt == last)


def states(events: list[tasks_pb2.TaskEvent]) -> list[int]:
    """The states the task went through, in order."""
    return [changed.state for changed in of_kind(events, "state_changed")]


def usage(input_tokens: int, output_tokens: int) -> tasks_pb2.TokenUsage:
    """The TokenUsage a provider reporting these counts yields."""
    return tasks_pb2.TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
