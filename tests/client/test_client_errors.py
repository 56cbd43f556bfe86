"""Typed errors from real rich statuses, sent by a small gRPC service of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest

from switchboard.client import (
    CallCancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SwitchboardError,
    UnauthenticatedError,
    UnavailableError,
)
from switchboard.v1 import tasks_pb2

from .conftest import ConnectCalls
from .services import ErrorService, serving


@pytest.fixture
async def errors_address() -> AsyncIterator[str]:
    async with serving(ErrorService()) as address:
        yield address


async def test_invalid_argument_carries_field_violations(
    connect: ConnectCalls, errors_address: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await connect(errors_address)("get", "invalid")
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "task.input: must not be empty (and 1 more)"
    assert error.field_violations == [
        ("task.input", "must not be empty"),
        ("task.tools[3].name", "is required for function tools"),
    ]
    assert (error.reason, error.domain) == ("INVALID_ARGUMENT", "switchboard.dev")
    assert error.retry_delay is None
    assert str(error) == "INVALID_ARGUMENT: task.input: must not be empty (and 1 more)"


async def test_resource_exhausted_carries_retry_delay_and_error_info(
    connect: ConnectCalls, errors_address: str
) -> None:
    with pytest.raises(ResourceExhaustedError) as caught:
        await connect(errors_address)("get", "exhausted")
    error = caught.value
    assert error.retry_delay == timedelta(seconds=2, microseconds=0)
    assert (error.reason, error.domain) == ("QUEUE_FULL", "switchboard.dev")
    assert error.error_metadata == {"limit": "10000"}


async def test_unknown_detail_types_are_kept_packed(
    connect: ConnectCalls, errors_address: str
) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        await connect(errors_address)("get", "foreign")
    (detail,) = caught.value.details
    task = tasks_pb2.Task()
    assert detail.Unpack(task)
    assert task.id == "inside-a-detail"
    assert caught.value.reason == ""


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("INVALID_ARGUMENT", InvalidArgumentError),
        ("NOT_FOUND", NotFoundError),
        ("FAILED_PRECONDITION", FailedPreconditionError),
        ("UNAVAILABLE", UnavailableError),
        ("RESOURCE_EXHAUSTED", ResourceExhaustedError),
        ("DEADLINE_EXCEEDED", DeadlineExceededError),
        ("CANCELLED", CallCancelledError),
        ("PERMISSION_DENIED", PermissionDeniedError),
        ("UNAUTHENTICATED", UnauthenticatedError),
        ("INTERNAL", InternalError),
        ("ALREADY_EXISTS", SwitchboardError),
        ("UNIMPLEMENTED", SwitchboardError),
    ],
)
async def test_each_code_maps_to_its_class(
    connect: ConnectCalls, errors_address: str, code: str, kind: type[SwitchboardError]
) -> None:
    with pytest.raises(SwitchboardError) as caught:
        await connect(errors_address)("get", f"code:{code}")
    assert type(caught.value) is kind
    assert caught.value.code == grpc.StatusCode[code]
    assert caught.value.message == "plain failure"
    assert caught.value.details == ()
    assert (caught.value.reason, caught.value.domain) == ("", "")
    if isinstance(caught.value, InvalidArgumentError):
        assert caught.value.field_violations == []


async def test_a_trailer_contradicting_the_status_is_ignored(
    connect: ConnectCalls, errors_address: str
) -> None:
    with pytest.raises(InternalError) as caught:
        await connect(errors_address)("get", "mismatch")
    assert caught.value.details == ()


async def test_metadata_and_default_deadline_reach_the_server(
    connect: ConnectCalls, errors_address: str
) -> None:
    calls = connect(errors_address, metadata={"authorization": "Bearer t0ken"}, timeout=30)
    task = await calls("get", "echo")
    assert task.output_text == "Bearer t0ken"
    assert task.attempts == 1  # the call carried a deadline
    bare = await connect(errors_address)("get", "echo")
    assert (bare.output_text, bare.attempts) == ("", 0)


async def test_unreachable_server_is_unavailable_without_details(connect: ConnectCalls) -> None:
    async with serving(ErrorService()) as address:
        pass  # the port is closed again: nobody listens there now
    with pytest.raises(UnavailableError) as caught:
        await connect(address)("get", "anything")
    assert caught.value.domain == ""
