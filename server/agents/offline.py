"""The offline model: a deterministic stand-in for an LLM that needs no network.

It answers the last user message with ``Offline model (no network). You said: <message>``
and streams that answer the way the Responses API does: ``response.created``, the message
item and its text part, one ``response.output_text.delta`` per word (with the whitespace
after it), the ``done`` events, then ``response.completed`` carrying the whole message and
the usage.

Usage counts whitespace-separated words: input tokens are the words of the system
instructions plus the words of the message answered, output tokens the words of the
answer. The same request always gets the same answer, deltas and usage.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

from agents import (
    AgentOutputSchemaBase,
    Handoff,
    Model,
    ModelResponse,
    ModelSettings,
    ModelTracing,
    Tool,
    TResponseInputItem,
    Usage,
)
from agents.items import TResponseStreamEvent
from agents.models.fake_id import FAKE_RESPONSES_ID
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseOutputItem,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from typing_extensions import override

ANSWER_PREFIX = "Offline model (no network). You said:"

# A word with the whitespace after it (or leading whitespace alone): the deltas
# concatenate back to exactly the answer.
_DELTA = re.compile(r"\S+\s*|\s+")
_ID = FAKE_RESPONSES_ID


class OfflineModel(Model):
    """A deterministic, network-free ``Model`` for the Agents SDK (see the module doc)."""

    @override
    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """Answer in one piece."""
        answer = _Answer.to(system_instructions, input)
        usage = answer.usage()
        return ModelResponse(
            output=[answer.message()],
            usage=Usage(
                requests=1,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
            ),
            response_id=_ID,
        )

    @override
    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """Stream the answer word by word, ending with ``response.completed``."""
        for event in _Answer.to(system_instructions, input).events():
            yield event
            # Give the loop a turn between events, as a network stream would, so that
            # consumers (and cancellation) interleave with the stream.
            await asyncio.sleep(0)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The answer to one request, and the ways of telling it."""

    text: str
    input_tokens: int

    @classmethod
    def to(cls, instructions: str | None, items: str | list[TResponseInputItem]) -> _Answer:
        message = _last_user_text(items)
        return cls(
            text=f"{ANSWER_PREFIX} {message}",
            input_tokens=len((instructions or "").split()) + len(message.split()),
        )

    def usage(self) -> ResponseUsage:
        output_tokens = len(self.text.split())
        return ResponseUsage(
            input_tokens=self.input_tokens,
            output_tokens=output_tokens,
            total_tokens=self.input_tokens + output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )

    def message(self) -> ResponseOutputMessage:
        return _message([_text_part(self.text)], done=True)

    def events(self) -> Iterator[TResponseStreamEvent]:
        number = itertools.count()
        yield ResponseCreatedEvent(
            type="response.created", response=_response([], None), sequence_number=next(number)
        )
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=_message([], done=False),
            output_index=0,
            sequence_number=next(number),
        )
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added",
            item_id=_ID,
            output_index=0,
            content_index=0,
            part=_text_part(""),
            sequence_number=next(number),
        )
        for delta in _DELTA.findall(self.text):
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id=_ID,
                output_index=0,
                content_index=0,
                delta=delta,
                logprobs=[],
                sequence_number=next(number),
            )
        yield ResponseTextDoneEvent(
            type="response.output_text.done",
            item_id=_ID,
            output_index=0,
            content_index=0,
            text=self.text,
            logprobs=[],
            sequence_number=next(number),
        )
        yield ResponseContentPartDoneEvent(
            type="response.content_part.done",
            item_id=_ID,
            output_index=0,
            content_index=0,
            part=_text_part(self.text),
            sequence_number=next(number),
        )
        message = self.message()
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            item=message,
            output_index=0,
            sequence_number=next(number),
        )
        yield ResponseCompletedEvent(
            type="response.completed",
            response=_response([message], self.usage()),
            sequence_number=next(number),
        )


def _last_user_text(items: str | list[TResponseInputItem]) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items):
        fields: Mapping[str, object] = item
        if fields.get("role") == "user":
            return _content_text(fields.get("content"))
    return ""


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    texts = [
        part.get("text")
        for part in parts
        if isinstance(part, Mapping) and part.get("type") == "input_text"
    ]
    return "\n".join(text for text in texts if isinstance(text, str))


def _text_part(text: str) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])


def _message(content: list[ResponseOutputText], *, done: bool) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=_ID,
        type="message",
        role="assistant",
        status="completed" if done else "in_progress",
        content=list(content),
    )


def _response(output: list[ResponseOutputItem], usage: ResponseUsage | None) -> Response:
    return Response(
        id=_ID,
        object="response",
        created_at=0,
        model="offline",
        status="completed" if usage else "in_progress",
        output=output,
        usage=usage,
        parallel_tool_calls=False,
        tool_choice="none",
        tools=[],
    )
