"""The fake OpenAI server speaks the real wire formats: openai's own types accept them."""

from __future__ import annotations

import json
import typing

import pytest
from openai import BaseModel
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from tests.fakes import Reply, ToolCall, failure, text, tool_call
from tests.fakes.openai_wire import error_body, json_body, sse_frames

REPLIES = [
    text("Hello there, world", parts=3),
    tool_call("add", {"a": 2, "b": 3}),
    Reply("Let me check.", parts=2, tool_calls=(ToolCall("a"), ToolCall("b", call_id="call_2"))),
]
# Each Responses event type to its class, so that an event is checked against its own.
EVENT_TYPES: dict[str, type[BaseModel]] = {
    typing.get_args(kind.model_fields["type"].annotation)[0]: kind
    for kind in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}


def _data(frames: list[bytes]) -> list[str]:
    return [frame.decode().split("data: ", 1)[1].strip() for frame in frames]


def _event(data: dict[str, typing.Any]) -> BaseModel:
    return EVENT_TYPES[data["type"]].model_validate(data)


@pytest.mark.parametrize("reply", REPLIES)
def test_responses_events_validate_and_end_completed(reply: Reply) -> None:
    request = {"model": "m", "stream": True}
    frames = sse_frames(reply, "/v1/responses", request, 1)
    events: list[typing.Any] = [_event(json.loads(data)) for data in _data(frames)]

    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert deltas == reply.deltas
    final = Response.model_validate(json_body(reply, "/v1/responses", request, 1))
    assert final.output_text == reply.text
    assert final.model_dump() == events[-1].response.model_dump()


@pytest.mark.parametrize("reply", REPLIES)
@pytest.mark.parametrize("usage", [True, False])
def test_chat_chunks_validate_and_end_done(reply: Reply, usage: bool) -> None:
    request = {"model": "m", "stream": True, "stream_options": {"include_usage": usage}}
    *data, done = _data(sse_frames(reply, "/v1/chat/completions", request, 1))
    chunks = [ChatCompletionChunk.model_validate_json(item) for item in data]

    assert done == "[DONE]"
    assert (chunks[-1].usage is not None) is usage
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert content == reply.deltas
    whole = ChatCompletion.model_validate(json_body(reply, "/v1/chat/completions", request, 1))
    assert whole.choices[0].message.content == (reply.text or None)


def test_an_error_body_is_openai_shaped() -> None:
    body = error_body(failure(429, "slow down", retry_after=1.5))

    assert body["error"]["message"] == "slow down"
    assert json.loads(json.dumps(body))["error"]["type"] == "rate_limit_exceeded"
    assert failure(429, retry_after=1.5).headers == (("retry-after", "1.5"),)
