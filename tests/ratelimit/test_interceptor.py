"""The rate-limit interceptor on real grpc.aio servers, behind the errors interceptor."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from switchboard.server.auth.identity import Caller, current_caller
from switchboard.server.config import RateClass, RateLimitConfig
from switchboard.server.domain import ERROR_DOMAIN
from switchboard.server.interceptors import ErrorsInterceptor
from switchboard.server.interceptors.handlers import Handler, ServerInterceptor, wrap
from switchboard.server.interceptors.ratelimit import (
    RateLimitInterceptor,
    method_class,
    peer_host,
)
from switchboard.server.ratelimit import Limiter, LocalLimiter, RedisLimiter
from switchboard.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from tests.api.statuses import detail, failure
from tests.cache.support import FakeClock

SUBJECT = "x-test-subject"
# Slow enough that nothing refills while a test runs, on any clock.
TIGHT = RateLimitConfig(
    write=RateClass(rate=0.5, burst=3),
    read=RateClass(rate=0.5, burst=2),
    agents=RateClass(rate=0.5, burst=1),
    login=RateClass(rate=0.5, burst=1),
)


class _Tasks(tasks_pb2_grpc.TaskServiceServicer):
    """Every style of handler the limited classes have, doing nothing much."""

    async def Execute(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        return tasks_pb2.ExecuteResponse()

    async def BatchExecute(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802 - the RPC's name
        for index in range(len(request.requests)):
            yield tasks_pb2.BatchExecuteResponse(index=index)

    async def WatchTask(self, request: Any, context: Any) -> None:  # noqa: N802 - the RPC's name
        await context.write(tasks_pb2.WatchTaskResponse())

    async def GetTask(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        return tasks_pb2.GetTaskResponse()


class _Auth(auth_pb2_grpc.AuthServiceServicer):
    async def Login(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        return auth_pb2.LoginResponse()


class _Agents(agents_pb2_grpc.AgentServiceServicer):
    async def ListAgents(self, request: Any, context: Any) -> Any:  # noqa: N802 - the RPC's name
        return agents_pb2.ListAgentsResponse()


class _FakeAuth(ServerInterceptor):
    """Stands in for the auth interceptor: the subject named in metadata is the caller."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        subject = dict(details.invocation_metadata or ()).get(SUBJECT)
        if subject is None:
            return handler
        caller = Caller(subject=str(subject), owner=str(subject))
        return wrap(handler, details.method, lambda *_: _AsCaller(caller))  # type: ignore[return-value]


class _AsCaller:
    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def __aenter__(self) -> _AsCaller:
        self._token = current_caller.set(self._caller)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        current_caller.reset(self._token)

    def sent(self) -> None:
        """Nothing to do per message."""


@dataclass
class Served:
    """Stubs on a channel to a server with the limiter, and the classes it refused."""

    tasks: Any
    agents: Any
    auth: Any
    health: Any
    channel: grpc.aio.Channel
    limited: list[str] = field(default_factory=list)


