"""The offline model: a deterministic stand-in for an LLM that needs no network.

It answers the last user message with ``Offline model (no network). You said: <message>``
and streams that answer the way the Responses API does: ``response.created``, the message
item and its text part, one ``response.output_text.delta`` per word (with the whitespace
after it), the ``done`` events, then ``response.completed`` carrying the whole message and
the usage.

Directives let it call tools and hand off, so the whole pipeline runs with no network.
Any line of the last user message may be one:

- ``/tool NAME {"json": "arguments"}`` calls the function tool ``NAME`` with the rest of
  the line as its arguments (``{}`` when there is none; passed on verbatim, so malformed
  JSON reaches the tool as such);
- ``/handoff AGENT`` hands the task off to agent ``AGENT`` (by calling the SDK's handoff
  tool for it, ``transfer_to_<agent>``).

Each turn acts on the first directive, in the order written, that the turn offers (the
tool among its tools, the agent among its handoffs) and that no call since the message
has carried out yet (same name, same arguments); the others are skipped. Such a turn is
a single function call, streamed as ``response.output_item.added`` (the
``function_call``), ``response.function_call_arguments.delta``/``done``,
``response.output_item.done`` and ``response.completed``. When no directive is left, the
turn is the answer above (directive lines included, as they are part of the message),
followed by a line ``NAME returned: OUTPUT`` for each ``/tool`` call made since the
message. An agent handed the task reads the same message, so in::

    /handoff billing
    /tool calculator {"expression": "6 * 7"}

the first agent hands off to ``billing``, which calls its calculator, then answers with
the message and a last line ``calculator returned: 42``.

Usage counts whitespace-separated words. Input tokens are the words of the system
instructions, of the message answered and of the tool outputs it reports; output tokens
are the words of the answer, or of ``NAME ARGUMENTS`` for a call. The same request always
gets the same turn, deltas and usage.

Like the SDK's own models, each call is a generation span (model ``offline``, with its
usage and no payload) when the run is traced.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from agents import (
    AgentOutputSchemaBase,
    FunctionTool,
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
from agents.tracing import GenerationSpanData, Span, generation_span
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
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
_DIRECTIVE = re.compile(r"^[ \t]*/(tool|handoff)[ \t]+(\S+)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
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
        """Take the turn in one piece."""
        turn = _turn(system_instructions, input, tools, handoffs)
        usage = turn.usage()
        with _span(turn, tracing):
            return ModelResponse(
                output=[turn.item()],
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
        """Stream the turn (text word by word), ending with ``response.completed``."""
        turn = _turn(system_instructions, input, tools, handoffs)
        with _span(turn, tracing):
            for event in turn.events():
                yield event
                # Give the loop a turn between events, as a network stream would, so that
                # consumers (and cancellation) interleave with the stream.
                await asyncio.sleep(0)


def _span(turn: _Turn, tracing: ModelTracing) -> Span[GenerationSpanData]:
    """The call's generation span (see the module doc): its usage is known in advance."""
    usage = turn.usage()
    return generation_span(
        model="offline",
        usage={"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        disabled=tracing.is_disabled(),
    )


@dataclass(frozen=True, slots=True)
class _Call:
    """A function call made since the last user message, and its output if it has one."""

    name: str
    arguments: str
    output: str | None


@dataclass(frozen=True, slots=True)
class _Conversation:
    """What the model reads in its input: the last user message and the calls after it."""

    message: str
    calls: tuple[_Call, ...]
    calls_in_all: int  # function calls in the whole input, to number the next call

    @classmethod
    def of(cls, items: str | list[TResponseInputItem]) -> _Conversation:
        if isinstance(items, str):
            return cls(items, (), 0)
        fields: list[Mapping[str, object]] = list(items)
        users = [i for i, item in enumerate(fields) if item.get("role") == "user"]
        start = users[-1] if users else -1
        outputs = {
            item.get("call_id"): _content_text(item.get("output"))
            for item in fields
            if item.get("type") == "function_call_output"
        }
        return cls(
            message=_content_text(fields[start].get("content")) if users else "",
            calls=tuple(
                _Call(
                    str(item.get("name")),
                    str(item.get("arguments")),
                    outputs.get(item.get("call_id")),
                )
                for item in fields[start + 1 :]
                if item.get("type") == "function_call"
            ),
            calls_in_all=sum(item.get("type") == "function_call" for item in fields),
        )


def _turn(
    instructions: str | None,
    items: str | list[TResponseInputItem],
    tools: Sequence[Tool],
    handoffs: Sequence[Handoff],
) -> _Turn:
    """The turn the model takes on this input (see the module doc)."""
    conversation = _Conversation.of(items)
    directives: list[tuple[str, str, str]] = _DIRECTIVE.findall(conversation.message)
    asked = {name for kind, name, _ in directives if kind == "tool"}
    results = [c for c in conversation.calls if c.output is not None and c.name in asked]
    input_tokens = sum(
        len(text.split())
        for text in [instructions or "", conversation.message, *(c.output or "" for c in results)]
    )
    call = _next_call(directives, conversation.calls, tools, handoffs)
    if call is not None:
        name, arguments = call
        number = conversation.calls_in_all + 1
        return _Turn(
            text=f"{name} {arguments}",
            input_tokens=input_tokens,
            call=ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_offline_{number}",
                call_id=f"call_offline_{number}",
                name=name,
                arguments=arguments,
                status="completed",
            ),
        )
    answer = "".join(
        [f"{ANSWER_PREFIX} {conversation.message}"]
        + [f"\n{c.name} returned: {c.output}" for c in results]
    )
    return _Turn(text=answer, input_tokens=input_tokens)


