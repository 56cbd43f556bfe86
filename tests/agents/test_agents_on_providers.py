"""Configured agents on real provider models, against the fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard.server.agents import AgentRun, AgentRuntime, build_runtimes
from switchboard.server.config import AgentConfig, Settings
from switchboard.server.domain import (
    AgentChanged,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)
from tests.agents.conftest import Recorder
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_wire import text, tool_call

KEY_ENV = "SWITCHBOARD_TEST_AGENT_KEY"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def _runtimes(monkeypatch: pytest.MonkeyPatch, *agents: AgentConfig) -> dict[str, AgentRuntime]:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    return build_runtimes(Settings(agents=list(agents), default_agent=agents[0].name))


async def test_an_openai_agent_calls_its_tool_through_the_responses_api(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    agent = AgentConfig(
        name="cloud",
        model="openai:gpt-test",
        base_url=fake.base_url,
        api_key_env=KEY_ENV,
        tools=["calculator", "web_search"],
    )
    runtimes = _runtimes(monkeypatch, agent)
    fake.script(tool_call("calculator", {"expression": "2 + 3"}, call_id="c1"), text("It is 5."))
    try:
        outcome = await runtimes["cloud"].run(AgentRun("t-1", "cloud", "2 + 3?"), recorder)
    finally:
        await runtimes["cloud"].aclose()

    assert outcome.output_text == "It is 5."
    assert recorder.of(ToolCalled) == [ToolCalled("c1", "calculator", '{"expression": "2 + 3"}')]
    assert recorder.of(ToolReturned) == [ToolReturned("c1", "5")]
    assert len(recorder.of(UsageReported)) == 2
    first, second = (request.body for request in fake.requests)
    assert [request.path for request in fake.requests] == ["/v1/responses"] * 2
    assert sorted(tool["type"] for tool in first["tools"]) == ["function", "web_search"]
    assert second["input"][-1] == {"call_id": "c1", "output": "5", "type": "function_call_output"}


async def test_a_handoff_to_a_compat_agent_runs_on_its_server_with_usage_requested(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    runtimes = _runtimes(
        monkeypatch,
        AgentConfig(name="local", handoffs=["remote"]),
        AgentConfig(name="remote", model="compat:llama", base_url=fake.base_url),
    )
    fake.script(text("from afar", input_tokens=30, output_tokens=2))
    try:
        outcome = await runtimes["local"].run(AgentRun("t-1", "local", "/handoff remote"), recorder)
    finally:
        for runtime in runtimes.values():
            await runtime.aclose()

    assert outcome.output_text == "from afar"
    assert outcome.agent == "remote"
    assert recorder.of(AgentChanged) == [AgentChanged("remote", previous="local", handoff=True)]
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "llama"
    # The compat agent's own model settings, though the run began on the offline agent.
    assert request.body["stream_options"] == {"include_usage": True}
    assert recorder.of(UsageReported)[-1] == UsageReported(TokenUsage(30, 2, 32))
