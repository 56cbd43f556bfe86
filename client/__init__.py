"""Python SDK for Switchboard: sync and asyncio clients, typed errors, the ``swb`` CLI.

Results are the generated protobuf messages of ``switchboard.v1`` (``Task``,
``TaskEvent``, ``Agent``), so code and data look the same in every language::

    from switchboard.client import Client

    with Client() as client:  # $SWITCHBOARD_ADDRESS or localhost:50051
        task = client.submit("Write a haiku about queues")
        for event in client.watch(task.id):
            print(event)

This package imports only grpcio, grpcio-status, protobuf, googleapis-common-protos,
rich and the generated stubs: never the server.
"""

from switchboard.client._base import (
    ADDRESS_ENV,
    DEFAULT_ADDRESS,
    TOKEN_ENV,
    ClientBase,
    default_address,
)
from switchboard.client._requests import BatchItem, Priority, State, TaskOptions, ToolLike
from switchboard.client._watch import TERMINAL_STATES, RetryPolicy, is_terminal
from switchboard.client.async_client import AsyncClient
from switchboard.client.errors import (
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
    error_from_rpc,
)
from switchboard.client.sync_client import Client

__all__ = [
    "ADDRESS_ENV",
    "DEFAULT_ADDRESS",
    "TERMINAL_STATES",
    "TOKEN_ENV",
    "AsyncClient",
    "BatchItem",
    "CallCancelledError",
    "Client",
    "ClientBase",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "Priority",
    "ResourceExhaustedError",
    "RetryPolicy",
    "State",
    "SwitchboardError",
    "TaskOptions",
    "ToolLike",
    "UnauthenticatedError",
    "UnavailableError",
    "default_address",
    "error_from_rpc",
    "is_terminal",
]
