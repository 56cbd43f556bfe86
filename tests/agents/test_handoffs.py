"""Handoffs through the real Agents SDK: events, the final agent, each agent's own setup."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from switchboard.server.agents import AgentError, AgentRun, AgentRuntime, build_runtimes
from switchboard.server.config import AgentConfig, Settings
from switchboard.server.domain import (
    AgentChanged,
    TokenUsage,
    ToolCalled,
    ToolKind,
    ToolRef,
    ToolReturned,
    UsageReported,
)
from tests.agents.conftest import Recorder


def _runtimes(*agents: AgentConfig) -> dict[str, AgentRuntime]:
    return build_runtimes(Settings(agents=list(agents), default_agent=agents[0].name))


def _usage(input_tokens: int, output_tokens: int) -> UsageReported:
    return UsageReported(TokenUsage(input_tokens, output_tokens, input_tokens + output_tokens))


async def test_a_handoff_moves_the_task_to_the_target_with_its_instructions(
    recorder: Recorder,
) -> None:
    runtimes = _runtimes(
        AgentConfig(name="triage", instructions="route it", handoffs=["billing"]),
        AgentConfig(name="billing", instructions="you handle money matters"),
    )
    run = AgentRun("t-1", "triage", "/handoff billing", instructions="be quick")

    outcome = await runtimes["triage"].run(run, recorder)

    assert outcome.agent == "billing"
    assert outcome.output_text.endswith("You said: /handoff billing")
    assert recorder.of(AgentChanged) == [AgentChanged("billing", previous="triage", handoff=True)]
    # The handoff is no tool call of ours: it shows as the agent change only.
    assert recorder.of(ToolCalled) == []
    # triage read its instructions and the task's (2 + 2) and the message (2), and called
    # transfer_to_billing (2 words); billing read only its own instructions (4) and the
    # message, and answered in 8 words.
    assert recorder.of(UsageReported) == [_usage(6, 2), _usage(6, 8)]
    kinds = [type(payload).__name__ for payload in recorder.payloads]
    assert kinds[:2] == ["UsageReported", "AgentChanged"]


async def test_agents_that_hand_off_to_each_other_build_and_run(recorder: Recorder) -> None:
    runtimes = _runtimes(
        AgentConfig(name="a", handoffs=["b"]), AgentConfig(name="b", handoffs=["a"])
    )

    outcome = await runtimes["a"].run(AgentRun("t-1", "a", "/handoff b\n/handoff a"), recorder)

    assert recorder.of(AgentChanged) == [
        AgentChanged("b", previous="a", handoff=True),
        AgentChanged("a", previous="b", handoff=True),
    ]
    assert outcome.agent == "a"
    assert len(recorder.of(UsageReported)) == 3


async def test_the_target_works_with_its_own_tools(recorder: Recorder) -> None:
    runtimes = _runtimes(
        AgentConfig(name="triage", tools=["current_time"], handoffs=["maths"]),
        AgentConfig(name="maths", tools=["calculator"]),
    )
    message = '/handoff maths\n/tool calculator {"expression": "2 ** 10"}'
    # The task narrows triage's tools; the agent it hands off to keeps all of its own.
    run = AgentRun("t-1", "triage", message, tools=(ToolRef(ToolKind.FUNCTION, "current_time"),))

    outcome = await runtimes["triage"].run(run, recorder)

    assert runtimes["triage"].tools == frozenset({"current_time"})
    assert outcome.agent == "maths"
    assert recorder.of(ToolReturned) == [ToolReturned("call_offline_2", "1024")]
    assert outcome.output_text.endswith("\ncalculator returned: 1024")
    kinds = [type(p).__name__ for p in recorder.payloads if not isinstance(p, UsageReported)]
    assert kinds[:3] == ["AgentChanged", "ToolCalled", "ToolReturned"]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening) while in use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_the_target_runs_on_its_own_provider(recorder: Recorder, refused_port: int) -> None:
    runtimes = _runtimes(
        AgentConfig(name="local", handoffs=["remote"]),
        AgentConfig(
            name="remote", model="compat:tiny", base_url=f"http://127.0.0.1:{refused_port}/v1"
        ),
    )
    try:
        # The offline model hands off; the compat model then calls its own server.
        with pytest.raises(AgentError) as raised:
            await runtimes["local"].run(AgentRun("t-1", "local", "/handoff remote"), recorder)
    finally:
        for runtime in runtimes.values():
            await runtime.aclose()

    assert recorder.of(AgentChanged) == [AgentChanged("remote", previous="local", handoff=True)]
    assert (raised.value.reason, raised.value.retryable) == ("MODEL_UNAVAILABLE", True)
    assert "APIConnectionError" in raised.value.message
