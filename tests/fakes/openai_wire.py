"""What the fake OpenAI server says: scripted replies, told in the two wire formats.

A ``Reply`` is one model turn (text, tool calls, usage) or one failure (an HTTP status),
plus how it is delivered (held after some events, or cut mid-stream). The same reply
renders as the Responses API (``/v1/responses``: typed SSE events ending with
``response.completed``) or as chat completions (``/v1/chat/completions``:
``chat.completion.chunk`` deltas, a usage chunk when asked, ``data: [DONE]``), streamed
or not, whichever the request wants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from agents import Agent, Handoff

Json = dict[str, Any]

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "not_found",
    429: "rate_limit_exceeded",
}


@dataclass(frozen=True)
class ToolCall:
    """A function call the model makes; its arguments stream in ``parts`` deltas."""

    name: str
    arguments: str = "{}"
    call_id: str = "call_1"
    parts: int = 2


@dataclass(frozen=True)
class Reply:
    """One scripted answer to one model request (see the module doc).

    ``hold_after``: after that many events, wait for ``release`` to be set (forever when
    None, i.e. until the client goes away). ``cut_after``: after that many events, close
    the connection without ending the HTTP body (a broken stream).
    """

    text: str = ""
    parts: int = 1
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 12
    output_tokens: int = 5
    status: int = 200
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    hold_after: int | None = None
    release: asyncio.Event | None = None
    cut_after: int | None = None

    def held(self, after: int = 0, until: asyncio.Event | None = None) -> Reply:
        """This reply, stalling after ``after`` events until ``until`` is set."""
        return dataclasses.replace(self, hold_after=after, release=until)

    def broken(self, after: int) -> Reply:
        """This reply, with the connection cut after ``after`` events."""
        return dataclasses.replace(self, cut_after=after)

    @property
    def deltas(self) -> list[str]:
        """The text in ``parts`` pieces (as even as can be), in order."""
        return _split(self.text, self.parts) if self.text else []


def text(answer: str, *, parts: int = 1, input_tokens: int = 12, output_tokens: int = 5) -> Reply:
    """A text answer streamed in ``parts`` deltas, reporting the given usage."""
    return Reply(answer, parts, input_tokens=input_tokens, output_tokens=output_tokens)


def tool_call(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    call_id: str = "call_1",
    parts: int = 2,
) -> Reply:
    """A turn that calls function ``name`` with ``arguments`` (a JSON object)."""
    return Reply(tool_calls=(ToolCall(name, json.dumps(arguments or {}), call_id, parts),))


def handoff(agent: str, *, call_id: str = "call_handoff") -> Reply:
    """A turn that hands off to ``agent``: a call to the SDK's ``transfer_to_<agent>`` tool."""
    return tool_call(Handoff.default_tool_name(Agent(name=agent)), call_id=call_id, parts=1)


def failure(status: int, message: str = "", *, retry_after: float | None = None) -> Reply:
    """An HTTP error reply (e.g. 429 with a ``retry-after`` header)."""
    headers = () if retry_after is None else (("retry-after", f"{retry_after:g}"),)
    return Reply(status=status, message=message or f"fake failure {status}", headers=headers)


def error_body(reply: Reply) -> Json:
    """The JSON body OpenAI sends with an HTTP error."""
    kind = _STATUS_TYPES.get(reply.status, "server_error")
    return {"error": {"message": reply.message, "type": kind, "param": None, "code": kind}}


def sse_frames(reply: Reply, path: str, request: Json, number: int) -> list[bytes]:
    """The server-sent events of ``reply`` to a streamed request on ``path``."""
    if path.endswith("/responses"):
        return [_frame(event, event["type"]) for event in _ResponseTelling(reply, request, number)]
    options = request.get("stream_options") or {}
    chunks = _chat_chunks(reply, request, number, usage=bool(options.get("include_usage")))
    return [*map(_frame, chunks), b"data: [DONE]\n\n"]


def json_body(reply: Reply, path: str, request: Json, number: int) -> Json:
    """The whole answer to a request on ``path`` that did not ask for a stream."""
    if path.endswith("/responses"):
        return _ResponseTelling(reply, request, number).response(done=True)
    message: Json = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [_chat_call(call) for call in reply.tool_calls]
    return {
        **_chat_head(request, number, "chat.completion"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish(reply), "logprobs": None}
        ],
        "usage": _chat_usage(reply),
    }


