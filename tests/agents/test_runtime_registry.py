"""build_runtimes: one runtime per configured agent; every bad configuration refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Model, ModelProvider
from pydantic import ValidationError

from switchboard.server.agents import (
    AgentRun,
    EchoRuntime,
    OfflineModel,
    SdkRuntime,
    build_runtimes,
)
from switchboard.server.config import AgentConfig, Settings
from tests.agents.conftest import Recorder


def _settings(*agents: AgentConfig, **settings: Any) -> Settings:
    return Settings(agents=list(agents), default_agent=agents[0].name, **settings)


async def test_default_settings_get_the_offline_assistant_and_echo(recorder: Recorder) -> None:
    runtimes = build_runtimes(Settings())

    assert list(runtimes) == ["assistant", "echo"]
    assert isinstance(runtimes["assistant"], SdkRuntime)
    assert isinstance(runtimes["echo"], EchoRuntime)
    assert runtimes["assistant"].tools == runtimes["echo"].tools == frozenset()
    outcome = await runtimes["assistant"].run(AgentRun("t-1", "assistant", "hi"), recorder)
    assert outcome.output_text.endswith("You said: hi")


async def test_every_sdk_agent_runs_under_its_own_name(recorder: Recorder) -> None:
    runtimes = build_runtimes(
        _settings(
            AgentConfig(name="first", model="echo"),
            AgentConfig(name="second", model="offline"),
            AgentConfig(name="third", model="offline"),
        )
    )

    outcome = await runtimes["second"].run(AgentRun("t-1", "second", "hi"), recorder)

    assert list(runtimes) == ["first", "second", "third"]
    assert outcome.agent == "second"


def test_runtime_tools_are_what_a_task_may_ask_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    runtimes = build_runtimes(
        _settings(
            AgentConfig(
                name="local",
                tools=["calculator", "tests.agents.sample_tools:word_count", "file_search"],
            ),
            AgentConfig(
                name="cloud",
                model="openai:gpt-4o",
                tools=["web_search", "file_search", "http_fetch"],
            ),
            tools={"file_search_dir": tmp_path, "vector_store_ids": ["vs_1"]},
        )
    )

    assert runtimes["local"].tools == frozenset({"calculator", "word_count", "file_search"})
    assert runtimes["cloud"].tools == frozenset({"web_search", "file_search", "http_fetch"})


@pytest.mark.parametrize("model", ["foo", "offline:mini", "", "ECHO", "echo:x", "openai:"])
def test_the_settings_refuse_an_unknown_model_string(model: str) -> None:
    with pytest.raises(ValidationError, match=r"agents\.2\.model\n.*must be 'offline', 'echo'"):
        _settings(
            AgentConfig(name="a", model="offline"),
            AgentConfig(name="b", model="echo"),
            {"name": "c", "model": model},
        )


_ONE = AgentConfig(name="one")


@pytest.mark.parametrize(
    ("agent", "settings", "error"),
    [
        (
            AgentConfig(name="two", tools=["calculator", "abacus"]),
            {},
            "agents[1].tools[1]: unknown tool 'abacus' (expected one of",
        ),
        (
            AgentConfig(name="two", tools=["tests.agents.sample_tools:nothing"]),
            {},
            "agents[1].tools[0]: module 'tests.agents.sample_tools' has no attribute 'nothing'",
        ),
        (
            AgentConfig(name="two", tools=["web_search"]),
            {},
            "agents[1].tools[0]: web_search needs a provider that hosts it (an openai: model)",
        ),
        (
            AgentConfig(
                name="two",
                model="compat:llama",
                base_url="http://127.0.0.1:1/v1",
                tools=["web_search"],
            ),
            {},
            "agents[1].tools[0]: web_search needs a provider that hosts it",
        ),
        (
            AgentConfig(name="two", tools=["file_search"]),
            {"tools": {"vector_store_ids": ["vs_1"]}},
            "agents[1].tools[0]: file_search needs tools.file_search_dir",
        ),
        (
            AgentConfig(name="two", model="openai:gpt-4o"),
            {},
            "agents[1].api_key_env: OPENAI_API_KEY is not set",
        ),
        (
            AgentConfig(name="two", model="openai:gpt-4o", api_key_env="MY_KEY"),
            {},
            "agents[1].api_key_env: MY_KEY is not set",
        ),
        (
            AgentConfig(name="two", model="echo", tools=["calculator"]),
            {},
            "agents[1].tools: the echo model calls no tools",
        ),
        (
            AgentConfig(name="two", model="echo", handoffs=["one"]),
            {},
            "agents[1].handoffs: the echo model hands nothing off",
        ),
        (
            AgentConfig(name="two", handoffs=["one", "three"]),
            {"extra": AgentConfig(name="three", model="echo")},
            "agents[1].handoffs[1]: agent 'three' runs the echo model, which cannot take a handoff",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, AgentConfig) else None,
)
def test_a_configuration_that_cannot_run_names_the_field(
    monkeypatch: pytest.MonkeyPatch, agent: AgentConfig, settings: dict[str, Any], error: str
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    extra = settings.pop("extra", None)
    agents = [_ONE, agent, *([extra] if extra else [])]

    with pytest.raises(ValueError, match=f"^{re.escape(error)}"):
        build_runtimes(_settings(*agents, **settings))


def test_the_settings_refuse_an_unknown_handoff_target() -> None:
    with pytest.raises(ValidationError, match=r"agents\[1\]\.handoffs\[0\]: no agent named 'x'"):
        _settings(_ONE, AgentConfig(name="two", handoffs=["x"]))


class _ClosingProvider(ModelProvider):
    """An SDK model provider that records being closed."""

    def __init__(self) -> None:
        self.closed = 0

    def get_model(self, model_name: str | None) -> Model:
        return OfflineModel()

    async def aclose(self) -> None:
        self.closed += 1


async def test_aclose_closes_the_agents_provider() -> None:
    provider = _ClosingProvider()
    runtime = SdkRuntime(Agent[Any](name="one", model=OfflineModel()), provider)

    await runtime.aclose()

    assert provider.closed == 1


async def test_every_runtime_closes_even_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    runtimes = build_runtimes(
        _settings(
            AgentConfig(name="one"),
            AgentConfig(name="two", model="echo"),
            AgentConfig(name="three", model="openai:gpt-4o"),
            AgentConfig(name="four", model="compat:llama", base_url="http://127.0.0.1:1/v1"),
        )
    )

    for _ in range(2):
        for runtime in runtimes.values():
            await runtime.aclose()
