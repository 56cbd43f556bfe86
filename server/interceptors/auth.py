"""Authentication and authorization of every call: a bearer token, then a scope.

With ``auth.mode`` "none" every call passes and ``current_caller`` stays None (one
anonymous owner). With "jwt" a call must carry exactly one ``authorization: Bearer
<token>`` header; the token is verified, the method's scope checked, and the caller
set in ``current_caller`` for the handler. Health, reflection and login need no
credentials; a method the server does not serve stays UNIMPLEMENTED (grpcurl tells
"no such method" from "not allowed" by it). Refusals are domain errors, which the
errors interceptor outside turns into statuses.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

from switchboard.server.auth import current_caller
from switchboard.server.auth.permissions import authorize, is_public
from switchboard.server.auth.verifier import TokenVerifier
from switchboard.server.config import AuthConfig
from switchboard.server.domain import Unauthenticated
from switchboard.server.interceptors.handlers import (
    Call,
    CallScope,
    Context,
    Handler,
    ServerInterceptor,
    wrap,
)

_log = logging.getLogger(__name__)

_BEHAVIOURS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class AuthInterceptor(ServerInterceptor):
    """Verifies the caller of each call and checks the scope its method needs."""

    def __init__(self, verifier: TokenVerifier | None, config: AuthConfig) -> None:
        """``verifier`` checks tokens; it may be None only when ``config.mode`` is "none"."""
        if config.mode == "jwt" and verifier is None:
            raise ValueError("auth.mode 'jwt' needs a token verifier")
        self._verifier = verifier if config.mode == "jwt" else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """Wrap the handler of a protected method in the check (others pass as they are)."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or self._verifier is None or is_public(method):
            return handler
        if not _runs_on_the_loop(handler):
            # wrap() leaves handlers on gRPC's thread pool alone: unchecked, they
            # would be open to anyone, so they are not served at all.
            _log.error("%s: a synchronous handler cannot be authenticated; not serving it", method)
            return None  # type: ignore[return-value]
        verifier = self._verifier

        def scope(call: Call, request: Any, context: Context) -> _AuthScope:
            return _AuthScope(verifier, call, context)

        return wrap(handler, method, scope)  # type: ignore[return-value]


class _AuthScope(CallScope):
    def __init__(self, verifier: TokenVerifier, call: Call, context: Context) -> None:
        self._verifier = verifier
        self._call = call
        self._context = context

    async def entered(self) -> None:
        """Verify the bearer token and the method's scope; set the caller."""
        caller = await self._verifier.verify(_bearer(self._context.invocation_metadata() or ()))
        # Set before the scope check, so the access log names whoever was denied. Never
        # reset: the metrics interceptor outside reads the caller in its own exited(),
        # after this scope has exited. Nothing leaks, as each call runs in its own task
        # (and context), which ends with the call.
        current_caller.set(caller)
        authorize(caller, self._call.method)


def _bearer(metadata: Iterable[tuple[str, Any]]) -> str:
    """The token of the one ``authorization: Bearer <token>`` header."""
    values = [value for key, value in metadata if key.lower() == "authorization"]
    if not values:
        raise Unauthenticated("missing bearer token", reason="TOKEN_MISSING")
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header", reason="TOKEN_MALFORMED")
    scheme, _, token = str(values[0]).partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthenticated("expected 'authorization: Bearer <token>'", reason="TOKEN_MALFORMED")
    return token


def _runs_on_the_loop(handler: Handler) -> bool:
    behaviour = next(getattr(handler, name) for name in _BEHAVIOURS if getattr(handler, name))
    return inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)
