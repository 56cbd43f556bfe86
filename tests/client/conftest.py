"""Fixtures of the client tests: both clients behind one awaitable face, and the CLI."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from switchboard.client import AsyncClient, Client
from tests.e2e.programs import Completed, run_process

SWB = Path(sys.executable).with_name("swb")


class Calls:
    """Call either client the same way: ``await calls("get", task_id)``.

    Streams come back as lists. The sync client runs in a worker thread: the
    server under test serves in this event loop, which a blocking call would stall.
    """

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self.client, method)
        if isinstance(self.client, AsyncClient):
            result = function(*args, **kwargs)
            if inspect.isasyncgen(result):
                return [item async for item in result]
            return await result

        def call() -> Any:
            result = function(*args, **kwargs)
            return list(result) if inspect.isgenerator(result) else result

        return await asyncio.to_thread(call)

    async def close(self) -> None:
        """Close the client's channel."""
        if isinstance(self.client, AsyncClient):
            await self.client.close()
        else:
            self.client.close()


ConnectCalls = Callable[..., Calls]


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[ConnectCalls]:
    """``connect(address, **settings)``: a client of the kind under test, closed afterwards."""
    opened: list[Calls] = []

    def open_calls(address: str, **settings: Any) -> Calls:
        kind = Client if request.param == "sync" else AsyncClient
        opened.append(Calls(kind(address, **settings)))
        return opened[-1]

    yield open_calls
    for calls in opened:
        await calls.close()


@pytest.fixture
async def calls(connect: ConnectCalls, running_server: Any) -> Calls:
    """A client of each kind (the test runs once per kind) on a fresh real server."""
    return connect(running_server.address)


Swb = Callable[..., Awaitable[Completed]]


@pytest.fixture
def swb(running_server: Any) -> Swb:
    """``await swb(*args, env=None)``: the real ``swb`` console script on the server."""

    async def run(*args: str, env: dict[str, str] | None = None) -> Completed:
        return await run_process(SWB, "--address", running_server.address, *args, env=env)

    return run
