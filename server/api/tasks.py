"""TaskService: requests into orchestrator calls, results back into messages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from switchboard.server.api.caller import owner, visible_owner
from switchboard.server.api.requests import new_batch, new_task, state_filter
from switchboard.server.api.resources import event_to_proto, task_to_proto
from switchboard.server.orchestrator import Orchestrator
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc

if TYPE_CHECKING:
    import grpc

    Context = grpc.aio.ServicerContext[Any, Any]


class TaskServicer(tasks_pb2_grpc.TaskServiceServicer):
    """``switchboard.v1.TaskService`` on top of an orchestrator."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator

    async def Execute(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.ExecuteRequest, context: Context
    ) -> tasks_pb2.ExecuteResponse:
        """Run one task to its end, within the call's deadline."""
        task = await self._orchestrator.execute(
            new_task(request), owner=owner(), deadline=context.time_remaining()
        )
        return tasks_pb2.ExecuteResponse(task=task_to_proto(task))

    async def BatchExecute(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.BatchExecuteRequest, context: Context
    ) -> AsyncIterator[tasks_pb2.BatchExecuteResponse]:
        """Run every task of the batch; stream each as it ends."""
        results = self._orchestrator.execute_batch(
            new_batch(request), owner=owner(), deadline=context.time_remaining()
        )
        async with contextlib.aclosing(results):
            async for index, task in results:
                yield tasks_pb2.BatchExecuteResponse(index=index, task=task_to_proto(task))

    async def SubmitTask(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.SubmitTaskRequest, context: Context
    ) -> tasks_pb2.SubmitTaskResponse:
        """Queue a task and return it at once."""
        task = await self._orchestrator.submit(new_task(request), owner=owner())
        return tasks_pb2.SubmitTaskResponse(task=task_to_proto(task))

    async def WatchTask(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.WatchTaskRequest, context: Context
    ) -> AsyncIterator[tasks_pb2.WatchTaskResponse]:
        """Stream a task's events after ``after_sequence``, ending after the terminal one."""
        events = self._orchestrator.watch(
            request.task_id, after_sequence=request.after_sequence, owner=visible_owner()
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield tasks_pb2.WatchTaskResponse(event=event_to_proto(event))

    async def GetTask(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.GetTaskRequest, context: Context
    ) -> tasks_pb2.GetTaskResponse:
        """One task by id."""
        task = await self._orchestrator.get(request.task_id, owner=visible_owner())
        return tasks_pb2.GetTaskResponse(task=task_to_proto(task))

    async def ListTasks(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.ListTasksRequest, context: Context
    ) -> tasks_pb2.ListTasksResponse:
        """A page of tasks, newest first."""
        page = await self._orchestrator.list_tasks(
            owner=visible_owner(),
            state=state_filter(request),
            agent=request.agent,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return tasks_pb2.ListTasksResponse(
            tasks=[task_to_proto(task) for task in page.tasks],
            next_page_token=page.next_page_token,
        )

    async def CancelTask(  # noqa: N802 - the RPC's name
        self, request: tasks_pb2.CancelTaskRequest, context: Context
    ) -> tasks_pb2.CancelTaskResponse:
        """Cancel a task (idempotently) and return it as it ended."""
        task = await self._orchestrator.cancel(request.task_id, owner=visible_owner())
        return tasks_pb2.CancelTaskResponse(task=task_to_proto(task))
