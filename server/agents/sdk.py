"""The OpenAI Agents SDK behind our runtime seam.

``SdkRuntime`` runs one configured agent with ``Runner.run_streamed``, handing the SDK our
``ModelRegistry`` as the run's model provider (never through the SDK's process-wide
setters), and translates the SDK's stream into domain events: text deltas, tool calls and
results, handoffs, and one ``UsageReported`` per model response with the usage that model
reported.

Importing this module switches off the SDK's trace export (see ``disable_sdk_tracing``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import openai
from agents import (
    Agent,
    AgentUpdatedStreamEvent,
    MaxTurnsExceeded,
    ModelTimeoutError,
    RawResponsesStreamEvent,
    RunConfig,
    Runner,
    StreamEvent,
    ToolCallItem,
    ToolCallOutputItem,
    set_trace_provider,
)
from agents.tracing.provider import DefaultTraceProvider
from openai.types.responses import ResponseCompletedEvent, ResponseTextDeltaEvent

from switchboard.server.agents.models import ModelRegistry
from switchboard.server.agents.runtime import AgentError, AgentOutcome, AgentRun, Emit
from switchboard.server.config import AgentConfig
from switchboard.server.domain import (
    AgentChanged,
    EventPayload,
    OutputDelta,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)

# HTTP statuses after which another attempt may succeed (besides 5xx).
_RETRYABLE_STATUSES = frozenset({408, 409, 429})


def disable_sdk_tracing() -> None:
    """Give the SDK a trace provider with no processors, so no trace leaves the process.

    The SDK's default provider posts traces (inputs and outputs included) to OpenAI's
    servers. Installing a fresh provider means that exporter, and its HTTP client, are
    never even built. A bridge to OpenTelemetry would register its processor here.
    """
    set_trace_provider(DefaultTraceProvider())


# Before any run of ours can start a trace.
disable_sdk_tracing()


class SdkRuntime:
    """Runs tasks for one configured agent on the Agents SDK.

    The task's instructions are appended to the agent's configured ones. Text deltas
    cover every model response of the run; ``output_text`` is the final output only.
    """

    def __init__(self, config: AgentConfig, models: ModelRegistry) -> None:
        self._instructions = config.instructions
        # Built once and reused: only tasks with their own instructions get a clone.
        self._agent = Agent[Any](
            name=config.name, instructions=config.instructions or None, model=config.model
        )
        self._run_config = RunConfig(
            model_provider=models,
            # Nothing consumes the SDK's spans yet: don't build them.
            tracing_disabled=True,
        )

    async def run(self, run: AgentRun, emit: Emit) -> AgentOutcome:
        """Run the task to its final output, emitting events as the SDK streams them."""
        if run.tools:
            names = ", ".join(tool.name or tool.kind.value for tool in run.tools)
            raise AgentError(
                f"agent {self._agent.name!r} has no tools ({names} asked for)",
                reason="TOOLS_UNSUPPORTED",
            )
        result = Runner.run_streamed(self._agent_for(run), run.input, run_config=self._run_config)
        translate = _Translator(self._agent.name)
        events = result.stream_events()
        try:
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise _agent_error(exc) from exc
                payload = translate(event)
                if payload is not None:
                    await emit(payload)
        finally:
            # Leaving the stream early (cancelled, or emit failed) leaves the run going: stop
            # it, close the stream, and let the run (and its model stream) wind down first.
            if not result.is_complete:
                result.cancel()
            if isinstance(events, AsyncGenerator):  # typed as a mere iterator
                await events.aclose()
            if result.run_loop_task is not None and not result.run_loop_task.done():
                await asyncio.wait([result.run_loop_task])
        output = result.final_output
        return AgentOutcome(
            output_text=output if isinstance(output, str) else str(output),
            agent=result.last_agent.name,
        )

    def _agent_for(self, run: AgentRun) -> Agent[Any]:
        if not run.instructions:
            return self._agent
        instructions = "\n\n".join(filter(None, (self._instructions, run.instructions)))
        return self._agent.clone(instructions=instructions)


class _Translator:
    """SDK stream events to domain payloads; remembers which agent is working."""

    def __init__(self, agent: str) -> None:
        self._agent = agent

    def __call__(self, event: StreamEvent) -> EventPayload | None:
        if isinstance(event, RawResponsesStreamEvent):
            data = event.data
            if isinstance(data, ResponseTextDeltaEvent):
                return OutputDelta(data.delta)
            if isinstance(data, ResponseCompletedEvent) and data.response.usage is not None:
                usage = data.response.usage
                return UsageReported(
                    TokenUsage(usage.input_tokens, usage.output_tokens, usage.total_tokens)
                )
            return None
        if isinstance(event, AgentUpdatedStreamEvent):
            # The SDK announces the first agent too; the orchestrator already has.
            if event.new_agent.name == self._agent:
                return None
            previous, self._agent = self._agent, event.new_agent.name
            return AgentChanged(self._agent, previous=previous, handoff=True)
        item = event.item
        if isinstance(item, ToolCallItem):
            arguments = _field(item.raw_item, "arguments")
            return ToolCalled(
                call_id=item.call_id or "",
                name=item.tool_name or "",
                arguments_json=arguments if isinstance(arguments, str) else "",
            )
        if isinstance(item, ToolCallOutputItem):
            return ToolReturned(call_id=item.call_id or "", output=str(item.output))
        return None


def _field(raw: object, name: str) -> object:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _agent_error(exc: Exception) -> AgentError:
    """The AgentError for a failed run: retryable when the failure looks transient."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return AgentError(message, reason="MODEL_UNAVAILABLE", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return AgentError(
            message,
            reason="MODEL_RATE_LIMITED" if status == 429 else "MODEL_ERROR",
            retryable=status in _RETRYABLE_STATUSES or status >= 500,
        )
    if isinstance(exc, ModelTimeoutError):
        return AgentError(message, reason="MODEL_TIMEOUT", retryable=True)
    if isinstance(exc, MaxTurnsExceeded):
        return AgentError(message, reason="MAX_TURNS_EXCEEDED")
    return AgentError(message)