async def _serve(
    limiter: Limiter, config: RateLimitConfig, limited: list[str]
) -> tuple[grpc.aio.Server, int]:
    interceptor = RateLimitInterceptor(limiter, config, on_limited=limited.append)
    server = grpc.aio.server(interceptors=[ErrorsInterceptor(), _FakeAuth(), interceptor])
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(_Tasks(), server)
    agents_pb2_grpc.add_AgentServiceServicer_to_server(_Agents(), server)
    auth_pb2_grpc.add_AuthServiceServicer_to_server(_Auth(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    """Start servers with a limiter and a config; stop them after the test."""
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def start(limiter: Limiter | None = None, config: RateLimitConfig = TIGHT) -> Served:
        limited: list[str] = []
        server, port = await _serve(limiter or LocalLimiter(clock=FakeClock()), config, limited)
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return Served(
            tasks_pb2_grpc.TaskServiceStub(channel),
            agents_pb2_grpc.AgentServiceStub(channel),
            auth_pb2_grpc.AuthServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            channel,
            limited,
        )

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def _as(subject: str) -> Sequence[tuple[str, str]]:
    return ((SUBJECT, subject),)


def _batch(size: int) -> Any:
    return tasks_pb2.BatchExecuteRequest(requests=[tasks_pb2.ExecuteRequest()] * size)


async def _refused(call: Any, *, streaming: bool = False) -> tuple[Any, Any]:
    """The google.rpc.Status of a refused call and its trailers; nothing was received."""
    received, status = await failure(call, streaming=streaming)
    assert received == []
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    info = detail(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("RATE_LIMITED", ERROR_DOMAIN)
    return status, dict(await call.trailing_metadata())


async def test_the_call_after_the_burst_is_refused_with_when_to_retry(serve: Any) -> None:
    served = await serve()
    for _ in range(3):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest())
    status, trailers = await _refused(served.tasks.Execute(tasks_pb2.ExecuteRequest()))
    assert detail(status, error_details_pb2.ErrorInfo).metadata == {"method_class": "write"}
    retry = detail(status, error_details_pb2.RetryInfo).retry_delay.ToTimedelta()
    assert retry == timedelta(seconds=2)
    assert trailers["retry-after"] == str(math.ceil(retry.total_seconds()))
    assert "method class 'write'" in status.message
    assert served.limited == ["write"]


async def test_a_batch_costs_one_unit_per_task(serve: Any) -> None:
    served = await serve()
    assert [r.index async for r in served.tasks.BatchExecute(_batch(2))] == [0, 1]
    # Two units are gone, one is left: a batch of two is refused whole, before any result.
    await _refused(served.tasks.BatchExecute(_batch(2)), streaming=True)
    await served.tasks.Execute(tasks_pb2.ExecuteRequest())
    await _refused(served.tasks.Execute(tasks_pb2.ExecuteRequest()))
    assert served.limited == ["write", "write"]


async def test_a_batch_larger_than_the_burst_can_never_pass(serve: Any) -> None:
    served = await serve()
    status, trailers = await _refused(served.tasks.BatchExecute(_batch(4)), streaming=True)
    assert "costs 4 units, more than the burst of 3" in status.message
    with pytest.raises(AssertionError, match="RetryInfo"):
        detail(status, error_details_pb2.RetryInfo)
    assert "retry-after" not in trailers
    # Nothing was spent: the burst is all there.
    assert [r.index async for r in served.tasks.BatchExecute(_batch(3))] == [0, 1, 2]


async def test_each_method_class_has_its_own_budget_for_every_style(serve: Any) -> None:
    served = await serve()
    for _ in range(3):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest())
    # read: a unary call and a context.write() stream share the class's budget of two.
    await served.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id="t"))
    assert len([r async for r in served.tasks.WatchTask(tasks_pb2.WatchTaskRequest())]) == 1
    await _refused(served.tasks.WatchTask(tasks_pb2.WatchTaskRequest()), streaming=True)
    await served.agents.ListAgents(agents_pb2.ListAgentsRequest())
    await _refused(served.agents.ListAgents(agents_pb2.ListAgentsRequest()))
    assert served.limited == ["read", "agents"]


async def test_callers_have_separate_budgets(serve: Any) -> None:
    served = await serve()
    for _ in range(3):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("alice"))
    await _refused(served.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("alice")))
    for _ in range(3):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("bob"))
    # Unauthenticated calls are limited by their peer, which is neither subject.
    for _ in range(3):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest())
    await _refused(served.tasks.Execute(tasks_pb2.ExecuteRequest()))
    # A subject named like the peer does not share the peer's budget.
    await served.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("ipv4:127.0.0.1"))


async def test_logins_to_one_account_share_a_budget_across_callers(serve: Any) -> None:
    served = await serve()  # login: burst 1
    guess = auth_pb2.LoginRequest(username="Alice", password="wrong")
    await served.auth.Login(guess, metadata=_as("first-address"))
    # Another caller, with a fresh budget of its own, guessing the same account.
    again = auth_pb2.LoginRequest(username="alice", password="wrong again")
    await _refused(served.auth.Login(again, metadata=_as("second-address")))
    # Another account is not affected.
    other = auth_pb2.LoginRequest(username="bob", password="x")
    await served.auth.Login(other, metadata=_as("third-address"))
    assert served.limited == ["login"]


