"""The OpenAI Agents SDK behind our runtime seam.

``SdkRuntime`` runs one configured agent with ``Runner.run_streamed``, handing the SDK
the agent's own provider as the run's model provider (never through the SDK's
process-wide setters), and translates the SDK's stream into domain events: text deltas,
tool calls and results (``is_error`` when the tool failed), handoffs, and one
``UsageReported`` per model response with the usage that model reported.

Importing this module replaces the SDK's trace export, which would post traces to
OpenAI, with the bridge to OpenTelemetry (see ``bridge_sdk_tracing``). A run makes SDK
spans only when an OpenTelemetry span is recording where it starts (the orchestrator's
``agent run``), that is, when the service's tracing is on.
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
    ModelProvider,
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
from opentelemetry import trace

from switchboard.server.agents.runtime import (
    AgentError,
    AgentOutcome,
    AgentRun,
    Emit,
    tool_name,
)
from switchboard.server.agents.tools import FailedCalls
from switchboard.server.agents.tracing_bridge import OtelBridge
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


def bridge_sdk_tracing() -> None:
    """Give the SDK a trace provider whose only processor is the OpenTelemetry bridge.

    The SDK's default provider posts traces (inputs and outputs included) to OpenAI's
    servers. Installing a fresh provider means that exporter, and its HTTP client, are
    never even built.
    """
    provider = DefaultTraceProvider()
    provider.set_processors([OtelBridge()])
    set_trace_provider(provider)


# Before any run of ours can start a trace.
bridge_sdk_tracing()


class SdkRuntime:
    """Runs tasks for one configured agent on the Agents SDK.

    ``agent`` is the agent's SDK ``Agent``, built once with its model (a ``Model``
    object of its own provider, so a handoff between agents on different providers runs
    each on its own), model settings, tools and handoffs; ``provider`` is that agent's
    provider, closed by ``aclose``. The task's instructions are appended to the agent's
    configured ones, and the tools it names narrow the agent's. Text deltas cover every
    model response of the run; ``output_text`` is the final output only.
    """

    def __init__(self, agent: Agent[Any], provider: ModelProvider) -> None:
        self._agent = agent
        self._instructions = agent.instructions if isinstance(agent.instructions, str) else ""
        self._tools = {tool.name: tool for tool in agent.tools}
        self._provider = provider
        # By whether the run is traced (see the module doc): untraced runs build no spans.
        self._run_configs = {
            traced: RunConfig(
                # Every agent carries its own Model: the provider resolves nothing in
                # practice, but the SDK's default (built from process-wide settings) is
                # never used.
                model_provider=provider,
                tracing_disabled=not traced,
                # Task inputs and outputs never reach spans.
                trace_include_sensitive_data=False,
                # The orchestrator's agent run span already stands for the whole task.
                tracing={"include_task_and_turn_spans": False},
            )
            for traced in (False, True)
        }

    @property
    def tools(self) -> frozenset[str]:
        """The agent's tools by the names tasks ask for them (see ``tool_name``)."""
        return frozenset(self._tools)

    async def run(self, run: AgentRun, emit: Emit) -> AgentOutcome:
        """Run the task to its final output, emitting events as the SDK streams them."""
        failed = FailedCalls()
        run_config = self._run_configs[trace.get_current_span().is_recording()]
        result = Runner.run_streamed(
            self._agent_for(run), run.input, context=failed, run_config=run_config
        )
        translate = _Translator(self._agent.name, failed)
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

    async def aclose(self) -> None:
        """Close the agent's provider (its HTTP client)."""
        await self._provider.aclose()

    def _agent_for(self, run: AgentRun) -> Agent[Any]:
        """The agent itself, or a clone with the task's instructions and tools."""
        changes: dict[str, Any] = {}
        if run.instructions:
            changes["instructions"] = "\n\n".join(
                filter(None, (self._instructions, run.instructions))
            )
        if run.tools:
            wanted = {tool_name(tool) for tool in run.tools}
            missing = sorted(wanted - self._tools.keys())
            if missing:
                # The orchestrator refuses such tasks before they run: this is a guard.
                raise AgentError(
                    f"agent {self._agent.name!r} has no tool {', '.join(missing)}",
                    reason="TOOL_UNAVAILABLE",
                )
            changes["tools"] = [tool for name, tool in self._tools.items() if name in wanted]
        # Built once and reused: only tasks with their own instructions or tools get a clone.
        return self._agent.clone(**changes) if changes else self._agent


class _Translator:
    """SDK stream events to domain payloads; remembers which agent is working.

    ``failed`` is the run's context, where failed tool calls are noted.
    """

    def __init__(self, agent: str, failed: FailedCalls) -> None:
        self._agent = agent
        self._failed = failed

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
            call_id = item.call_id or ""
            return ToolReturned(call_id, str(item.output), is_error=call_id in self._failed.ids)
        return None


def _field(raw: object, name: str) -> object:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _agent_error(exc: Exception) -> AgentError:
    """The AgentError for a failed run: retryable when the failure looks transient."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APITimeoutError | ModelTimeoutError):
        return AgentError(message, reason="MODEL_TIMEOUT", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return AgentError(message, reason="MODEL_UNAVAILABLE", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        return AgentError(
            message,
            reason="MODEL_RATE_LIMITED" if status == 429 else "MODEL_ERROR",
            retryable=status in _RETRYABLE_STATUSES or status >= 500,
        )
    if isinstance(exc, MaxTurnsExceeded):
        return AgentError(message, reason="MAX_TURNS_EXCEEDED")
    return AgentError(message)
