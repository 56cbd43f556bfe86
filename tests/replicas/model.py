"""The scripted agent's model: the fake OpenAI server, and which replica asked it what.

The server answers model requests in the order they arrive with the replies a test
scripted (``tests.fakes``). Every replica sends its own API key, so each recorded
request names the replica running the task; a held reply keeps that task running
until the test releases it (or the replica goes away, which the server counts as a
disconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.fakes import FakeOpenAI, RecordedRequest

BOUND = 30.0
"""How long any wait of the replica tests may take before it fails."""
_POLL = 0.02


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    bound: float = BOUND,
    what: str | Callable[[], str] = "",
) -> None:
    """Poll ``condition`` (plain or async) until it holds, for at most ``bound`` seconds.

    For state that sends no notice: other processes, the database, lists a task fills.
    Raises TimeoutError saying ``what`` was awaited (a callable: what is seen by then).
    """
    try:
        async with asyncio.timeout(bound):
            while True:
                verdict = condition()
                if not isinstance(verdict, bool):
                    verdict = await verdict
                if verdict:
                    return
                await asyncio.sleep(_POLL)
    except TimeoutError:
        told = what() if callable(what) else what
        raise TimeoutError(f"not reached within {bound} s: {told or condition}") from None


class Model:
    """The fake model server of a cluster, with the helpers the tests need."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self._gates: list[asyncio.Event] = []

    @property
    def base_url(self) -> str:
        """The API root the scripted agent is configured with."""
        return self.fake.base_url

    def gate(self) -> asyncio.Event:
        """An event a held reply waits for; every gate opens when the test ends."""
        gate = asyncio.Event()
        self._gates.append(gate)
        return gate

    def open_gates(self) -> None:
        """Release every held reply (so no replica is left waiting on one)."""
        for gate in self._gates:
            gate.set()
        self._gates.clear()

    def mark(self) -> int:
        """How many model requests were made so far: pass it as ``since``."""
        return len(self.fake.requests)

    async def requests(self, count: int, since: int) -> list[RecordedRequest]:
        """Wait (bounded) for ``count`` requests after ``since``; return those ``count``."""

        def seen() -> str:
            keys = [caller_key(request) for request in self.fake.requests[since:]]
            return f"{count} model requests; {len(keys)} came, from {keys}"

        await until(lambda: len(self.fake.requests) >= since + count, what=seen)
        return self.fake.requests[since : since + count]

    async def disconnected(self, count: int) -> None:
        """Wait (bounded) until ``count`` clients in all left in the middle of a reply."""
        async with asyncio.timeout(BOUND):
            await self.fake.wait_disconnect(count)


def caller_key(request: RecordedRequest) -> str:
    """The API key a model request carried (``key-<replica>``)."""
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip()
