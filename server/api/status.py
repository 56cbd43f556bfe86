"""``google.rpc.Status`` values carrying the ErrorInfo every error of the service has."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from switchboard.server.domain import ERROR_DOMAIN


def status_code(name: str) -> grpc.StatusCode:
    """The gRPC status code called ``name``; UNKNOWN for a name gRPC does not have."""
    return grpc.StatusCode.__members__.get(name, grpc.StatusCode.UNKNOWN)


def rich_status(
    code: str,
    message: str,
    reason: str,
    metadata: Mapping[str, str] | None = None,
    details: Iterable[Message] = (),
) -> status_pb2.Status:
    """A status with an ErrorInfo (``reason``, domain ``switchboard.dev``) then ``details``."""
    number: int = status_code(code).value[0]
    status = status_pb2.Status(code=number, message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    status.details.add().Pack(info)
    for detail in details:
        status.details.add().Pack(detail)
    return status
