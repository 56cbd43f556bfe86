"""Helpers for the agent runtime tests: an event recorder, SDK runtimes on any model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from agents import Agent, Model, Tool

from switchboard.server.agents import SdkRuntime, model_provider
from switchboard.server.config import AgentConfig
from switchboard.server.domain import EventPayload

P = TypeVar("P")


@dataclass
class Recorder:
    """An ``emit`` that keeps every payload it is given."""

    payloads: list[EventPayload] = field(default_factory=list)

    async def __call__(self, payload: EventPayload) -> None:
        self.payloads.append(payload)

    def of(self, kind: type[P]) -> list[P]:
        """The payloads of one kind, in order."""
        return [p for p in self.payloads if isinstance(p, kind)]


@pytest.fixture
def recorder() -> Recorder:
    """A fresh recorder to pass as ``emit``."""
    return Recorder()


def runtime_on(
    model: Model, *, name: str = "helper", instructions: str = "", tools: Sequence[Tool] = ()
) -> SdkRuntime:
    """An SdkRuntime for one agent running on ``model`` (its provider: the offline one)."""
    agent = Agent[Any](name=name, instructions=instructions or None, model=model, tools=[*tools])
    return SdkRuntime(agent, model_provider(AgentConfig(name=name), 0))
