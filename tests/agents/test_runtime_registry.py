"""build_runtimes: one runtime per configured agent, by model string; bad ones refused."""

from __future__ import annotations

import pytest

from switchboard.server.agents import (
    AgentRun,
    EchoRuntime,
    ModelRegistry,
    OfflineModel,
    SdkRuntime,
    build_runtimes,
)
from switchboard.server.config import AgentConfig, Settings
from tests.agents.conftest import Recorder


def _settings(*agents: AgentConfig) -> Settings:
    return Settings(agents=list(agents), default_agent=agents[0].name)


async def test_default_settings_get_the_offline_assistant_and_echo(recorder: Recorder) -> None:
    runtimes = build_runtimes(Settings())

    assert list(runtimes) == ["assistant", "echo"]
    assert isinstance(runtimes["assistant"], SdkRuntime)
    assert isinstance(runtimes["echo"], EchoRuntime)
    outcome = await runtimes["assistant"].run(AgentRun("t-1", "assistant", "hi"), recorder)
    assert outcome.output_text.endswith("You said: hi")


async def test_every_sdk_agent_runs_under_its_own_name(recorder: Recorder) -> None:
    runtimes = build_runtimes(
        _settings(
            AgentConfig(name="first", model="offline"),
            AgentConfig(name="second", model="offline"),
        )
    )

    outcome = await runtimes["second"].run(AgentRun("t-1", "second", "hi"), recorder)

    assert outcome.agent == "second"


@pytest.mark.parametrize("model", ["foo", "offline:mini", "openai:gpt-4o", "", "ECHO", "echo:x"])
def test_an_unknown_model_string_names_the_agent_and_field(model: str) -> None:
    settings = _settings(
        AgentConfig(name="a", model="offline"),
        AgentConfig(name="b", model="echo"),
        AgentConfig(name="c", model=model),
    )

    with pytest.raises(ValueError, match=r"^agents\[2\]\.model: unknown model ") as raised:
        build_runtimes(settings)

    assert str(raised.value) == (
        f"agents[2].model: unknown model {model!r} (expected 'offline' or 'echo')"
    )


def test_the_model_registry_builds_each_model_once() -> None:
    registry = ModelRegistry()

    first = registry.get_model("offline")

    assert isinstance(first, OfflineModel)
    assert registry.get_model("offline") is first
    assert registry.names == ["offline"]
    assert registry.supports("offline")
    assert not registry.supports("offline:other")


def test_the_model_registry_resolves_prefixes_and_refuses_unknown_names() -> None:
    seen: list[str] = []

    def build(name: str) -> OfflineModel:
        seen.append(name)
        return OfflineModel()

    registry = ModelRegistry({"local:": build})

    registry.get_model("local:small")
    registry.get_model("local:large")
    registry.get_model("local:small")
    assert seen == ["small", "large"]
    with pytest.raises(Exception, match="unknown model 'local'"):
        registry.get_model("local")
    with pytest.raises(Exception, match="unknown model ''"):
        registry.get_model(None)
