"""Reading the rich status of a failed call, as a client in another language would."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

M = TypeVar("M", bound=Message)


async def failure(call: Any, *, streaming: bool = False) -> tuple[list[Any], status_pb2.Status]:
    """Await a call that must fail: the messages received first, and its google.rpc.Status."""
    received: list[Any] = []
    with pytest.raises(grpc.aio.AioRpcError):
        await _consume(call, received, streaming=streaming)
    status = await rpc_status.aio.from_call(call)
    assert status is not None, "the error carries no google.rpc.Status"
    return received, status


def detail(status: status_pb2.Status, kind: type[M]) -> M:
    """The status's detail of type ``kind`` (an AssertionError when there is none)."""
    for packed in status.details:
        if packed.Is(kind.DESCRIPTOR):
            found = kind()
            packed.Unpack(found)
            return found
    raise AssertionError(f"no {kind.DESCRIPTOR.full_name} in the status details")


async def _consume(call: Any, received: list[Any], *, streaming: bool) -> None:
    if not streaming:
        received.append(await call)
        return
    async for message in call:
        received.append(message)
