"""The metrics HTTP listener over real HTTP: endpoints, negotiation, bad and slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from switchboard.server.telemetry import Metrics, MetricsServer
from tests.telemetry.series import grpc_labels, labels, series


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Readiness:
    """What ``/readyz`` is told: ready, not ready, a failure or no answer at all."""

    answer: bool = True
    error: Exception | None = None
    hang: bool = False
    asked: int = field(default=0)

    async def __call__(self) -> bool:
        self.asked += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return self.answer


@dataclass
class Listening:
    metrics: Metrics
    readiness: Readiness
    server: MetricsServer
    port: int

    async def fetch(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> Reply:
        """One request through urllib (a real HTTP client), run on a thread."""
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, method=method, headers=headers or {})
        return await asyncio.to_thread(_send, request)

    async def raw(self, data: bytes) -> bytes:
        """Send ``data`` as is; everything the server answers until it closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(data)
        await writer.drain()
        try:
            return await reader.read()
        finally:
            writer.close()


def _send(request: urllib.request.Request) -> Reply:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


async def _listening(read_timeout: float = 5.0) -> Listening:
    metrics, readiness = Metrics(), Readiness()
    server = MetricsServer(metrics, readiness, read_timeout=read_timeout)
    port = await server.start("127.0.0.1:0")
    return Listening(metrics, readiness, server, port)


@pytest.fixture
async def listening() -> AsyncIterator[Listening]:
    served = await _listening()
    try:
        yield served
    finally:
        await served.server.stop()


async def test_metrics_are_served_in_the_prometheus_text_format(listening: Listening) -> None:
    metrics = listening.metrics
    metrics.grpc_started.labels("unary", "switchboard.v1.TaskService", "Execute").inc()
    handled = metrics.grpc_handled.labels("unary", "switchboard.v1.TaskService", "Execute", "OK")
    handled.inc(3)
    metrics.rate_limited("write")

    reply = await listening.fetch("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = reply.body.decode()
    assert series(text, "grpc_server_started_total") == {
        grpc_labels("unary", "switchboard.v1.TaskService", "Execute"): 1
    }
    assert series(text, "grpc_server_handled_total") == {
        grpc_labels("unary", "switchboard.v1.TaskService", "Execute", grpc_code="OK"): 3
    }
    assert series(text, "rate_limited_total") == {labels(method_class="write"): 1}
    assert series(text, "agent_task_duration_seconds_count") == {labels(): 0}
    assert series(text, "process_cpu_seconds_total")
    assert series(text, "python_info")
    assert "_created" not in text


async def test_openmetrics_when_the_scraper_asks_for_it(listening: Listening) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    reply = await listening.fetch("/metrics", headers={"Accept": accept})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    assert reply.body.endswith(b"# EOF\n")


async def test_head_and_query_strings(listening: Listening) -> None:
    head = await listening.fetch("/metrics", method="HEAD")
    assert (head.status, head.body) == (200, b"")
    assert int(head.headers["Content-Length"]) > 0
    assert (await listening.fetch("/healthz?verbose=1")).status == 200


async def test_healthz_answers_while_the_process_serves(listening: Listening) -> None:
    listening.readiness.answer = False
    reply = await listening.fetch("/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")
    assert listening.readiness.asked == 0


@pytest.mark.parametrize(
    ("readiness", "status"),
    [
        (Readiness(answer=True), 200),
        (Readiness(answer=False), 503),
        (Readiness(error=RuntimeError("store down")), 503),
    ],
)
async def test_readyz_follows_the_readiness_check(
    listening: Listening, readiness: Readiness, status: int
) -> None:
    listening.readiness.answer, listening.readiness.error = readiness.answer, readiness.error
    reply = await listening.fetch("/readyz")
    assert reply.status == status
    assert listening.readiness.asked == 1


async def test_a_readiness_check_that_never_answers_is_not_ready() -> None:
    served = await _listening(read_timeout=0.05)
    served.readiness.hang = True
    try:
        assert (await served.fetch("/readyz")).status == 503
    finally:
        await served.server.stop()


@pytest.mark.parametrize("path", ["/", "/metricsx", "/metrics/", "/healthz/../metrics", "/x" * 100])
async def test_unknown_paths_are_not_found(listening: Listening, path: str) -> None:
    assert (await listening.fetch(path)).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_only_get_and_head(listening: Listening, method: str) -> None:
    reply = await listening.fetch("/metrics", method=method)
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"garbage\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics SMTP/1.0\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"GET /" + b"m" * 10_000 + b" HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n" + b"X-Long: " + b"v" * 10_000 + b"\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n",
    ],
)
async def test_malformed_requests_get_400(listening: Listening, request_bytes: bytes) -> None:
    answer = await listening.raw(request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")


async def test_a_client_that_sends_nothing_is_dropped() -> None:
    served = await _listening(read_timeout=0.05)
    try:
        assert await served.raw(b"GET /metr") == b""
        # The server still answers others.
        assert (await served.fetch("/healthz")).status == 200
    finally:
        await served.server.stop()


async def test_a_client_that_goes_away_does_not_hurt(listening: Listening) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", listening.port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")
    writer.close()
    await writer.wait_closed()
    assert (await listening.fetch("/healthz")).status == 200


async def test_stop_closes_the_listener_and_open_connections() -> None:
    served = await _listening()
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never finishes the request
    await writer.drain()
    await served.server.stop()
    with contextlib.suppress(ConnectionResetError):  # a reset or an end: either is closed
        assert await reader.read() == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", served.port)
    await served.server.stop()  # stopping twice is fine


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_every_address_means_ipv4_and_ipv6_on_one_port() -> None:
    server = MetricsServer(Metrics(), Readiness())
    port = await server.start("[::]:0")
    try:
        hosts = ["127.0.0.1", "[::1]"] if _ipv6() else ["127.0.0.1"]
        for host in hosts:
            url = f"http://{host}:{port}/healthz"
            reply = await asyncio.to_thread(_send, urllib.request.Request(url))
            assert reply.status == 200
    finally:
        await server.stop()


@pytest.mark.parametrize("address", ["9464", "localhost", "127.0.0.1:port", "127.0.0.1:70000", ""])
async def test_a_bad_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        await MetricsServer(Metrics(), Readiness()).start(address)


async def test_a_taken_port_is_an_error(listening: Listening) -> None:
    other = MetricsServer(Metrics(), Readiness())
    with pytest.raises(OSError, match="in use"):
        await other.start(f"127.0.0.1:{listening.port}")


async def test_it_starts_once(listening: Listening) -> None:
    with pytest.raises(RuntimeError):
        await listening.server.start("127.0.0.1:0")


def test_two_instances_keep_separate_series() -> None:
    first, second = Metrics(), Metrics()
    first.rate_limited("read")
    assert series(first.registry, "rate_limited_total") == {labels(method_class="read"): 1}
    assert series(second.registry, "rate_limited_total") == {}


class _Broken:
    def collect(self) -> list[Any]:
        raise RuntimeError("a collector bug")


async def test_a_failing_collector_is_a_500_not_a_dropped_connection(
    listening: Listening, caplog: pytest.LogCaptureFixture
) -> None:
    listening.metrics.registry.register(_Broken())
    reply = await listening.fetch("/metrics")
    assert reply.status == 500
    assert b"a collector bug" not in reply.body
    assert "collecting the series failed" in caplog.text
    assert (await listening.fetch("/healthz")).status == 200
