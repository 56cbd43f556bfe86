"""SdkRuntime through the real Agents SDK runner: the offline model, then scripted ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest
from agents import (
    Agent,
    AgentUpdatedStreamEvent,
    ModelTimeoutError,
    RunItemStreamEvent,
    ToolCallItem,
    ToolCallOutputItem,
    Usage,
)
from agents.items import TResponseStreamEvent
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message
from openai.types.responses import ResponseFunctionToolCall, ResponseTextDeltaEvent

from switchboard.server.agents import (
    AgentError,
    AgentOutcome,
    AgentRun,
    OfflineModel,
    SdkRuntime,
)
from switchboard.server.agents.offline import ANSWER_PREFIX
from switchboard.server.agents.sdk import _Translator
from switchboard.server.agents.tools import FailedCalls
from switchboard.server.domain import (
    AgentChanged,
    EventPayload,
    OutputDelta,
    TokenUsage,
    ToolCalled,
    ToolKind,
    ToolRef,
    ToolReturned,
    UsageReported,
)
from tests.agents.conftest import Recorder, runtime_on


def _offline(instructions: str = "") -> SdkRuntime:
    return runtime_on(OfflineModel(), name="assistant", instructions=instructions)


def _run(text: str, instructions: str = "") -> AgentRun:
    return AgentRun(task_id="t-1", agent="assistant", input=text, instructions=instructions)


async def test_offline_run_streams_deltas_that_add_up_to_the_output(recorder: Recorder) -> None:
    outcome = await _offline().run(_run("tell me about the weather"), recorder)

    assert outcome == AgentOutcome(f"{ANSWER_PREFIX} tell me about the weather", "assistant")
    deltas = [d.text for d in recorder.of(OutputDelta)]
    assert len(deltas) == 11
    assert "".join(deltas) == outcome.output_text
    assert recorder.of(AgentChanged) == []


async def test_offline_run_is_deterministic() -> None:
    runtime = _offline("answer kindly")
    first, second = Recorder(), Recorder()

    outcomes = [
        await runtime.run(_run("same input"), first),
        await runtime.run(_run("same input"), second),
    ]

    assert outcomes[0] == outcomes[1]
    assert first.payloads == second.payloads


async def test_usage_is_reported_once_per_model_call_as_the_model_counted_it(
    recorder: Recorder,
) -> None:
    run = _run("count these four words", instructions="and these three")
    outcome = await _offline(instructions="configured two").run(run, recorder)

    # The offline model counts words: of the instructions it got and the message (2 + 3 + 4),
    # and of its answer (6 + 4).
    assert recorder.of(UsageReported) == [UsageReported(TokenUsage(9, 10, 19))]
    assert len(outcome.output_text.split()) == 10
    # Usage comes after the text it counts.
    assert isinstance(recorder.payloads[-1], UsageReported)


async def test_task_instructions_are_appended_to_the_agents_own(recorder: Recorder) -> None:
    model = ScriptedModel([[assistant_message("one")], [assistant_message("two")]])
    runtime = runtime_on(model, instructions="You are terse.")

    await runtime.run(_run("hi", instructions="Answer in French."), recorder)
    await runtime.run(_run("hi"), recorder)

    assert [call.system_instructions for call in model.calls] == [
        "You are terse.\n\nAnswer in French.",
        "You are terse.",
    ]


async def test_task_instructions_alone_when_the_agent_has_none(recorder: Recorder) -> None:
    model = ScriptedModel([[assistant_message("ok")]])

    await runtime_on(model).run(_run("hi", instructions="Be brief."), recorder)

    assert model.calls[0].system_instructions == "Be brief."
    assert model.calls[0].streamed


async def test_scripted_usage_is_passed_through_unchanged(recorder: Recorder) -> None:
    usage = Usage(requests=1, input_tokens=120, output_tokens=7, total_tokens=127)
    model = ScriptedModel([ModelStep(output=[assistant_message("fine")], usage=usage)])

    outcome = await runtime_on(model).run(_run("hi"), recorder)

    assert outcome == AgentOutcome("fine", "helper")
    assert [u.usage for u in recorder.of(UsageReported)] == [TokenUsage(120, 7, 127)]


@pytest.mark.parametrize("emit_blocks", [False, True], ids=["waiting-on-model", "inside-emit"])
async def test_cancelling_the_caller_stops_the_model_stream(
    recorder: Recorder, emit_blocks: bool
) -> None:
    streaming, stopped = asyncio.Event(), asyncio.Event()

    async def hanging_stream(_call: ModelCall) -> AsyncIterator[TResponseStreamEvent]:
        try:
            yield _delta("partial ")
            while True:  # the model keeps streaming until it is stopped
                await asyncio.sleep(0)
                yield _delta("more ")
        finally:
            stopped.set()

    async def emit(payload: EventPayload) -> None:
        await recorder(payload)
        streaming.set()
        if emit_blocks:  # e.g. a slow store: cancellation lands in emit, not in the SDK
            await asyncio.Event().wait()

    runtime = runtime_on(ScriptedModel([ModelStep.stream(hanging_stream)]))
    task = asyncio.create_task(runtime.run(_run("hi"), emit))
    await streaming.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    # The run wound down before run() returned: the model's stream is closed.
    assert stopped.is_set()
    assert recorder.payloads[0] == OutputDelta("partial ")


async def test_a_failing_emit_stops_the_run_and_propagates_unchanged() -> None:
    stopped = asyncio.Event()

    async def endless_stream(_call: ModelCall) -> AsyncIterator[TResponseStreamEvent]:
        try:
            while True:
                yield _delta("more ")
                await asyncio.sleep(0)  # as a network stream would between chunks
        finally:
            stopped.set()

    async def broken_emit(_payload: object) -> None:
        raise OSError("store is down")

    runtime = runtime_on(ScriptedModel([ModelStep.stream(endless_stream)]))
    with pytest.raises(OSError, match="store is down"):
        await runtime.run(_run("hi"), broken_emit)
    assert stopped.is_set()


_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/responses")


def _status(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    return cls("refused", response=httpx2.Response(status, request=_REQUEST), body=None)


@pytest.mark.parametrize(
    ("error", "reason", "retryable"),
    [
        (openai.APIConnectionError(request=_REQUEST), "MODEL_UNAVAILABLE", True),
        (openai.APITimeoutError(request=_REQUEST), "MODEL_TIMEOUT", True),
        (_status(openai.RateLimitError, 429), "MODEL_RATE_LIMITED", True),
        (_status(openai.InternalServerError, 503), "MODEL_ERROR", True),
        (_status(openai.BadRequestError, 400), "MODEL_ERROR", False),
        (_status(openai.AuthenticationError, 401), "MODEL_ERROR", False),
        (ModelTimeoutError(30.0), "MODEL_TIMEOUT", True),
        (ValueError("bad things"), "AGENT_FAILED", False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_model_failures_become_agent_errors(
    recorder: Recorder, error: Exception, reason: str, retryable: bool
) -> None:
    runtime = runtime_on(ScriptedModel([error]))

    with pytest.raises(AgentError) as raised:
        await runtime.run(_run("hi"), recorder)

    assert (raised.value.reason, raised.value.retryable) == (reason, retryable)
    assert type(error).__name__ in raised.value.message
    assert raised.value.__cause__ is error


async def test_a_task_asking_for_a_tool_the_agent_lacks_is_refused(recorder: Recorder) -> None:
    # The orchestrator refuses such tasks before they run; the runtime guards anyway.
    run = AgentRun(
        task_id="t-1",
        agent="assistant",
        input="search",
        tools=(ToolRef(ToolKind.WEB_SEARCH), ToolRef(ToolKind.FUNCTION, "lookup")),
    )

    with pytest.raises(AgentError) as raised:
        await _offline().run(run, recorder)

    assert raised.value.reason == "TOOL_UNAVAILABLE"
    assert not raised.value.retryable
    assert raised.value.message == "agent 'assistant' has no tool lookup, web_search"
    assert recorder.payloads == []


def _delta(text: str) -> TResponseStreamEvent:
    return ResponseTextDeltaEvent(
        type="response.output_text.delta",
        item_id="msg",
        output_index=0,
        content_index=0,
        delta=text,
        logprobs=[],
        sequence_number=0,
    )


def test_tool_and_handoff_events_translate_to_domain_payloads() -> None:
    # Checked on the SDK's own event objects: every kind, in any order.
    first, second = Agent[Any](name="first"), Agent[Any](name="second")
    call = ResponseFunctionToolCall(
        type="function_call", call_id="call-1", name="lookup", arguments='{"q":"rain"}'
    )
    result = {"type": "function_call_output", "call_id": "call-1", "output": "42"}
    failure = {"type": "function_call_output", "call_id": "call-2", "output": "error: no"}
    translate = _Translator("first", FailedCalls({"call-2"}))

    payloads = [
        translate(AgentUpdatedStreamEvent(new_agent=first)),
        translate(RunItemStreamEvent("tool_called", ToolCallItem(agent=first, raw_item=call))),
        translate(
            RunItemStreamEvent(
                "tool_output", ToolCallOutputItem(agent=first, raw_item=result, output=42)
            )
        ),
        translate(
            RunItemStreamEvent(
                "tool_output", ToolCallOutputItem(agent=first, raw_item=failure, output="error: no")
            )
        ),
        translate(AgentUpdatedStreamEvent(new_agent=second)),
        translate(AgentUpdatedStreamEvent(new_agent=second)),
    ]

    assert payloads == [
        None,
        ToolCalled(call_id="call-1", name="lookup", arguments_json='{"q":"rain"}'),
        ToolReturned(call_id="call-1", output="42"),
        ToolReturned(call_id="call-2", output="error: no", is_error=True),
        AgentChanged("second", previous="first", handoff=True),
        None,
    ]
