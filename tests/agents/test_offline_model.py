"""The offline model on its own: the Responses stream protocol, determinism, usage."""

from __future__ import annotations

from typing import Any

from agents import ModelSettings, ModelTracing
from agents.items import TResponseStreamEvent
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
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
