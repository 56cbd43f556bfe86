"""Each agent's model provider: resolution, keys, and real SDK runs against a fake server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    ToolCallItem,
    ToolCallOutputItem,
    UserError,
    function_tool,
)
from agents.stream_events import RawResponsesStreamEvent
from openai.types.responses import ResponseCompletedEvent

from switchboard.server.agents.offline import OfflineModel
from switchboard.server.agents.providers import HOSTED_TOOLS, NO_KEY, model_provider
from switchboard.server.config import AgentConfig
from tests.fakes import FakeOpenAI, handoff, text, tool_call
from tests.fakes.sdk_runs import KEY, MODEL, provider_on, run_config, start, stream

PROVIDERS = ["openai", "compat"]
PATHS = {"openai": "/v1/responses", "compat": "/v1/chat/completions"}


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _config(model: str, **fields: Any) -> AgentConfig:
    return AgentConfig(name="helper", model=model, **fields)


# Resolution


async def test_offline_runs_the_offline_model_with_no_client() -> None:
    handle = model_provider(_config("offline"), 0)

    assert isinstance(handle.get_model(None), OfflineModel)
    assert handle.get_model("offline") is handle.get_model(None)
    assert handle.hosted_tools == frozenset()
    assert handle.model_settings == ModelSettings()
    await handle.aclose()
    await handle.aclose()


def test_openai_runs_on_the_responses_api_which_hosts_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    handle = model_provider(_config("openai:gpt-test"), 0)

    model = handle.get_model(None)
    assert isinstance(model, OpenAIResponsesModel)
    assert model.model == "gpt-test"
    assert handle.hosted_tools == HOSTED_TOOLS == {"web_search", "file_search"}
    assert handle.model_settings.include_usage is None


def test_compat_runs_on_chat_completions_and_asks_for_usage() -> None:
    handle = model_provider(_config("compat:llama3", base_url="http://127.0.0.1:9/v1"), 0)

    model = handle.get_model(None)
    assert isinstance(model, OpenAIChatCompletionsModel)
    assert model.model == "llama3"
    assert handle.hosted_tools == frozenset()
    assert handle.model_settings.include_usage is True


def test_models_are_built_once_and_only_for_this_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    handle = model_provider(_config("openai:gpt-test"), 0)

    model = handle.get_model(None)
    assert handle.get_model("openai:gpt-test") is model
    assert handle.get_model("gpt-test") is model
    other = handle.get_model("openai:gpt-other")
    assert isinstance(other, OpenAIResponsesModel)
    assert other.model == "gpt-other"
    with pytest.raises(UserError, match="compat:llama3"):
        handle.get_model("compat:llama3")


@pytest.mark.parametrize(
    ("fields", "env", "message"),
    [
        ({"model": "openai:gpt-test"}, {}, r"agents\[2\]\.api_key_env: OPENAI_API_KEY is not set"),
        ({"model": "openai:gpt-test"}, {"OPENAI_API_KEY": ""}, r"OPENAI_API_KEY is not set"),
        (
            {"model": "openai:gpt-test", "api_key_env": "MY_KEY"},
            {"OPENAI_API_KEY": KEY},
            r"agents\[2\]\.api_key_env: MY_KEY is not set",
        ),
        (
            {
                "model": "compat:llama3",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "MY_KEY",
            },
            {},
            r"agents\[2\]\.api_key_env: MY_KEY is not set",
        ),
        ({"model": "echo"}, {}, r"agents\[2\]\.model: 'echo' is not run by a model provider"),
    ],
)
def test_an_agent_that_cannot_run_is_refused_naming_its_field(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], env: dict[str, str], message: str
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=message):
        model_provider(_config(**fields), 2)


# Runs against the fake server


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_text_streams_with_its_usage(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reply = text("Hello there, streaming world", parts=4, input_tokens=9, output_tokens=4)
    async with FakeOpenAI(reply) as fake, provider_on(fake, provider, monkeypatch) as handle:
        run = await stream(handle)

    assert run.text_deltas == reply.deltas
    assert len(reply.deltas) == 4
    assert run.result.final_output == "Hello there, streaming world"
    usage = run.result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (1, 9, 4)
    completed = [
        event.data
        for event in run.events
        if isinstance(event, RawResponsesStreamEvent)
        and isinstance(event.data, ResponseCompletedEvent)
    ]
    assert [event.response.usage and event.response.usage.total_tokens for event in completed] == [
        13
    ]
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", PATHS[provider])
    assert request.body["model"] == MODEL
    assert request.body["stream"] is True
    if provider == "compat":
        assert request.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_api_key_reaches_the_server_as_a_bearer_token(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeOpenAI(text("ok")) as fake, provider_on(fake, provider, monkeypatch) as handle:
        await stream(handle)

    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_a_compat_server_without_a_key_gets_a_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    async with (
        FakeOpenAI(text("ok")) as fake,
        provider_on(fake, "compat", monkeypatch, api_key_env=None) as handle,
    ):
        await stream(handle)

    assert fake.requests[0].headers["authorization"] == f"Bearer {NO_KEY}"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tool_call_runs_the_tool_and_sends_back_its_output(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = [tool_call("add", {"a": 2, "b": 3}, call_id="call_7", parts=3), text("It is 5.")]
    async with FakeOpenAI(*replies) as fake, provider_on(fake, provider, monkeypatch) as handle:
        run = await stream(handle, Agent(name="helper", model=handle.model, tools=[add]))

    assert run.result.final_output == "It is 5."
    [called] = run.items(ToolCallItem)
    assert json.loads(getattr(called.raw_item, "arguments", "")) == {"a": 2, "b": 3}
    [returned] = run.items(ToolCallOutputItem)
    assert returned.output == 5
    first, second = fake.requests
    assert "add" in json.dumps(first.body["tools"])
    if provider == "openai":
        assert {"call_id": "call_7", "output": "5", "type": "function_call_output"}.items() <= (
            second.body["input"][-1].items()
        )
    else:
        assert second.body["messages"][-1] == {
            "role": "tool",
            "tool_call_id": "call_7",
            "content": "5",
        }
    assert run.result.context_wrapper.usage.requests == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_handoff_is_a_call_to_the_transfer_tool(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = [handoff("billing-desk"), text("Billing here.")]
    async with FakeOpenAI(*replies) as fake, provider_on(fake, provider, monkeypatch) as handle:
        billing = Agent[Any](name="billing-desk", model=handle.model)
        run = await stream(handle, Agent(name="triage", model=handle.model, handoffs=[billing]))

    assert run.result.last_agent.name == "billing-desk"
    assert run.result.final_output == "Billing here."
    assert "transfer_to_billing_desk" in json.dumps(fake.requests[0].body["tools"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_run_that_does_not_stream_gets_the_whole_answer(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        FakeOpenAI(text("All at once.")) as fake,
        provider_on(fake, provider, monkeypatch) as handle,
    ):
        result = await Runner.run(
            Agent(name="helper", model=handle.model), "hi", run_config=run_config(handle)
        )

    assert result.final_output == "All at once."
    assert result.context_wrapper.usage.total_tokens == 17
    assert "stream" not in fake.requests[0].body


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stalled_stream_goes_on_when_released(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    reply = text("Slow and steady", parts=3).held(after=4, until=release)
    async with FakeOpenAI(reply) as fake, provider_on(fake, provider, monkeypatch) as handle:
        result = start(handle)
        deltas: list[str] = []
        async for event in result.stream_events():
            if isinstance(event, RawResponsesStreamEvent) and event.data.type.endswith(".delta"):
                deltas.append(getattr(event.data, "delta", ""))
                release.set()  # the first delta arrived before the stall: let the rest come

    assert "".join(deltas) == "Slow and steady"
    assert fake.disconnects == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_aclose_closes_the_pooled_connection(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeOpenAI(text("ok")) as fake:
        async with provider_on(fake, provider, monkeypatch) as handle:
            await stream(handle)
            assert fake.connections == 1  # kept alive for the next run

            await handle.aclose()
            await fake.wait_connections(0)
            await handle.aclose()  # idempotent

        assert fake.disconnects == 0
