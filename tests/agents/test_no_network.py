"""Runs never reach the network: no API key needed, no trace export to OpenAI."""

from __future__ import annotations

import socket
from typing import Any

import agents
import pytest
from agents.tracing import get_trace_provider
from agents.tracing.provider import DefaultTraceProvider

from switchboard.server.agents import AgentRun, build_runtimes
from switchboard.server.agents.tracing_bridge import OtelBridge
from switchboard.server.config import Settings
from tests.agents.conftest import Recorder


def test_the_sdk_trace_provider_has_only_the_opentelemetry_bridge() -> None:
    build_runtimes(Settings())  # the setup the server does

    provider = get_trace_provider()
    assert isinstance(provider, DefaultTraceProvider)
    # Private, but the point: no BatchTraceProcessor with OpenAI's exporter is registered.
    processors = provider._multi_processor._processors
    assert [type(processor) for processor in processors] == [OtelBridge]


async def test_a_run_without_an_api_key_opens_no_connection(
    monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network use in a test")

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runtimes = build_runtimes(Settings())
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)

    with agents.trace("probe"):  # even an explicit trace has nowhere to go
        outcome = await runtimes["assistant"].run(AgentRun("t-1", "assistant", "hi"), recorder)

    assert outcome.output_text.endswith("You said: hi")
    assert attempts == []
