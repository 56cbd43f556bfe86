"""A fake OpenAI HTTP server on loopback, for driving the real SDK model classes.

A small HTTP/1.1 server (keep-alive, chunked responses) on ``127.0.0.1`` and an ephemeral
port, started and stopped in the test's event loop::

    async with FakeOpenAI(text("Hello there", parts=3)) as fake:
        client = AsyncOpenAI(base_url=fake.base_url, ...)

Each POST to ``/v1/responses`` or ``/v1/chat/completions`` takes the next scripted
``Reply`` (see ``openai_wire``) and answers in that endpoint's format, streamed when the
request says ``"stream": true``. With nothing left to say it answers 400 (no scripted
reply), so a surprise request fails loudly instead of hanging. Every request is recorded.

Because the server owns the sockets it sees clients leave: a client that closes its
connection before a streamed reply ended counts as a disconnect (``disconnects``,
``wait_disconnect()``), which is how a test proves a cancelled run closed its HTTP stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from tests.fakes.openai_wire import Json, Reply, error_body, failure, json_body, sse_frames

_MODEL_PATHS = frozenset({"/v1/responses", "/v1/chat/completions"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server read it (header names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Json


class _Disconnected(Exception):
    """The client closed its connection while a reply was being sent."""


class FakeOpenAI:
    """The fake server (see the module doc); an async context manager."""

    def __init__(self, *replies: Reply) -> None:
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self._replies: deque[Reply] = deque(replies)
        self._numbers = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False
        self._changed = asyncio.Condition()

    @property
    def base_url(self) -> str:
        """The API root to hand a client, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def port(self) -> int:
        """The port it listens on (or did: a stopped server's port refuses connections)."""
        assert self._port is not None, "the fake server was never started"
        return self._port

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    def script(self, *replies: Reply) -> None:
        """Queue ``replies`` for the next model requests, in order."""
        self._replies.extend(replies)

    async def wait_disconnect(self, count: int = 1) -> None:
        """Return once ``count`` clients in all have left in the middle of a reply."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.disconnects >= count)

    async def wait_connections(self, count: int) -> None:
        """Return once exactly ``count`` client connections are open."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.connections == count)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Cut every connection: each handler then ends on its own (a cancelled one would
        # be logged as an error by asyncio's start_server callback).
        self._closing = True
        for writer in self._connections.values():
            writer.transport.abort()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        await self._track(lambda: self._connections.update({task: writer}))
        try:
            while await self._answer_one(reader, writer):
                pass
        except (_Disconnected, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            await self._track(lambda: self._connections.pop(task, None))

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle connection
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body: Json = json.loads(raw) if raw else {}
        path = target.partition("?")[0]
        self.requests.append(RecordedRequest(method, path, headers, body))
        if method != "POST" or path not in _MODEL_PATHS:
            await _send_json(writer, failure(404, f"no route {method} {path}"), error_body)
            return True
        reply = self._replies.popleft() if self._replies else failure(400, "no scripted reply")
        if reply.status != HTTPStatus.OK:
            await _send_json(writer, reply, error_body)
        elif body.get("stream"):
            frames = sse_frames(reply, path, body, next(self._numbers))
            await self._stream(reader, writer, reply, frames)
        else:
            number = next(self._numbers)
            await _send_json(writer, reply, lambda r: json_body(r, path, body, number))
        return headers.get("connection", "").lower() != "close"

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        frames: list[bytes],
    ) -> None:
        writer.write(_head(200, "text/event-stream", [("transfer-encoding", "chunked")]))
        # The client sends nothing while it reads a reply: reading ends only when it leaves.
        gone = asyncio.ensure_future(reader.read(1))
        try:
            for sent, frame in enumerate(frames):
                if sent == reply.cut_after:
                    raise _Disconnected  # the connection closes without the last chunk
                if sent == reply.hold_after:
                    await _unless_gone(gone, reply.release or asyncio.Event())
                chunk = f"{len(frame):x}\r\n".encode() + frame + b"\r\n"
                if sent == len(frames) - 1:
                    # The end of the body goes with the last event: a client that stops
                    # reading once it has that event has not left early.
                    chunk += b"0\r\n\r\n"
                if gone.done():
                    raise _Disconnected
                writer.write(chunk)
                await writer.drain()
        except (_Disconnected, ConnectionError):
            if gone.done() and not self._closing:
                await self._track(self._count_disconnect)
            raise _Disconnected from None
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await gone

    def _count_disconnect(self) -> None:
        self.disconnects += 1

    async def _track(self, change: Callable[[], object]) -> None:
        async with self._changed:
            change()
            self._changed.notify_all()


async def _unless_gone(gone: asyncio.Future[bytes], release: asyncio.Event) -> None:
    """Wait for ``release``; raise ``_Disconnected`` if the client leaves first."""
    waiting = asyncio.ensure_future(release.wait())
    try:
        either: list[asyncio.Future[Any]] = [gone, waiting]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if gone.done():
        raise _Disconnected


async def _send_json(
    writer: asyncio.StreamWriter, reply: Reply, render: Callable[[Reply], Json]
) -> None:
    data = json.dumps(render(reply)).encode()
    extra = [*reply.headers, ("content-length", str(len(data)))]
    writer.write(_head(reply.status, "application/json", extra) + data)
    await writer.drain()


def _head(status: int, content_type: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"content-type: {content_type}",
        f"x-request-id: req_fake_{status}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
