"""Runs of the real Agents SDK on providers that point at the fake OpenAI server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from agents import Agent, ModelSettings, RunConfig, Runner, RunResultStreaming, StreamEvent
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from switchboard.server.agents.providers import (
    DEFAULT_TIMEOUT,
    ProviderHandle,
    Timeout,
    model_provider,
)
from switchboard.server.config import AgentConfig
from tests.fakes.openai_server import FakeOpenAI

KEY_ENV = "SWITCHBOARD_TEST_PROVIDER_KEY"
KEY = "sk-test-fake-key"
MODEL = "fake-model"

ItemT = TypeVar("ItemT")


@contextlib.asynccontextmanager
async def provider_on(
    fake: FakeOpenAI,
    provider: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    api_key_env: str | None = KEY_ENV,
    timeout: Timeout = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (the client's, not ours)
) -> AsyncIterator[ProviderHandle]:
    """The handle of an ``openai`` or ``compat`` agent on ``fake``, closed on exit.

    The key variable ``KEY_ENV`` is set to ``KEY`` for the test.
    """
    monkeypatch.setenv(KEY_ENV, KEY)
    config = AgentConfig(
        name="helper", model=f"{provider}:{MODEL}", base_url=fake.base_url, api_key_env=api_key_env
    )
    handle = model_provider(config, 0, timeout=timeout)
    try:
        yield handle
    finally:
        await handle.aclose()


def run_config(handle: ProviderHandle, settings: ModelSettings | None = None) -> RunConfig:
    """The run configuration for ``handle``: its provider and model settings, no tracing."""
    model_settings = handle.model_settings.resolve(settings) if settings else handle.model_settings
    return RunConfig(model_provider=handle, model_settings=model_settings, tracing_disabled=True)


@dataclass
class StreamedRun:
    """A finished streamed run and every event it streamed."""

    result: RunResultStreaming
    events: list[StreamEvent]

    @property
    def text_deltas(self) -> list[str]:
        """The output text deltas, in order."""
        return [
            event.data.delta
            for event in self.events
            if isinstance(event, RawResponsesStreamEvent)
            and isinstance(event.data, ResponseTextDeltaEvent)
        ]

    def items(self, kind: type[ItemT]) -> list[ItemT]:
        """The run items of one kind (tool calls, tool outputs...), in order."""
        return [
            event.item
            for event in self.events
            if isinstance(event, RunItemStreamEvent) and isinstance(event.item, kind)
        ]


def start(
    handle: ProviderHandle,
    agent: Agent[Any] | None = None,
    *,
    settings: ModelSettings | None = None,
) -> RunResultStreaming:
    """Start a streamed run of ``agent`` (default: one on the handle's model) saying hi."""
    agent = agent or Agent(name="helper", model=handle.model)
    return Runner.run_streamed(agent, "hi", run_config=run_config(handle, settings))


async def stream(
    handle: ProviderHandle,
    agent: Agent[Any] | None = None,
    *,
    settings: ModelSettings | None = None,
) -> StreamedRun:
    """Run to the end (see ``start``), keeping the events; failures propagate."""
    result = start(handle, agent, settings=settings)
    return StreamedRun(result, [event async for event in result.stream_events()])
