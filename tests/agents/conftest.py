"""Helpers for the agent runtime tests: an event recorder, SDK runtimes on any model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from agents import Model

from switchboard.server.agents import ModelRegistry, SdkRuntime
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


def runtime_on(model: Model, *, name: str = "helper", instructions: str = "") -> SdkRuntime:
    """An SdkRuntime for one agent whose model string ``scripted`` resolves to ``model``."""
    config = AgentConfig(name=name, model="scripted", instructions=instructions)
    return SdkRuntime(config, ModelRegistry({"scripted": lambda _name: model}))
