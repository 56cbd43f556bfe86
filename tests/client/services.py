"""Small real gRPC services the client tests talk to, next to the real Switchboard server.

``ErrorService`` answers GetTask with hand-made rich statuses (and echoes what the
call carried); ``DroppingProxy`` forwards WatchTask to a real server and cuts the
streams it is told to with UNAVAILABLE, so a reconnect happens exactly where the
test wants it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.v1 import tasks_pb2, tasks_pb2_grpc

DOMAIN = "switchboard.dev"


def _pack(*details: Any) -> list[any_pb2.Any]:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    return packed


@dataclass(frozen=True)
class _RawStatus(grpc.Status):
    """A status whose trailer may disagree with its code (as a rewriting proxy's would)."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


# GetTask ids the ErrorService fails, and the google.rpc.Status it fails them with.
RICH_STATUSES: dict[str, status_pb2.Status] = {
    "invalid": status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT,
        message="task.input: must not be empty (and 1 more)",
        details=_pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="task.input", description="must not be empty"
                    ),
                    error_details_pb2.BadRequest.FieldViolation(
                        field="task.tools[3].name", description="is required for function tools"
                    ),
                ]
            ),
            error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain=DOMAIN),
        ),
    ),
    "exhausted": status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED,
        message="the queue is full",
        details=_pack(
            error_details_pb2.ErrorInfo(
                reason="QUEUE_FULL", domain=DOMAIN, metadata={"limit": "10000"}
            ),
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=5)),
        ),
    ),
    "foreign": status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION,
        message="carries a detail type no client knows",
        details=_pack(tasks_pb2.Task(id="inside-a-detail")),
    ),
}


class ErrorService(tasks_pb2_grpc.TaskServiceServicer):
    """GetTask fails as its task id says.

    - a key of ``RICH_STATUSES``: that status, details and all;
    - ``code:NAME``: status code NAME with no details;
    - ``mismatch``: INTERNAL, with a details trailer claiming NOT_FOUND;
    - anything else: a task whose output_text is the call's ``authorization``
      metadata and whose attempts is 1 when the call had a deadline, 0 if not.
    """

    async def GetTask(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.GetTaskResponse:
        task_id = request.task_id
        if task_id in RICH_STATUSES:
            await context.abort_with_status(rpc_status.to_status(RICH_STATUSES[task_id]))
        if task_id.startswith("code:"):
            await context.abort(grpc.StatusCode[task_id.removeprefix("code:")], "plain failure")
        if task_id == "mismatch":
            claim = status_pb2.Status(code=code_pb2.NOT_FOUND, message="claims not found")
            trailer = (("grpc-status-details-bin", claim.SerializeToString()),)
            await context.abort_with_status(
                _RawStatus(grpc.StatusCode.INTERNAL, "internal", trailer)
            )
        metadata = dict(context.invocation_metadata() or ())
        return tasks_pb2.GetTaskResponse(
            task=tasks_pb2.Task(
                id=task_id,
                output_text=str(metadata.get("authorization", "")),
                attempts=1 if context.time_remaining() is not None else 0,
            )
        )


@dataclass
class DroppingProxy(tasks_pb2_grpc.TaskServiceServicer):
    """Forwards WatchTask to ``upstream``, cutting streams by plan.

    Stream ``i`` (0-based) is cut with UNAVAILABLE after ``plan[i]`` events (0: at
    once, before any); streams past the plan are forwarded whole. Each resumed
    stream is asked upstream ``rewind`` events early, so the client gets events it
    already has and must drop them. ``after_sequences`` records what each stream
    the client opened asked for.
    """

    upstream: str
    plan: Sequence[int] = ()
    rewind: int = 0
    after_sequences: list[int] = field(default_factory=list)

    async def WatchTask(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tasks_pb2.WatchTaskResponse]:
        stream = len(self.after_sequences)
        self.after_sequences.append(request.after_sequence)
        limit = self.plan[stream] if stream < len(self.plan) else None
        if limit == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "proxy refused the stream")
        after = max(0, request.after_sequence - self.rewind) if stream else request.after_sequence
        async with grpc.aio.insecure_channel(self.upstream) as channel:
            stub = tasks_pb2_grpc.TaskServiceStub(channel)
            call = stub.WatchTask(
                tasks_pb2.WatchTaskRequest(task_id=request.task_id, after_sequence=after)
            )
            sent = 0
            try:
                async for response in call:
                    yield response
                    sent += 1
                    if sent == limit:
                        await context.abort(grpc.StatusCode.UNAVAILABLE, "proxy dropped the stream")
            except grpc.aio.AioRpcError as error:  # pass the server's own failures on
                await context.abort(
                    error.code(), error.details() or "", tuple(error.trailing_metadata())
                )


@contextlib.asynccontextmanager
async def serving(
    servicer: tasks_pb2_grpc.TaskServiceServicer,
    credentials: grpc.ServerCredentials | None = None,
) -> AsyncIterator[str]:
    """Serve ``servicer`` on a loopback port in this event loop (over TLS when given
    ``credentials``); yield its address."""
    server = grpc.aio.server()
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
