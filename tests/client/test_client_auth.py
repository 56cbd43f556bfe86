"""Bearer tokens from the clients and swb: token=, login, --token, $SWITCHBOARD_TOKEN.

The server is AuthService (built-in login on) next to the ErrorService, whose GetTask
echoes the ``authorization`` metadata it received as the task's output_text.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from switchboard.client import Client, SwitchboardError, UnauthenticatedError
from switchboard.server.api import AuthServicer
from switchboard.server.auth import TokenVerifier
from switchboard.server.auth.passwords import hash_password
from switchboard.server.interceptors import ErrorsInterceptor
from switchboard.server.store import User, UserStore
from switchboard.v1 import auth_pb2_grpc, tasks_pb2_grpc
from tests.auth.tokens import hs_config
from tests.e2e.programs import Completed

from .conftest import SWB, ConnectCalls
from .services import ErrorService

PASSWORD = "correct horse battery staple"
CONFIG = hs_config(login={"enabled": True})


@pytest.fixture
async def address(sqlite_url: str) -> AsyncIterator[str]:
    """A server with login on for alice (PASSWORD), and the echoing ErrorService."""
    users = await UserStore.open(sqlite_url, migrate=True)
    await users.add_user(User("alice", hash_password(PASSWORD), ("tasks:read",)))
    server = grpc.aio.server(interceptors=[ErrorsInterceptor()])
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(users, CONFIG), server)
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(ErrorService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await users.close()


async def test_a_token_goes_with_every_call(connect: ConnectCalls, address: str) -> None:
    calls = connect(address, token="t0ken")
    assert (await calls("get", "echo")).output_text == "Bearer t0ken"
    calls.client.use_token("other")
    assert (await calls("get", "echo")).output_text == "Bearer other"
    calls.client.use_token(None)
    assert (await calls("get", "echo")).output_text == ""


def test_a_token_in_two_places_is_refused() -> None:
    with pytest.raises(ValueError, match="either as token= or in metadata"):
        Client("localhost:1", token="a", metadata={"Authorization": "Bearer b"})


async def test_login_returns_a_token_the_later_calls_send(
    connect: ConnectCalls, address: str
) -> None:
    calls = connect(address, metadata={"x-team": "qa"})
    response = await calls("login", "alice", PASSWORD)
    assert response.token_type == "Bearer"
    assert list(response.scopes) == ["tasks:read"]
    assert (await TokenVerifier(CONFIG).verify(response.access_token)).subject == "alice"
    echoed = await calls("get", "echo")
    assert echoed.output_text == f"Bearer {response.access_token}"


async def test_a_refused_login_is_a_typed_error(connect: ConnectCalls, address: str) -> None:
    calls = connect(address)
    with pytest.raises(UnauthenticatedError) as caught:
        await calls("login", "alice", "wrong password")
    assert caught.value.reason == "INVALID_CREDENTIALS"
    assert caught.value.message == "invalid username or password"
    assert (await calls("get", "echo")).output_text == ""  # no token was kept


async def _swb(
    address: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> Completed:
    """``swb`` with ``stdin`` as its standard input (the server runs in this loop)."""
    process = await asyncio.create_subprocess_exec(
        SWB,
        "--address",
        address,
        *args,
        env={**{k: v for k, v in os.environ.items() if k != "SWITCHBOARD_TOKEN"}, **(env or {})},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return Completed((str(SWB), *args), process.returncode, stdout.decode(), stderr.decode())


async def test_swb_login_prints_a_token_that_swb_then_sends(address: str) -> None:
    login = (await _swb(address, "login", "alice", "--password-stdin", stdin=PASSWORD)).check()
    token = login.stdout.strip()
    assert login.stdout == token + "\n"
    assert (await TokenVerifier(CONFIG).verify(token)).subject == "alice"

    from_env = await _swb(address, "get", "echo", "--json", env={"SWITCHBOARD_TOKEN": token})
    assert f'"outputText": "Bearer {token}"' in from_env.check().stdout
    flag = await _swb(
        address, "--token", "flag", "get", "echo", "--json", env={"SWITCHBOARD_TOKEN": "env"}
    )
    assert '"outputText": "Bearer flag"' in flag.check().stdout
    after = await _swb(address, "get", "echo", "--json", "--token", "after")
    assert '"outputText": "Bearer after"' in after.check().stdout


async def test_swb_says_how_to_pass_a_token_except_when_a_login_fails(address: str) -> None:
    refused = await _swb(address, "get", "code:UNAUTHENTICATED")
    assert refused.returncode == 1
    assert "pass a token with --token or $SWITCHBOARD_TOKEN" in refused.stderr
    bad_login = await _swb(address, "login", "alice", stdin="wrong password\n")
    assert bad_login.returncode == 1
    assert bad_login.stderr == "error: UNAUTHENTICATED: invalid username or password\n"


async def test_login_on_a_server_without_it(tmp_path: Path) -> None:
    users = await UserStore.open(f"sqlite+aiosqlite:///{tmp_path / 'db'}", migrate=True)
    server = grpc.aio.server(interceptors=[ErrorsInterceptor()])
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(users, hs_config()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        with pytest.raises(SwitchboardError) as caught:
            await asyncio.to_thread(_login, f"127.0.0.1:{port}")
        assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
        assert caught.value.reason == "LOGIN_DISABLED"
    finally:
        await server.stop(None)
        await users.close()


def _login(address: str) -> None:
    with Client(address) as client:
        client.login("alice", PASSWORD)
