"""A model provider at the edge of the world that tests can steer.

It answers like the offline model, but a test can hold a run at its start until it
lets it go, learn when a run started, and make attempts fail the ways a provider
fails. Runs go through the real Agents SDK runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, ModelTimeoutError
from agents.items import TResponseStreamEvent
from typing_extensions import override

from switchboard.server.agents import OfflineModel, SdkRuntime, model_provider
from switchboard.server.agents.runtime import AgentRuntime
from switchboard.server.config import AgentConfig, Settings


def _user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    content = items[-1].get("content") if items else ""
    return content if isinstance(content, str) else str(content)


class ScriptedModel(OfflineModel):
    """The offline model, with gates and scripted failures keyed by the task input."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.failures: dict[str, list[Exception]] = {}
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.closed: asyncio.Queue[str] = asyncio.Queue()

    def hold(self, text: str) -> asyncio.Event:
        """Make runs of ``text`` wait at their start until the returned event is set."""
        return self.gates.setdefault(text, asyncio.Event())

    def fail(self, text: str, *errors: Exception) -> None:
        """Make the next attempts of ``text`` fail with ``errors``, one per attempt."""
        self.failures[text] = list(errors)

    async def wait_started(self, count: int = 1) -> list[str]:
        """The inputs of the next ``count`` runs to start."""
        return [await self.started.get() for _ in range(count)]

    @override
    async def stream_response(  # type: ignore[override]
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        text = _user_text(input)
        self.started.put_nowait(text)
        try:
            gate = self.gates.get(text)
            if gate is not None:
                await gate.wait()
            failures = self.failures.get(text)
            if failures:
                raise failures.pop(0)
            async for event in super().stream_response(system_instructions, input, *args, **kwargs):
                yield event
        finally:
            self.closed.put_nowait(text)


def scripted_runtimes(model: ScriptedModel) -> Any:
    """A runtime factory running every configured agent on ``model``."""

    def build(settings: Settings) -> dict[str, AgentRuntime]:
        return {
            agent.name: SdkRuntime(
                Agent[Any](name=agent.name, instructions=agent.instructions or None, model=model),
                model_provider(AgentConfig(name=agent.name), index),
            )
            for index, agent in enumerate(settings.agents)
        }

    return build


def provider_timeout() -> Exception:
    """A failure worth retrying: the provider took too long."""
    return ModelTimeoutError(5.0)