class _ResponseTelling:
    """One reply as Responses API events (iterate) or as its final ``response`` object."""

    def __init__(self, reply: Reply, request: Json, number: int) -> None:
        self._reply = reply
        self._model = request.get("model", "")
        self._id = f"resp_{number}"
        self._message_id = f"msg_{number}"
        self._sequence = itertools.count()

    def __iter__(self) -> Iterator[Json]:
        yield self._event("response.created", response=self.response(done=False))
        index = itertools.count()
        if self._reply.text:
            yield from self._message_events(next(index))
        for position, call in enumerate(self._reply.tool_calls):
            yield from self._call_events(next(index), position, call)
        yield self._event("response.completed", response=self.response(done=True))

    def response(self, *, done: bool) -> Json:
        output: list[Json] = []
        if done and self._reply.text:
            output.append(self._message(done=True))
        if done:
            output += [
                self._call(n, call, done=True) for n, call in enumerate(self._reply.tool_calls)
            ]
        usage = {
            "input_tokens": self._reply.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self._reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self._reply.input_tokens + self._reply.output_tokens,
        }
        return {
            "id": self._id,
            "object": "response",
            "created_at": 1_700_000_000,
            "model": self._model,
            "status": "completed" if done else "in_progress",
            "output": output,
            "usage": usage if done else None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
        }

    def _message_events(self, index: int) -> Iterator[Json]:
        at: Json = {"item_id": self._message_id, "output_index": index, "content_index": 0}
        yield self._event("response.output_item.added", item=self._message(done=False), **_at(at))
        yield self._event("response.content_part.added", part=_text_part(""), **at)
        for delta in self._reply.deltas:
            yield self._event("response.output_text.delta", delta=delta, logprobs=[], **at)
        yield self._event("response.output_text.done", text=self._reply.text, logprobs=[], **at)
        yield self._event("response.content_part.done", part=_text_part(self._reply.text), **at)
        yield self._event("response.output_item.done", item=self._message(done=True), **_at(at))

    def _call_events(self, index: int, position: int, call: ToolCall) -> Iterator[Json]:
        at: Json = {"item_id": self._call_id(position), "output_index": index}
        yield self._event(
            "response.output_item.added", item=self._call(position, call, done=False), **_at(at)
        )
        for delta in _split(call.arguments, call.parts):
            yield self._event("response.function_call_arguments.delta", delta=delta, **at)
        yield self._event(
            "response.function_call_arguments.done", arguments=call.arguments, name=call.name, **at
        )
        yield self._event(
            "response.output_item.done", item=self._call(position, call, done=True), **_at(at)
        )

    def _event(self, kind: str, **fields: Any) -> Json:
        return {"type": kind, "sequence_number": next(self._sequence), **fields}

    def _message(self, *, done: bool) -> Json:
        return {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "status": "completed" if done else "in_progress",
            "content": [_text_part(self._reply.text)] if done else [],
        }

    def _call(self, position: int, call: ToolCall, *, done: bool) -> Json:
        return {
            "id": self._call_id(position),
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments if done else "",
            "status": "completed" if done else "in_progress",
        }

    def _call_id(self, position: int) -> str:
        return f"fc_{self._id}_{position}"


def _chat_chunks(reply: Reply, request: Json, number: int, *, usage: bool) -> Iterator[Json]:
    head = _chat_head(request, number, "chat.completion.chunk")

    def chunk(delta: Json, finish: str | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice], "usage": None}

    yield chunk({"role": "assistant", "content": ""})
    for delta in reply.deltas:
        yield chunk({"content": delta})
    for index, call in enumerate(reply.tool_calls):
        yield chunk({"tool_calls": [{"index": index, **_chat_call(call, arguments="")}]})
        for part in _split(call.arguments, call.parts):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, _finish(reply))
    if usage:
        yield {**head, "choices": [], "usage": _chat_usage(reply)}


def _chat_head(request: Json, number: int, kind: str) -> Json:
    return {
        "id": f"chatcmpl-{number}",
        "object": kind,
        "created": 1_700_000_000,
        "model": request.get("model", ""),
    }


def _chat_call(call: ToolCall, arguments: str | None = None) -> Json:
    function = {"name": call.name, "arguments": call.arguments if arguments is None else arguments}
    return {"id": call.call_id, "type": "function", "function": function}


def _chat_usage(reply: Reply) -> Json:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _finish(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def _text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _at(at: Json) -> Json:
    # Item events carry the output index only.
    return {"output_index": at["output_index"]}


def _frame(data: Json, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _split(text: str, parts: int) -> list[str]:
    size, extra = divmod(len(text), max(parts, 1))
    bounds = itertools.accumulate(size + (i < extra) for i in range(max(parts, 1)))
    starts = [0, *bounds]
    return [text[a:b] for a, b in itertools.pairwise(starts)]