def _next_call(
    directives: Sequence[tuple[str, str, str]],
    made: Sequence[_Call],
    tools: Sequence[Tool],
    handoffs: Sequence[Handoff],
) -> tuple[str, str] | None:
    """The first directive offered this turn and not yet carried out, as (name, arguments)."""
    offered_tools = {tool.name for tool in tools if isinstance(tool, FunctionTool)}
    offered_handoffs = {handoff.agent_name: handoff.tool_name for handoff in handoffs}
    done = {(call.name, call.arguments) for call in made}
    for kind, name, rest in directives:
        if kind == "tool" and name in offered_tools:
            call = (name, rest or "{}")
        elif kind == "handoff" and name in offered_handoffs:
            call = (offered_handoffs[name], "{}")
        else:
            continue
        if call not in done:
            return call
    return None


@dataclass(frozen=True, slots=True)
class _Turn:
    """One model turn: a function call (``call`` set), or the answer ``text``.

    For a call, ``text`` is ``NAME ARGUMENTS``: what its output tokens count.
    """

    text: str
    input_tokens: int
    call: ResponseFunctionToolCall | None = None

    def usage(self) -> ResponseUsage:
        output_tokens = len(self.text.split())
        return ResponseUsage(
            input_tokens=self.input_tokens,
            output_tokens=output_tokens,
            total_tokens=self.input_tokens + output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        )

    def item(self) -> ResponseOutputItem:
        return self.call if self.call is not None else _message([_text_part(self.text)])

    def events(self) -> Iterator[TResponseStreamEvent]:
        number = itertools.count()
        yield ResponseCreatedEvent(
            type="response.created", response=_response([], None), sequence_number=next(number)
        )
        if self.call is None:
            yield from self._text_events(number)
        else:
            yield from self._call_events(self.call, number)
        item = self.item()
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            item=item,
            output_index=0,
            sequence_number=next(number),
        )
        yield ResponseCompletedEvent(
            type="response.completed",
            response=_response([item], self.usage()),
            sequence_number=next(number),
        )

    def _text_events(self, number: Iterator[int]) -> Iterator[TResponseStreamEvent]:
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=_message([], status="in_progress"),
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

    @staticmethod
    def _call_events(
        call: ResponseFunctionToolCall, number: Iterator[int]
    ) -> Iterator[TResponseStreamEvent]:
        item_id = call.id or ""
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=call.model_copy(update={"arguments": "", "status": "in_progress"}),
            output_index=0,
            sequence_number=next(number),
        )
        for delta in _DELTA.findall(call.arguments):
            yield ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta",
                item_id=item_id,
                output_index=0,
                delta=delta,
                sequence_number=next(number),
            )
        yield ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done",
            item_id=item_id,
            output_index=0,
            arguments=call.arguments,
            sequence_number=next(number),
        )


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    texts = [
        part.get("text")
        for part in parts
        if isinstance(part, Mapping) and part.get("type") in ("input_text", "output_text")
    ]
    return "\n".join(text for text in texts if isinstance(text, str))


def _text_part(text: str) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])


def _message(
    content: list[ResponseOutputText],
    *,
    status: Literal["in_progress", "completed"] = "completed",
) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=_ID, type="message", role="assistant", status=status, content=list(content)
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
        tool_choice="auto",
        tools=[],
    )
