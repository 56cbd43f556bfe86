"""Typed exceptions for failed calls, carrying the ``google.rpc.Status`` details.

Every RPC error the clients see goes through :func:`error_from_rpc`, so callers
catch :class:`SwitchboardError` (or one of its subclasses) instead of
``grpc.RpcError``, and read the server's machine-readable details as attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# Detail messages we unpack; anything else stays a google.protobuf.Any.
_DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.ResourceInfo,
    error_details_pb2.RequestInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
    error_details_pb2.DebugInfo,
)

_M = TypeVar("_M", bound=Message)


class SwitchboardError(Exception):
    """A call failed with a non-OK gRPC status.

    Attributes:
        code: the gRPC status code.
        message: the status message, for people.
        details: the ``google.rpc.Status`` detail messages, unpacked
            (``BadRequest``, ``ErrorInfo``, ``RetryInfo``...; unknown types stay
            ``google.protobuf.Any``). Empty when the status carried none, e.g. when
            the failure happened before reaching the server.
        reason: ``ErrorInfo.reason`` (e.g. ``"TASK_NOT_FOUND"``), or ``""``.
        domain: ``ErrorInfo.domain`` (``"switchboard.dev"`` for the service's own
            errors), or ``""``.
        error_metadata: ``ErrorInfo.metadata``, or an empty dict.
        retry_delay: ``RetryInfo.retry_delay`` when the server said when to retry.

    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: Sequence[Message] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details: tuple[Message, ...] = tuple(details)
        info = self.detail(error_details_pb2.ErrorInfo)
        self.reason = info.reason if info else ""
        self.domain = info.domain if info else ""
        self.error_metadata: dict[str, str] = dict(info.metadata) if info else {}
        retry = self.detail(error_details_pb2.RetryInfo)
        self.retry_delay: timedelta | None = (
            retry.retry_delay.ToTimedelta() if retry and retry.HasField("retry_delay") else None
        )

    def detail(self, kind: type[_M]) -> _M | None:
        """Return the first detail of type ``kind``, or None."""
        for item in self.details:
            if isinstance(item, kind):
                return item
        return None


class InvalidArgumentError(SwitchboardError):
    """INVALID_ARGUMENT: the request is malformed.

    ``field_violations`` lists ``(field, description)`` pairs from the
    ``google.rpc.BadRequest`` detail, e.g. ``("task.input", "must not be empty")``.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self, code: grpc.StatusCode, message: str, details: Sequence[Message] = ()
    ) -> None:
        super().__init__(code, message, details)
        bad_request = self.detail(error_details_pb2.BadRequest)
        self.field_violations: list[tuple[str, str]] = (
            [(v.field, v.description) for v in bad_request.field_violations] if bad_request else []
        )


class NotFoundError(SwitchboardError):
    """NOT_FOUND: the task or agent does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPreconditionError(SwitchboardError):
    """FAILED_PRECONDITION: the request is valid but cannot be done in this state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(SwitchboardError):
    """UNAVAILABLE: the server cannot be reached or cannot take the call now; retry."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhaustedError(SwitchboardError):
    """RESOURCE_EXHAUSTED: a limit was hit; ``retry_delay`` says when to retry."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(SwitchboardError):
    """DEADLINE_EXCEEDED: the call's deadline passed before it finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class CallCancelledError(SwitchboardError):
    """CANCELLED: the call was cancelled (named so as not to shadow asyncio's)."""

    code = grpc.StatusCode.CANCELLED


class PermissionDeniedError(SwitchboardError):
    """PERMISSION_DENIED: the caller may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(SwitchboardError):
    """UNAUTHENTICATED: the call carried no valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class InternalError(SwitchboardError):
    """INTERNAL: the server failed; not the caller's fault."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[SwitchboardError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        FailedPreconditionError,
        UnavailableError,
        ResourceExhaustedError,
        DeadlineExceededError,
        CallCancelledError,
        PermissionDeniedError,
        UnauthenticatedError,
        InternalError,
    )
}


class _FailedCall(Protocol):
    """What both ``grpc`` and ``grpc.aio`` errors offer (the stubs do not say so)."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...


def error_from_rpc(error: grpc.RpcError) -> SwitchboardError:
    """Map a failed call (sync or ``grpc.aio``) to the matching typed exception.

    The rich status is read from the ``grpc-status-details-bin`` trailer with
    ``grpc_status.rpc_status.from_call``, which accepts both kinds of error: both
    expose ``code()``, ``details()`` and ``trailing_metadata()``. A trailer that
    disagrees with the call's own status (say, rewritten by a proxy) is ignored.
    """
    call = cast("_FailedCall", error)
    code = call.code()
    message = call.details() or ""
    try:
        status: status_pb2.Status | None = rpc_status.from_call(cast("grpc.Call", error))
    except ValueError:
        status = None
    details = [_unpack(item) for item in status.details] if status else []
    return _BY_CODE.get(code, SwitchboardError)(code, message, details)


def _unpack(item: any_pb2.Any) -> Message:
    for kind in _DETAIL_TYPES:
        if item.TypeName() == kind.DESCRIPTOR.full_name:
            unpacked = kind()
            item.Unpack(unpacked)
            return unpacked
    return item
