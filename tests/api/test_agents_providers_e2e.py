"""Configured agents through the gRPC API: providers, usage, tools, handoffs, bad config.

Real servers and channels; the providers talk to the fake OpenAI server on loopback.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import grpc
import pydantic
import pytest
from google.rpc import error_details_pb2

from switchboard.server.app import ConfigurationError
from switchboard.v1 import agents_pb2, tasks_pb2
from tests.api.agent_servers import (
    KEY,
    KEY_ENV,
    agent,
    function_tool,
    of_kind,
    output_of,
    states,
    usage,
)
from tests.api.conftest import Serve
from tests.api.statuses import detail, failure
from tests.conftest import ServerFactory
from tests.fakes import FakeOpenAI, text, tool_call

SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED

# -- providers ---------------------------------------------------------------------------


async def test_an_openai_agent_answers_through_the_responses_api(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(agent("cloud", "openai:gpt-test", base_url=fake.base_url))
    fake.script(text("Hello there, world", parts=3, input_tokens=21, output_tokens=4))

    task = await served.execute("Say hello")

    assert task.state == SUCCEEDED
    assert task.output_text == "Hello there, world"
    assert task.agent == "cloud"
    assert task.attempts == 1
    assert not task.cached
    assert task.usage == usage(21, 4)
    [request] = fake.requests
    assert request.path == "/v1/responses"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "gpt-test"
    assert request.body["stream"] is True
    events = await served.events(task.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [d.text for d in of_kind(events, "output_delta")] == ["Hello ", "there,", " world"]
    assert output_of(events) == task.output_text
    assert [u.usage for u in of_kind(events, "usage")] == [usage(21, 4)]
    assert states(events) == [tasks_pb2.TASK_STATE_QUEUED, tasks_pb2.TASK_STATE_RUNNING, SUCCEEDED]
    # The stored task says the same as the one Execute returned.
    assert (await served.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task.id))).task == task


async def test_get_agent_sums_the_usage_and_outcomes_of_its_tasks(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(agent("cloud", "openai:gpt-test", base_url=fake.base_url))
    fake.script(
        text("one", input_tokens=10, output_tokens=1), text("two", input_tokens=7, output_tokens=3)
    )

    first = await served.execute("first")
    second = await served.execute("second")

    assert [first.usage, second.usage] == [usage(10, 1), usage(7, 3)]
    cloud = await served.agent("cloud")
    assert cloud.usage == usage(17, 4)
    assert list(cloud.outcomes) == [agents_pb2.OutcomeCount(state=SUCCEEDED, count=2)]
    assert cloud.model == "openai:gpt-test"
    assert cloud.health == agents_pb2.AGENT_HEALTH_HEALTHY
    assert cloud.circuit_state == agents_pb2.CIRCUIT_STATE_CLOSED
    assert (cloud.in_flight, cloud.queued) == (0, 0)
    assert not cloud.last_error


async def test_a_compat_agent_answers_through_chat_completions_with_usage(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(agent("local", "compat:llama-3", base_url=fake.base_url))
    fake.script(text("Hi from llama", parts=2, input_tokens=9, output_tokens=3))

    task = await served.execute("Say hi")

    assert task.state == SUCCEEDED
    assert task.output_text == "Hi from llama"
    assert task.usage == usage(9, 3)
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "llama-3"
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    events = await served.events(task.id)
    assert output_of(events) == "Hi from llama"
    assert [u.usage for u in of_kind(events, "usage")] == [usage(9, 3)]
    assert (await served.agent("local")).usage == usage(9, 3)


async def test_a_compat_agent_without_a_key_never_sends_the_openai_key(
    fake: FakeOpenAI, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-belongs-to-openai")
    served = await serve(agent("local", "compat:llama-3", base_url=fake.base_url, api_key_env=None))
    fake.script(text("ok"))

    assert (await served.execute("hi")).output_text == "ok"
    assert "sk-belongs-to-openai" not in fake.requests[0].headers["authorization"]


# -- tools -------------------------------------------------------------------------------


async def test_a_provider_asking_for_a_builtin_tool_gets_its_result(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(
        agent("cloud", "openai:gpt-test", base_url=fake.base_url, tools=["calculator"])
    )
    fake.script(
        tool_call("calculator", {"expression": "6*7"}, call_id="call_42"), text("It is 42.")
    )

    task = await served.execute("What is six times seven?")

    assert task.state == SUCCEEDED
    assert task.output_text == "It is 42."
    # Two model calls, each reporting the fake's default usage (12 in, 5 out).
    assert task.usage == usage(24, 10)
    events = await served.events(task.id)
    [call] = of_kind(events, "tool_call")
    assert (call.call_id, call.name) == ("call_42", "calculator")
    assert call.arguments_json == '{"expression": "6*7"}'
    [result] = of_kind(events, "tool_result")
    assert (result.call_id, result.output, result.is_error) == ("call_42", "42", False)
    kinds = [event.WhichOneof("payload") for event in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("output_delta")
    second = fake.requests[1].body
    assert second["input"][-1] == {
        "call_id": "call_42",
        "output": "42",
        "type": "function_call_output",
    }


async def test_the_offline_agent_calls_a_tool_with_no_network(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = await serve(agent("helper", tools=["calculator"]))
    connects: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        connects.append(args)
        raise OSError("network use in a test")

    # gRPC's C core makes its own sockets; whatever Python code tries to connect fails.
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)

    task = await served.execute('/tool calculator {"expression": "6*7"}')

    assert connects == []
    assert task.state == SUCCEEDED
    assert task.output_text.endswith("calculator returned: 42")
    assert task.usage.total_tokens > 0
    events = await served.events(task.id)
    [call] = of_kind(events, "tool_call")
    assert call.name == "calculator"
    assert call.call_id
    assert call.arguments_json == '{"expression": "6*7"}'
    [result] = of_kind(events, "tool_result")
    assert (result.call_id, result.output, result.is_error) == (call.call_id, "42", False)
    assert output_of(events) == task.output_text


async def test_a_failing_tool_call_is_reported_and_the_task_goes_on(serve: Serve) -> None:
    served = await serve(agent("helper", tools=["calculator"]))

    task = await served.execute('/tool calculator {"expression": "1/0"}')

    assert task.state == SUCCEEDED
    [result] = of_kind(await served.events(task.id), "tool_result")
    assert result.is_error
    assert result.output == "error: division by zero"


@pytest.mark.parametrize(
    "tool",
    [
        function_tool("http_fetch"),
        function_tool("no_such_tool"),
        tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_WEB_SEARCH),
    ],
    ids=["a-builtin-it-lacks", "an-unknown-function", "web-search"],
)
async def test_a_task_asking_for_a_tool_its_agent_lacks_is_refused_and_not_stored(
    serve: Serve, tool: tasks_pb2.Tool
) -> None:
    served = await serve(agent("helper", tools=["calculator"]))
    request = tasks_pb2.ExecuteRequest(
        task=tasks_pb2.TaskSpec(input="hi", tools=[function_tool("calculator"), tool])
    )

    call = served.tasks.Execute(request)
    _, status = await failure(call)

    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = detail(status, error_details_pb2.BadRequest).field_violations
    assert violation.field == "task.tools[1]"
    assert "helper" in violation.description
    assert "calculator" in violation.description  # what it does offer
    assert await served.stored() == []


async def test_a_task_asking_another_agent_for_a_tool_is_checked_against_that_agent(
    serve: Serve,
) -> None:
    served = await serve(agent("plain"), agent("helper", tools=["calculator"]))
    submit = tasks_pb2.SubmitTaskRequest(
        task=tasks_pb2.TaskSpec(input="hi", tools=[function_tool("calculator")])
    )

    call = served.tasks.SubmitTask(submit)
    _, status = await failure(call)
    [violation] = detail(status, error_details_pb2.BadRequest).field_violations
    assert violation.field == "task.tools[0]"
    assert "'plain'" in violation.description

    submit.task.agent = "helper"
    assert (await served.tasks.SubmitTask(submit)).task.spec.agent == "helper"


async def test_a_task_limited_to_some_tools_offers_the_model_only_those(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(
        agent(
            "cloud",
            "openai:gpt-test",
            base_url=fake.base_url,
            tools=["calculator", "current_time", "web_search"],
        )
    )
    fake.script(text("everything"), text("just one"))

    everything = await served.execute("hi", no_cache=True)
    limited = await served.execute("hi", tools=[function_tool("calculator")], no_cache=True)

    assert (everything.state, limited.state) == (SUCCEEDED, SUCCEEDED)
    assert limited.spec.tools == [function_tool("calculator")]
    offered = [_tool_names(request.body) for request in fake.requests]
    assert offered == [["calculator", "current_time", "web_search"], ["calculator"]]


async def test_the_offline_agent_skips_a_tool_the_task_left_out(serve: Serve) -> None:
    served = await serve(agent("helper", tools=["calculator", "current_time"]))

    task = await served.execute(
        '/tool current_time {}\n/tool calculator {"expression": "2+2"}',
        tools=[function_tool("calculator")],
    )

    assert task.state == SUCCEEDED
    events = await served.events(task.id)
    assert [call.name for call in of_kind(events, "tool_call")] == ["calculator"]
    assert task.output_text.endswith("calculator returned: 4")


def _tool_names(body: dict[str, Any]) -> list[str]:
    return sorted(tool.get("name") or tool["type"] for tool in body.get("tools", []))


# -- handoffs ----------------------------------------------------------------------------


async def test_a_handoff_between_offline_agents_shows_as_agent_changes(serve: Serve) -> None:
    served = await serve(agent("front", handoffs=["billing"]), agent("billing"))

    task = await served.execute("/handoff billing\nWhat do I owe?")

    assert task.state == SUCCEEDED
    assert task.spec.agent == "front"
    assert task.agent == "billing"
    assert "What do I owe?" in task.output_text
    events = await served.events(task.id)
    changes = [(c.agent, c.previous_agent, c.handoff) for c in of_kind(events, "agent_changed")]
    assert changes == [("front", "", False), ("billing", "front", True)]
    listed = await served.tasks.ListTasks(tasks_pb2.ListTasksRequest(agent="front"))
    assert [t.id for t in listed.tasks] == [task.id]


async def test_a_handoff_then_a_tool_call_on_the_agent_handed_the_task(serve: Serve) -> None:
    served = await serve(agent("front", handoffs=["maths"]), agent("maths", tools=["calculator"]))

    task = await served.execute('/handoff maths\n/tool calculator {"expression": "6 * 7"}')

    assert task.agent == "maths"
    assert task.output_text.endswith("calculator returned: 42")
    events = await served.events(task.id)
    kinds = [e.WhichOneof("payload") for e in events if e.WhichOneof("payload") != "usage"]
    handed = kinds.index("agent_changed", kinds.index("agent_changed") + 1)
    assert handed < kinds.index("tool_call") < kinds.index("tool_result")


async def test_an_offline_agent_hands_off_to_a_compat_agent_on_its_server(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(
        agent("front", handoffs=["remote"]),
        agent("remote", "compat:llama-3", base_url=fake.base_url),
    )
    fake.script(text("from afar", parts=2, input_tokens=30, output_tokens=2))

    task = await served.execute("/handoff remote")

    assert task.state == SUCCEEDED
    assert (task.agent, task.output_text) == ("remote", "from afar")
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["stream_options"] == {"include_usage": True}
    events = await served.events(task.id)
    changes = [(c.agent, c.previous_agent, c.handoff) for c in of_kind(events, "agent_changed")]
    assert changes == [("front", "", False), ("remote", "front", True)]
    # The offline turn that handed off, then the remote answer.
    assert of_kind(events, "usage")[-1].usage == usage(30, 2)
    assert task.usage.input_tokens > 30
    assert output_of(events).endswith("from afar")
    # The run is booked to the agent the task named.
    assert (await served.agent("front")).usage == task.usage


# -- misconfiguration ----------------------------------------------------------------------


_UNSET = "SWITCHBOARD_TEST_UNSET"
_NOWHERE = "http://127.0.0.1:9/v1"
_CANNOT_RUN = [
    pytest.param(
        [agent("cloud", "openai:gpt-test", api_key_env=_UNSET)],
        "agents[0].api_key_env: SWITCHBOARD_TEST_UNSET",
        id="unset-key",
    ),
    pytest.param(
        [agent("cloud", "openai:gpt-test", api_key_env=None)],
        "agents[0].api_key_env: OPENAI_API_KEY",
        id="unset-openai-key",
    ),
    pytest.param(
        [agent("helper", tools=["calculator", "abacus"])], "agents[0].tools[1]", id="unknown-tool"
    ),
    pytest.param(
        [agent("a"), agent("local", "compat:m", base_url=_NOWHERE, tools=["web_search"])],
        "agents[1].tools[0]",
        id="unhosted-web-search",
    ),
    pytest.param(
        [agent("helper", tools=["file_search"])], "agents[0].tools[0]", id="nothing-to-search"
    ),
    pytest.param(
        [agent("helper", tools=["tests.api.no_such_module:tool"])],
        "agents[0].tools[0]",
        id="bad-import-path",
    ),
    pytest.param(
        [agent("a", handoffs=["echo"]), agent("echo", "echo")],
        "agents[0].handoffs[0]",
        id="handoff-to-echo",
    ),
]


@pytest.mark.parametrize(("agents", "named"), _CANNOT_RUN)
async def test_an_agent_that_cannot_run_stops_the_server_at_start(
    server_factory: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
    agents: list[dict[str, Any]],
    named: str,
) -> None:
    monkeypatch.delenv(_UNSET, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv(KEY_ENV, KEY)

    with pytest.raises(ConfigurationError) as raised:
        await server_factory(agents=agents, default_agent=agents[0]["name"])

    assert str(raised.value).startswith(named)


@pytest.mark.parametrize(
    ("agents", "named"),
    [
        ([agent("a", handoffs=["nobody"])], "agents[0].handoffs[0]"),
        ([agent("local", "compat:llama")], "base_url"),
        ([agent("a", "gpt-4o")], "model"),
        ([agent("a"), agent("a")], "duplicate"),
    ],
    ids=["unknown-handoff", "compat-without-base-url", "bad-model", "duplicate-names"],
)
async def test_settings_that_make_no_sense_are_refused_before_anything_starts(
    server_factory: ServerFactory, agents: list[dict[str, Any]], named: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(named)):
        await server_factory(agents=agents, default_agent=agents[0]["name"])
