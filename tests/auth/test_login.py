"""AuthService.Login on a real gRPC server: tokens for good passwords, one refusal for the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import grpc
import jwt
import pytest
from google.rpc import error_details_pb2

from switchboard.server.api import AuthServicer
from switchboard.server.auth import Caller, TokenVerifier
from switchboard.server.auth.passwords import hash_password
from switchboard.server.config import AuthConfig
from switchboard.server.interceptors import ErrorsInterceptor
from switchboard.server.store import User, UserStore
from switchboard.v1 import auth_pb2, auth_pb2_grpc
from tests.api.statuses import detail, failure
from tests.auth.tokens import AUDIENCE, ISSUER, SECRET, hs_config

PASSWORD = "correct horse battery staple"
REFUSED = "invalid username or password"


@pytest.fixture(scope="module")
def password_hash() -> str:
    """One argon2id hash of PASSWORD for every user (hashing takes ~0.1 s)."""
    return hash_password(PASSWORD)


@pytest.fixture
async def users(sqlite_url: str, password_hash: str) -> AsyncIterator[UserStore]:
    """alice (tasks), root (admin, of tenant acme) and disabled dave, all with PASSWORD."""
    store = await UserStore.open(sqlite_url, migrate=True)
    for user in (
        User("alice", password_hash, ("tasks:read", "tasks:write")),
        User("root", password_hash, ("admin",), owner="acme"),
        User("dave", password_hash, ("tasks:read",), disabled=True),
    ):
        await store.add_user(user)
    try:
        yield store
    finally:
        await store.close()


@dataclass
class AuthServer:
    stub: Any
    config: AuthConfig


@pytest.fixture
async def serve(users: UserStore) -> AsyncIterator[Callable[..., Awaitable[AuthServer]]]:
    """``await serve(**auth_settings)``: AuthService (login on) behind the errors interceptor."""
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def start(**overrides: Any) -> AuthServer:
        config = hs_config(**({"login": {"enabled": True}} | overrides))
        server = grpc.aio.server(interceptors=[ErrorsInterceptor()])
        auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(users, config), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
        return AuthServer(auth_pb2_grpc.AuthServiceStub(channels[-1]), config)

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def _login(username: str, password: str = PASSWORD) -> auth_pb2.LoginRequest:
    return auth_pb2.LoginRequest(username=username, password=password)


async def test_a_good_password_gets_a_token_that_verifies(serve: Any) -> None:
    server = await serve(login={"enabled": True, "token_ttl": 900})
    before = datetime.now(UTC).replace(microsecond=0)
    response = await server.stub.Login(_login("alice"))
    assert response.token_type == "Bearer"
    assert response.expires_in.ToTimedelta() == timedelta(minutes=15)
    assert list(response.scopes) == ["tasks:read", "tasks:write"]
    claims = jwt.decode(
        response.access_token,
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["sub", "scope", "iat", "nbf", "exp", "jti"]},
    )
    assert claims["sub"] == "alice"
    assert claims["scope"] == "tasks:read tasks:write"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["iat"] >= before.timestamp()
    assert response.expire_time.ToDatetime(UTC) == datetime.fromtimestamp(claims["exp"], UTC)
    caller = await TokenVerifier(server.config).verify(response.access_token)
    assert caller == Caller("alice", "alice", frozenset({"tasks:read", "tasks:write"}))


async def test_the_users_owner_owns_the_callers_tasks(serve: Any) -> None:
    server = await serve(tenant_claim="tenant")
    root = await server.stub.Login(_login("root"))
    alice = await server.stub.Login(_login("alice"))
    verifier = TokenVerifier(server.config)
    assert await verifier.verify(root.access_token) == Caller("root", "acme", frozenset({"admin"}))
    assert (await verifier.verify(alice.access_token)).owner == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong password"),
        ("alice", PASSWORD.upper()),
        ("Alice", PASSWORD),
        ("nobody", PASSWORD),
        ("dave", PASSWORD),  # disabled: right password, refused all the same
        ("dave", "wrong password"),
    ],
)
async def test_every_refusal_looks_the_same(serve: Any, username: str, password: str) -> None:
    server = await serve()
    _, status = await failure(server.stub.Login(_login(username, password)))
    assert status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert status.message == REFUSED
    info = detail(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "INVALID_CREDENTIALS",
        "switchboard.dev",
        {},
    )


async def test_an_enabled_user_logs_in_again(serve: Any, users: UserStore) -> None:
    server = await serve()
    await users.set_disabled("dave", False)
    response = await server.stub.Login(_login("dave"))
    assert (await TokenVerifier(server.config).verify(response.access_token)).subject == "dave"
    await users.set_disabled("alice", True)
    _, status = await failure(server.stub.Login(_login("alice")))
    assert status.message == REFUSED


@pytest.mark.parametrize(
    ("username", "password", "fields"),
    [
        ("", PASSWORD, ["username"]),
        ("alice", "", ["password"]),
        ("", "", ["username", "password"]),
        ("a" * 257, PASSWORD, ["username"]),
        ("alice", "p" * 1025, ["password"]),
    ],
)
async def test_empty_or_oversized_credentials_are_invalid_arguments(
    serve: Any, username: str, password: str, fields: list[str]
) -> None:
    server = await serve()
    _, status = await failure(server.stub.Login(_login(username, password)))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    violations = detail(status, error_details_pb2.BadRequest).field_violations
    assert [violation.field for violation in violations] == fields


async def test_a_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id(
    serve: Any, users: UserStore
) -> None:
    old = bcrypt.hashpw(b"an imported password", bcrypt.gensalt(rounds=4)).decode()
    await users.add_user(User("imported", old, ("tasks:read",)))
    server = await serve()
    await server.stub.Login(_login("imported", "an imported password"))
    upgraded = await users.get_user("imported")
    assert upgraded is not None
    assert upgraded.password_hash.startswith("$argon2id$")
    await server.stub.Login(_login("imported", "an imported password"))
    _, status = await failure(server.stub.Login(_login("imported", "wrong password")))
    assert status.message == REFUSED


async def test_a_user_with_an_unreadable_hash_is_refused_like_any_other(
    serve: Any, users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    await users.add_user(User("broken", "not a hash", ("tasks:read",)))
    server = await serve()
    _, status = await failure(server.stub.Login(_login("broken")))
    assert status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert status.message == REFUSED
    assert "'broken' has a password hash of no known format" in caplog.text


async def test_passwords_never_reach_the_log(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    server = await serve()
    await server.stub.Login(_login("alice"))
    await failure(server.stub.Login(_login("alice", "a wrong one")))
    assert "login refused for 'alice': wrong password" in caplog.text
    assert PASSWORD not in caplog.text
    assert "a wrong one" not in caplog.text


async def test_login_off_is_unimplemented(serve: Any) -> None:
    server = await serve(login={"enabled": False})
    _, status = await failure(server.stub.Login(_login("alice")))
    assert status.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert "auth.login.enabled" in status.message
    assert detail(status, error_details_pb2.ErrorInfo).reason == "LOGIN_DISABLED"


def test_login_off_needs_no_signing_key(users: UserStore) -> None:
    AuthServicer(users, AuthConfig())


def test_login_on_without_a_usable_key_fails_at_construction(users: UserStore) -> None:
    with pytest.raises(ValueError, match=r"auth\.secret: required"):
        AuthServicer(users, AuthConfig(login={"enabled": True}))
    with pytest.raises(ValueError, match=r"auth\.login\.token_ttl: at least 1 s"):
        AuthServicer(users, hs_config(login={"enabled": True, "token_ttl": 0.5}))
