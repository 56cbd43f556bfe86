"""AuthService: built-in login, for deployments without an identity provider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from grpc_status import rpc_status

from switchboard.server.api.status import rich_status
from switchboard.server.auth.login import Authenticator
from switchboard.server.config import AuthConfig
from switchboard.server.store import UserStore
from switchboard.v1 import auth_pb2, auth_pb2_grpc

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]

LOGIN_DISABLED = "LOGIN_DISABLED"
"""The ErrorInfo reason of Login while built-in login is off."""


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """``switchboard.v1.AuthService`` on the users of ``users``.

    While ``auth.login.enabled`` is off, Login answers UNIMPLEMENTED (gRPC's code for
    "not supported or not enabled by this server") and nothing else is needed; when
    on, a ValueError naming the setting says the signing key is unusable.
    """

    def __init__(self, users: UserStore, auth: AuthConfig) -> None:
        self._authenticator = Authenticator(users, auth) if auth.login.enabled else None

    async def Login(  # noqa: N802 - the RPC's name
        self, request: auth_pb2.LoginRequest, context: Context
    ) -> auth_pb2.LoginResponse:
        """A bearer token for a user's name and password."""
        if self._authenticator is None:
            status = rich_status(
                "UNIMPLEMENTED",
                "built-in login is off on this server (auth.login.enabled)",
                LOGIN_DISABLED,
            )
            grpc_status = rpc_status.to_status(status)
            await context.abort(
                grpc_status.code, grpc_status.details, grpc_status.trailing_metadata
            )
        issued = await self._authenticator.login(request.username, request.password)
        expires_in = duration_pb2.Duration()
        expires_in.FromTimedelta(issued.ttl)
        expire_time = timestamp_pb2.Timestamp()
        expire_time.FromDatetime(issued.expire_time)
        return auth_pb2.LoginResponse(
            access_token=issued.token,
            token_type="Bearer",
            expires_in=expires_in,
            expire_time=expire_time,
            scopes=issued.scopes,
        )