async def test_health_is_never_limited(serve: Any) -> None:
    served = await serve(config=TIGHT.model_copy(update={"read": RateClass(rate=0.5, burst=1)}))
    for _ in range(20):
        reply = await served.health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = served.health.Watch(health_pb2.HealthCheckRequest())
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    assert served.limited == []


async def test_unknown_methods_are_still_unimplemented(serve: Any) -> None:
    served = await serve()
    unknown = served.channel.unary_unary("/switchboard.v1.TaskService/Nope")
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unknown(b"")
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_disabled_limits_let_everything_through(serve: Any) -> None:
    served = await serve(config=TIGHT.model_copy(update={"enabled": False}))
    for _ in range(10):
        await served.tasks.Execute(tasks_pb2.ExecuteRequest())
    assert [r.index async for r in served.tasks.BatchExecute(_batch(20))] == list(range(20))
    assert served.limited == []


async def test_two_servers_on_one_redis_share_a_budget(
    serve: Any, redis_url: str, redis_prefix: str
) -> None:
    clock = FakeClock()
    limiters = [
        RedisLimiter(Redis.from_url(redis_url), prefix=redis_prefix, clock=clock) for _ in range(2)
    ]
    try:
        first, second = [await serve(limiter) for limiter in limiters]
        await first.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("alice"))
        assert [r.index async for r in second.tasks.BatchExecute(_batch(2), metadata=_as("alice"))]
        await _refused(first.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("alice")))
        await second.tasks.Execute(tasks_pb2.ExecuteRequest(), metadata=_as("bob"))
    finally:
        for limiter in limiters:
            await limiter.aclose()
    assert [limiter.fallbacks for limiter in limiters] == [0, 0]


async def test_with_redis_down_calls_pass_up_to_the_local_budget(serve: Any) -> None:
    limiter = RedisLimiter(Redis.from_url("redis://127.0.0.1:1/0"), local_clock=FakeClock())
    try:
        served = await serve(limiter)
        for _ in range(3):
            await served.tasks.Execute(tasks_pb2.ExecuteRequest())
        await _refused(served.tasks.Execute(tasks_pb2.ExecuteRequest()))
    finally:
        await limiter.aclose()
    assert (limiter.degraded, limiter.fallbacks) == (True, 4)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("/switchboard.v1.TaskService/BatchExecute", "write"),
        ("/switchboard.v1.TaskService/CancelTask", "write"),
        ("/switchboard.v1.TaskService/ListTasks", "read"),
        ("/switchboard.v1.AgentService/GetAgent", "agents"),
        ("/switchboard.v1.AuthService/Login", "login"),
        ("/grpc.health.v1.Health/Check", None),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None),
        ("/switchboard.v1.TaskService/Nope", None),
        ("", None),
    ],
)
def test_method_classes(method: str, expected: str | None) -> None:
    assert method_class(method) == expected


@pytest.mark.parametrize("descriptor", [tasks_pb2.DESCRIPTOR, agents_pb2.DESCRIPTOR])
def test_every_method_of_the_api_is_limited(descriptor: Any) -> None:
    # A new RPC must be given a class here, not slip through unlimited.
    for service in descriptor.services_by_name.values():
        for method in service.methods:
            assert method_class(f"/{service.full_name}/{method.name}") is not None, method.name


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:45086", "ipv4:127.0.0.1"),
        ("ipv6:%5B::1%5D:56186", "ipv6:[::1]"),
        ("ipv6:[2001:db8::7]:443", "ipv6:[2001:db8::7]"),
        ("unix:/run/switchboard.sock", "unix:/run/switchboard.sock"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_peers_lose_their_port(peer: str | None, host: str) -> None:
    assert peer_host(peer) == host
