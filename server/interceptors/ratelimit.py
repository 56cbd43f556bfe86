"""The innermost interceptor: per-caller GCRA budgets, one per method class.

A call spends units of its caller's budget in its method class (``write``, ``read``,
``agents``, ``login``; BatchExecute spends one per task) before its handler runs.
The caller is the verified subject the auth interceptor (just outside this one) put
in ``current_caller``, or the peer's address without its port when there is none.
Over the limit, the call fails with RESOURCE_EXHAUSTED, reason RATE_LIMITED and the
delay after which it would pass; the errors interceptor turns that into RetryInfo
and a ``retry-after`` trailer. Health, reflection and every other method are free.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import unquote

import grpc

from switchboard.server.auth.identity import current_caller
from switchboard.server.config import RateLimitConfig
from switchboard.server.domain import ResourceExhausted
from switchboard.server.interceptors.handlers import (
    Call,
    CallScope,
    Context,
    Handler,
    ScopeFactory,
    ServerInterceptor,
    wrap,
)
from switchboard.server.ratelimit import Decision, Limit, Limiter

_TASKS = "/switchboard.v1.TaskService/"
_AGENTS = "/switchboard.v1.AgentService/"
_BATCH = f"{_TASKS}BatchExecute"
_LOGIN = "/switchboard.v1.AuthService/Login"
_CLASSES = {
    f"{_TASKS}Execute": "write",
    _BATCH: "write",
    f"{_TASKS}SubmitTask": "write",
    f"{_TASKS}CancelTask": "write",
    f"{_TASKS}GetTask": "read",
    f"{_TASKS}ListTasks": "read",
    f"{_TASKS}WatchTask": "read",
    _LOGIN: "login",
}


def method_class(method: str) -> str | None:
    """The rate-limit class of a full method name, or None for methods never limited."""
    if method.startswith(_AGENTS):
        return "agents"
    return _CLASSES.get(method)


def peer_host(peer: str | None) -> str:
    """A gRPC peer without its port: ``ipv6:%5B::1%5D:5000`` -> ``ipv6:[::1]``.

    Each connection has a port of its own, so a budget per peer must drop it.
    Peers of other kinds (``unix:/path``) are kept whole.
    """
    if not peer:
        return "unknown"
    peer = unquote(peer)
    scheme, _, address = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return peer
    host, separator, _port = address.rpartition(":")
    return f"{scheme}:{host if separator else address}"


class RateLimitInterceptor(ServerInterceptor):
    """Refuses calls over their caller's budget (see the module doc).

    ``on_limited(method_class)`` is called for every refused call (for a
    ``rate_limited_total{method_class}`` counter). With ``config.enabled`` False
    every call passes untouched.
    """

    def __init__(
        self,
        limiter: Limiter,
        config: RateLimitConfig,
        on_limited: Callable[[str], None] | None = None,
    ) -> None:
        self._limiter = limiter
        self._enabled = config.enabled
        self._limits = {
            "write": Limit(config.write.rate, config.write.burst),
            "read": Limit(config.read.rate, config.read.burst),
            "agents": Limit(config.agents.rate, config.agents.burst),
            "login": Limit(config.login.rate, config.login.burst),
        }
        self._on_limited = on_limited

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler of a limited method in a budget check."""
        handler = await continuation(handler_call_details)
        limited = method_class(handler_call_details.method) if self._enabled else None
        if limited is None:
            return handler
        return wrap(handler, handler_call_details.method, self._scope(limited))  # type: ignore[return-value]

    def _scope(self, limited: str) -> ScopeFactory:
        def scope(call: Call, request: Any, context: Context) -> _BudgetScope:
            return _BudgetScope(partial(self._admit, limited, call, request, context))

        return scope

    async def _admit(self, limited: str, call: Call, request: Any, context: Context) -> None:
        # Spends the call's units, or raises RESOURCE_EXHAUSTED (reason RATE_LIMITED).
        cost = max(1, len(request.requests)) if call.method == _BATCH else 1
        keys = [f"{limited}:{_caller(context)}"]
        if call.method == _LOGIN and request.username:
            # Guessing one account's password from many addresses spends one budget too.
            keys.append(f"{limited}:account:{request.username.lower()[:256]}")
        for key in keys:
            decision = await self._limiter.acquire(key, self._limits[limited], cost)
            if not decision.allowed:
                if self._on_limited is not None:
                    self._on_limited(limited)
                raise _RateLimited(limited, self._limits[limited], cost, decision)


class _BudgetScope(CallScope):
    def __init__(self, admit: Callable[[], Awaitable[None]]) -> None:
        self._admit = admit

    async def entered(self) -> None:
        """Spend the call's units, or refuse it."""
        await self._admit()


class _RateLimited(ResourceExhausted):
    """Over a caller's budget; ``retry_after`` None when the call can never pass."""

    def __init__(self, limited: str, limit: Limit, cost: int, decision: Decision) -> None:
        if decision.retry_after is None:
            message = (
                f"rate limit: this call costs {cost} units, more than the burst of "
                f"{limit.burst} of method class {limited!r}; it can never be allowed"
            )
        else:
            message = (
                f"rate limit of method class {limited!r} exceeded; retry in "
                f"{decision.retry_after.total_seconds():g} s"
            )
        super().__init__(message, reason="RATE_LIMITED", retry_after=decision.retry_after)
        self.method_class = limited

    @property
    def metadata(self) -> dict[str, str]:
        """The method class whose budget ran out."""
        return {"method_class": self.method_class}


def _caller(context: Context) -> str:
    # Prefixed so that no subject can take a peer's budget, nor a peer a subject's.
    caller = current_caller.get()
    if caller is not None:
        return f"user:{caller.subject}"
    return f"peer:{peer_host(context.peer())}"
