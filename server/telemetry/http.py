"""A small HTTP/1.1 listener for what cannot speak gRPC: Prometheus and plain HTTP probes.

- ``GET /metrics``: the registry in the Prometheus text format (OpenMetrics when the
  scraper asks for it in ``Accept``);
- ``GET /healthz``: 200 while the process serves (liveness);
- ``GET /readyz``: 200 when ``ready()`` says so, else 503 (readiness);
- anything else: 404; a method other than GET or HEAD: 405.

One request per connection (``Connection: close``). A client gets ``read_timeout``
seconds to send its request and as long to take the answer, and request lines and
headers are bounded, so a slow or hostile client holds one connection, never the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from prometheus_client.exposition import choose_encoder

from switchboard.server.telemetry.metrics import Metrics

_log = logging.getLogger(__name__)

_MAX_LINE = 8192
_MAX_HEADERS = 100
_TEXT = "text/plain; charset=utf-8"


class BadRequest(ValueError):
    """The bytes received are not a request this server reads."""


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` on its own address (see the module doc).

    ``ready`` is asked at every ``/readyz``; it gets ``read_timeout`` seconds to answer,
    and failing or running late counts as not ready.
    """

    def __init__(
        self,
        metrics: Metrics,
        ready: Callable[[], Awaitable[bool]],
        *,
        read_timeout: float = 5.0,
    ) -> None:
        self._metrics = metrics
        self._ready = ready
        self._read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, address: str) -> int:
        """Listen on ``address`` (``host:port``, ``[::]:9464``, ``127.0.0.1:0``); the bound port.

        ``[::]`` (or an empty host) listens on every IPv6 and IPv4 address. Raises
        ``ValueError`` for an address without a port and ``OSError`` when binding fails.
        """
        if self._server is not None:
            raise RuntimeError("the metrics server is already listening")
        host, port = _parse(address)
        if host in ("", "::"):
            self._server = await asyncio.start_server(
                self._serve, sock=_any_address(port), limit=_MAX_LINE
            )
        else:
            self._server = await asyncio.start_server(self._serve, host, port, limit=_MAX_LINE)
        bound: int = self._server.sockets[0].getsockname()[1]
        _log.info(
            "metrics, healthz and readyz on %s (port %d)",
            address,
            bound,
            extra={"address": address, "port": bound},
        )
        return bound

    async def stop(self) -> None:
        """Stop listening and drop the connections being served."""
        if self._server is None:
            return
        self._server.close()
        # Closed, not cancelled: each connection's task ends as it would for a client
        # that went away (asyncio logs an error for a cancelled connection task).
        for writer in self._connections.values():
            writer.transport.abort()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # the stream server runs each connection in a task
        self._connections[task] = writer
        try:
            try:
                async with asyncio.timeout(self._read_timeout):
                    method, path, accept = await _read_request(reader)
            except BadRequest as exc:
                method, answer = "GET", (HTTPStatus.BAD_REQUEST, _TEXT, f"{exc}\n".encode())
            else:
                answer = await self._answer(method, path, accept)
            writer.write(_response(*answer, head=method == "HEAD"))
            async with asyncio.timeout(self._read_timeout):
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client was too slow or went away: nothing to tell it
        finally:
            del self._connections[task]
            writer.close()

    async def _answer(self, method: str, path: str, accept: str) -> tuple[HTTPStatus, str, bytes]:
        if path not in ("/metrics", "/healthz", "/readyz"):
            return HTTPStatus.NOT_FOUND, _TEXT, b"not found\n"
        if method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, _TEXT, b"method not allowed\n"
        if path == "/metrics":
            return self._exposition(accept)
        if path == "/healthz":
            return HTTPStatus.OK, _TEXT, b"ok\n"
        if await self._is_ready():
            return HTTPStatus.OK, _TEXT, b"ready\n"
        return HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, b"not ready\n"

    def _exposition(self, accept: str) -> tuple[HTTPStatus, str, bytes]:
        # On the loop's thread: the live series read orchestrator state.
        encode, content_type = choose_encoder(accept)
        try:
            return HTTPStatus.OK, content_type, encode(self._metrics.registry)
        except Exception:
            _log.exception("metrics: collecting the series failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT, b"collecting the metrics failed\n"

    async def _is_ready(self) -> bool:
        try:
            async with asyncio.timeout(self._read_timeout):
                return await self._ready()
        except Exception:
            _log.warning("readyz: the readiness check failed", exc_info=True)
            return False


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str]:
    """The method, path (no query) and Accept header of the request on ``reader``."""
    try:
        line = await reader.readuntil(b"\n")
        parts = line.decode("ascii").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest("malformed request line")
        accept = ""
        for _ in range(_MAX_HEADERS):
            header = (await reader.readuntil(b"\n")).strip()
            if not header:
                method, target, _ = parts
                return method, target.partition("?")[0], accept
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request line or header too long") from exc
    except UnicodeDecodeError as exc:
        raise BadRequest("request line is not ASCII") from exc
    raise BadRequest("too many headers")


def _response(status: HTTPStatus, content_type: str, body: bytes, *, head: bool) -> bytes:
    headers = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if status is HTTPStatus.METHOD_NOT_ALLOWED:
        headers.append("Allow: GET, HEAD")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


def _parse(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not a host:port address: {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _any_address(port: int) -> socket.socket:
    """A socket bound to every address: dual-stack IPv6, or IPv4 on hosts without IPv6.

    asyncio's own IPv6 sockets are IPv6-only, and binding both families separately
    would give two ports when ``port`` is 0.
    """
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host = "0.0.0.0"
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        host = "::"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
