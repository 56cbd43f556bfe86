"""The offline model on its own: the Responses stream protocol, determinism, usage."""

from __future__ import annotations

from typing import Any

from agents import Agent, FunctionTool, ModelSettings, ModelTracing, function_tool, handoff
from agents.items import TResponseStreamEvent
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)

from switchboard.server.agents import OfflineModel
from switchboard.server.agents.offline import ANSWER_PREFIX

_CALL: dict[str, Any] = {
    "model_settings": ModelSettings(),
    "tools": [],
    "output_schema": None,
    "handoffs": [],
    "tracing": ModelTracing.DISABLED,
    "previous_response_id": None,
    "conversation_id": None,
    "prompt": None,
}


async def _stream(instructions: str | None, items: Any) -> list[TResponseStreamEvent]:
    return [e async for e in OfflineModel().stream_response(instructions, items, **_CALL)]


def _text(message: object) -> str:
    assert isinstance(message, ResponseOutputMessage)
    return "".join(part.text for part in message.content if part.type == "output_text")


async def test_streams_the_answer_word_by_word_and_completes_with_output_and_usage() -> None:
    events = await _stream("be brief", [{"role": "user", "content": "what  is\nup"}])

    answer = f"{ANSWER_PREFIX} what  is\nup"
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert deltas[-3:] == ["what  ", "is\n", "up"]
    assert "".join(deltas) == answer
    assert isinstance(events[0], ResponseCreatedEvent)
    assert [e.text for e in events if isinstance(e, ResponseTextDoneEvent)] == [answer]
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert completed.response.status == "completed"
    assert [_text(item) for item in completed.response.output] == [answer]
    usage = completed.response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (2 + 3, 9, 14)
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_is_deterministic_and_answers_the_last_user_message() -> None:
    items = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ignored"},
        {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ]
    first, second = await _stream(None, items), await _stream(None, items)

    assert first == second
    completed = first[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert _text(completed.response.output[0]) == f"{ANSWER_PREFIX} second"


async def test_get_response_matches_the_stream() -> None:
    streamed = (await _stream("x", "plain string input"))[-1]
    response = await OfflineModel().get_response("x", "plain string input", **_CALL)

    assert isinstance(streamed, ResponseCompletedEvent)
    assert [_text(item) for item in response.output] == [f"{ANSWER_PREFIX} plain string input"]
    assert streamed.response.usage is not None
    assert response.usage.requests == 1
    assert response.usage.input_tokens == streamed.response.usage.input_tokens == 4
    assert response.usage.output_tokens == streamed.response.usage.output_tokens
    assert response.usage.total_tokens == streamed.response.usage.total_tokens


async def test_input_without_a_user_message_gets_the_bare_prefix() -> None:
    events = await _stream(None, [])

    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert _text(completed.response.output[0]) == f"{ANSWER_PREFIX} "
    assert completed.response.usage is not None
    assert completed.response.usage.input_tokens == 0


def _tool(name: str) -> FunctionTool:
    def noop() -> str:
        return ""

    return function_tool(noop, name_override=name)


async def _turn(items: Any, *, tools: Any = (), handoffs: Any = ()) -> list[TResponseStreamEvent]:
    call = {**_CALL, "tools": list(tools), "handoffs": list(handoffs)}
    return [e async for e in OfflineModel().stream_response("be brief", items, **call)]


async def test_a_tool_directive_streams_a_function_call() -> None:
    message = 'Please add.\n  /tool calculator {"expression": "2 + 2"}  \nThanks.'
    events = await _turn(message, tools=[_tool("current_time"), _tool("calculator")])

    assert [e.type for e in events] == [
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added, done, completed = events[1], events[-2], events[-1]
    assert isinstance(added, ResponseOutputItemAddedEvent)
    assert isinstance(added.item, ResponseFunctionToolCall)
    assert (added.item.arguments, added.item.status) == ("", "in_progress")
    arguments = '{"expression": "2 + 2"}'
    deltas = [e.delta for e in events if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent)]
    assert "".join(deltas) == arguments
    assert isinstance(done, ResponseOutputItemDoneEvent)
    assert isinstance(completed, ResponseCompletedEvent)
    call = ResponseFunctionToolCall(
        type="function_call",
        id="fc_offline_1",
        call_id="call_offline_1",
        name="calculator",
        arguments=arguments,
        status="completed",
    )
    assert done.item == call
    assert completed.response.output == [call]
    usage = completed.response.usage
    assert usage is not None
    # In: "be brief" and the message (2 + 9); out: "calculator" and the arguments (1 + 4).
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 5, 16)
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_a_tool_directive_without_arguments_sends_an_empty_object() -> None:
    completed = (await _turn("/tool current_time", tools=[_tool("current_time")]))[-1]

    assert isinstance(completed, ResponseCompletedEvent)
    call = completed.response.output[0]
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.arguments) == ("current_time", "{}")


async def test_a_directive_for_a_tool_not_offered_is_answered_as_text() -> None:
    message = "/tool calculator {}\n/handoff billing"
    completed = (await _turn(message, tools=[_tool("current_time")]))[-1]

    assert isinstance(completed, ResponseCompletedEvent)
    assert _text(completed.response.output[0]) == f"{ANSWER_PREFIX} {message}"


async def test_a_handoff_directive_calls_the_sdk_handoff_tool() -> None:
    billing = handoff(Agent[Any](name="billing-desk"))

    completed = (await _turn("/handoff billing-desk", handoffs=[billing]))[-1]

    assert isinstance(completed, ResponseCompletedEvent)
    call = completed.response.output[0]
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.arguments) == ("transfer_to_billing_desk", "{}")


async def test_after_the_call_it_answers_with_the_tool_output() -> None:
    message = '/tool calculator {"expression": "6 * 7"}\n/tool current_time'
    items = [
        {"role": "user", "content": message},
        {
            "type": "function_call",
            "call_id": "call_offline_1",
            "name": "calculator",
            "arguments": '{"expression": "6 * 7"}',
        },
        {"type": "function_call_output", "call_id": "call_offline_1", "output": "42"},
    ]
    tools = [_tool("calculator"), _tool("current_time")]

    completed = (await _turn(items, tools=tools))[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    call = completed.response.output[0]
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.call_id) == ("current_time", "call_offline_2")

    items += [
        {"type": "function_call", "call_id": "call_offline_2", "name": "current_time"}
        | {"arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_offline_2", "output": "noon"},
    ]
    completed = (await _turn(items, tools=tools))[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    answer = f"{ANSWER_PREFIX} {message}\ncalculator returned: 42\ncurrent_time returned: noon"
    assert _text(completed.response.output[0]) == answer
    usage = completed.response.usage
    assert usage is not None
    # In: instructions, message and both outputs (2 + 8 + 1 + 1).
    assert usage.input_tokens == 12
    assert usage.output_tokens == len(answer.split())


async def test_get_response_takes_the_same_turn_as_the_stream() -> None:
    tools = [_tool("calculator")]
    streamed = (await _turn("/tool calculator {}", tools=tools))[-1]
    call = {**_CALL, "tools": tools}
    response = await OfflineModel().get_response("be brief", "/tool calculator {}", **call)

    assert isinstance(streamed, ResponseCompletedEvent)
    assert response.output == streamed.response.output
    assert response.usage.output_tokens == 2
