"""The synchronous client (a plain ``grpc`` channel; no event loop involved)."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self, Unpack

import grpc

from switchboard.client import _requests
from switchboard.client._base import ClientBase, typed_errors
from switchboard.client._requests import BatchItem, State, TaskOptions
from switchboard.client._watch import RetryPolicy, WatchCursor
from switchboard.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)


class Client(ClientBase):
    """Synchronous client for every Switchboard RPC; safe to share between threads.

    Methods return the generated protobuf messages (``tasks_pb2.Task``,
    ``tasks_pb2.TaskEvent``, ``agents_pb2.Agent``), the same types every other
    language's stubs see, and raise :class:`SwitchboardError` subclasses on
    failure. Close it with ``client.close()`` or ``with``. Constructor arguments:
    see :class:`ClientBase`.

    Example::

        with Client("localhost:50051") as client:
            task = client.execute("Summarise this", agent="offline")
            print(task.output_text)
    """

    def _open_channel(self) -> None:
        if self._credentials is not None:
            self._channel = grpc.secure_channel(
                self.address, self._credentials, options=self._options
            )
        else:
            self._channel = grpc.insecure_channel(self.address, options=self._options)
        self._tasks = tasks_pb2_grpc.TaskServiceStub(self._channel)
        self._agents = agents_pb2_grpc.AgentServiceStub(self._channel)
        self._auth = auth_pb2_grpc.AuthServiceStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        self._channel.close()

    def login(
        self, username: str, password: str, *, timeout: float | None = None
    ) -> auth_pb2.LoginResponse:
        """Log in to the server's built-in identity (AuthService.Login).

        Later calls of this client send the token it returns (``access_token``,
        valid until ``expire_time``). Wrong credentials raise UnauthenticatedError;
        a server without built-in login raises SwitchboardError (UNIMPLEMENTED).
        """
        request = auth_pb2.LoginRequest(username=username, password=password)
        with typed_errors():
            response: auth_pb2.LoginResponse = self._auth.Login(
                request, **self._unary_options(timeout)
            )
        self.use_token(response.access_token)
        return response

    def execute(
        self,
        task: str | tasks_pb2.TaskSpec,
        *,
        request_id: str = "",
        timeout: float | None = None,
        **options: Unpack[TaskOptions],
    ) -> tasks_pb2.Task:
        """Run a task and return it in its terminal state (Execute).

        ``task`` is the input text or a full ``TaskSpec``; ``options`` override its
        fields. A repeat with the same ``request_id`` returns the first run's task.
        Interrupting the call (e.g. Ctrl-C) cancels the task on the server.
        """
        request = _requests.execute_request(task, request_id, options)
        with typed_errors():
            response: tasks_pb2.ExecuteResponse = self._tasks.Execute(
                request, **self._unary_options(timeout)
            )
        return response.task

    def batch_execute(
        self,
        tasks: Iterable[BatchItem],
        *,
        timeout: float | None = None,
        **options: Unpack[TaskOptions],
    ) -> Iterator[tuple[int, tasks_pb2.Task]]:
        """Run up to 100 tasks at once; yield ``(index, task)`` as each one ends.

        ``options`` apply to every item; pass ``ExecuteRequest`` items to give
        each its own ``request_id``.
        """
        call = self._tasks.BatchExecute(
            _requests.batch_request(tasks, options), **self._stream_options(timeout)
        )
        try:
            with typed_errors():
                for response in call:
                    yield response.index, response.task
        finally:
            call.cancel()

    def submit(
        self,
        task: str | tasks_pb2.TaskSpec,
        *,
        request_id: str = "",
        timeout: float | None = None,
        **options: Unpack[TaskOptions],
    ) -> tasks_pb2.Task:
        """Queue a task and return it at once, usually QUEUED (SubmitTask)."""
        request = _requests.submit_request(task, request_id, options)
        with typed_errors():
            response: tasks_pb2.SubmitTaskResponse = self._tasks.SubmitTask(
                request, **self._unary_options(timeout)
            )
        return response.task

    def watch(
        self,
        task_id: str,
        after_sequence: int = 0,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Iterator[tasks_pb2.TaskEvent]:
        """Yield the task's events after ``after_sequence``, ending after the terminal one.

        When the stream breaks with UNAVAILABLE (a dropped connection, a server
        restart) it reconnects with backoff (``retry``, default the client's
        ``watch_retry``) and resumes after the last event it yielded: the caller
        sees every event exactly once, in order. ``timeout`` bounds each stream.
        """
        cursor = WatchCursor(task_id, after_sequence, retry or self.watch_retry)
        while True:
            call = self._tasks.WatchTask(cursor.request(), **self._stream_options(timeout))
            try:
                for response in call:
                    event = cursor.accept(response)
                    if event is not None:
                        yield event
                    if cursor.done:
                        return
                return
            except grpc.RpcError as error:
                delay = cursor.backoff(error)
            finally:
                call.cancel()
            time.sleep(delay)

    def get(self, task_id: str, *, timeout: float | None = None) -> tasks_pb2.Task:
        """Return a task by id (GetTask)."""
        with typed_errors():
            response: tasks_pb2.GetTaskResponse = self._tasks.GetTask(
                tasks_pb2.GetTaskRequest(task_id=task_id), **self._unary_options(timeout)
            )
        return response.task

    def list_page(
        self,
        *,
        state: State | None = None,
        agent: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> tasks_pb2.ListTasksResponse:
        """Return one page of tasks, newest first (ListTasks)."""
        request = _requests.list_request(state, agent, page_size, page_token)
        with typed_errors():
            response: tasks_pb2.ListTasksResponse = self._tasks.ListTasks(
                request, **self._unary_options(timeout)
            )
        return response

    def list(
        self,
        *,
        state: State | None = None,
        agent: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[tasks_pb2.Task]:
        """Yield every matching task, newest first, fetching pages as they are needed.

        ``state`` and ``agent`` filter; ``page_size`` (0: the server's default)
        sets how many tasks each call fetches; ``timeout`` bounds each call.
        """
        token = ""
        while True:
            page = self.list_page(
                state=state, agent=agent, page_size=page_size, page_token=token, timeout=timeout
            )
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def cancel(self, task_id: str, *, timeout: float | None = None) -> tasks_pb2.Task:
        """Cancel a task and return it in its terminal state (CancelTask; idempotent)."""
        with typed_errors():
            response: tasks_pb2.CancelTaskResponse = self._tasks.CancelTask(
                tasks_pb2.CancelTaskRequest(task_id=task_id), **self._unary_options(timeout)
            )
        return response.task

    def list_agents(self, *, timeout: float | None = None) -> builtins.list[agents_pb2.Agent]:
        """Return every configured agent, the default one first (ListAgents)."""
        with typed_errors():
            response: agents_pb2.ListAgentsResponse = self._agents.ListAgents(
                agents_pb2.ListAgentsRequest(), **self._unary_options(timeout)
            )
        return builtins.list(response.agents)

    def get_agent(self, agent_id: str, *, timeout: float | None = None) -> agents_pb2.Agent:
        """Return one agent by id (GetAgent)."""
        with typed_errors():
            response: agents_pb2.GetAgentResponse = self._agents.GetAgent(
                agents_pb2.GetAgentRequest(agent_id=agent_id), **self._unary_options(timeout)
            )
        return response.agent
