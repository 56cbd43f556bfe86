"""The real Envoy of deploy/envoy/envoy.yaml in front of a real server.

Every protocol a deployment offers goes through Envoy here: gRPC (unary and streaming),
grpc-web as a browser sends it, JSON as curl sends it; and Envoy's active gRPC health
check notices a replica that went away.
"""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.v1 import tasks_pb2, tasks_pb2_grpc
from tests.conftest import RunningServer, ServerFactory

from .envoy import DESCRIPTOR_SET, Envoy, render_config, run_envoy, validate, write_config

SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED


@pytest.fixture
async def upstream(server_factory: ServerFactory) -> RunningServer:
    return await server_factory()


@pytest.fixture
async def envoy(tmp_path: Path, upstream: RunningServer) -> AsyncIterator[Envoy]:
    async with run_envoy(tmp_path, [upstream.address]) as running:
        yield running


@pytest.fixture
async def tasks(envoy: Envoy) -> AsyncIterator[tasks_pb2_grpc.TaskServiceStub]:
    async with grpc.aio.insecure_channel(envoy.address) as channel:
        yield tasks_pb2_grpc.TaskServiceStub(channel)


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"content-type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def post(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    """POST over HTTP/1.1 (as curl or a browser would), off the loop that runs the server."""
    return await asyncio.to_thread(_post, url, body, content_type)


def _frames(body: bytes) -> list[tuple[int, bytes]]:
    """Split a grpc-web body into (flags, payload) frames."""
    frames = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        frames.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return frames


async def test_the_checked_in_config_validates(tmp_path: Path) -> None:
    assert DESCRIPTOR_SET.is_file(), "run `make gen`"
    code, output = await validate(write_config(tmp_path / "envoy.yaml", ["127.0.0.1:50051"]))
    assert code == 0, output
    assert "OK" in output


async def test_a_broken_config_fails_validation(tmp_path: Path) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(
        write_config(config, ["127.0.0.1:50051"]).read_text().replace("ROUND_ROBIN", "ROUND_ROBN")
    )
    code, output = await validate(config)
    assert code != 0
    assert "ROUND_ROBN" in output


async def test_execute_over_grpc(tasks: tasks_pb2_grpc.TaskServiceStub) -> None:
    request = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="hello"))
    task = (await tasks.Execute(request, timeout=30)).task
    assert task.state == SUCCEEDED
    assert task.output_text


async def test_watch_task_streams_every_event(tasks: tasks_pb2_grpc.TaskServiceStub) -> None:
    submitted = await tasks.SubmitTask(
        tasks_pb2.SubmitTaskRequest(task=tasks_pb2.TaskSpec(input="hello")), timeout=30
    )
    call = tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=submitted.task.id), timeout=30)
    events = [response.event async for response in call]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    states = [e.state_changed.state for e in events if e.HasField("state_changed")]
    assert states[0] == tasks_pb2.TASK_STATE_QUEUED
    assert states[-1] == SUCCEEDED
    assert events[-1].state_changed.state == SUCCEEDED
    assert await call.code() == grpc.StatusCode.OK


async def test_execute_over_grpc_web(envoy: Envoy) -> None:
    message = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="hello"))
    payload = message.SerializeToString()
    status, headers, body = await post(
        f"http://{envoy.address}/switchboard.v1.TaskService/Execute",
        struct.pack(">BI", 0, len(payload)) + payload,
        "application/grpc-web+proto",
    )
    assert status == 200
    assert headers["content-type"].startswith("application/grpc-web")
    (data_flags, data), (trailer_flags, trailers) = _frames(body)
    assert data_flags == 0
    assert tasks_pb2.ExecuteResponse.FromString(data).task.state == SUCCEEDED
    assert trailer_flags == 0x80
    assert b"grpc-status:0" in trailers.replace(b" ", b"")


async def test_execute_over_json_like_curl(envoy: Envoy) -> None:
    body = json.dumps({"task": {"input": "hello"}}).encode()
    status, headers, answer = await post(
        f"http://{envoy.address}/switchboard.v1.TaskService/Execute", body, "application/json"
    )
    assert status == 200, answer
    assert headers["content-type"].startswith("application/json")
    task: dict[str, Any] = json.loads(answer)["task"]
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert task["outputText"]
    assert task["spec"]["input"] == "hello"


async def test_an_invalid_json_request_is_a_400_with_the_status(envoy: Envoy) -> None:
    body = json.dumps({"task": {"input": ""}}).encode()
    status, headers, answer = await post(
        f"http://{envoy.address}/switchboard.v1.TaskService/Execute", body, "application/json"
    )
    assert status == 400, answer
    assert headers["content-type"].startswith("application/json")
    error = json.loads(answer)
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert error["message"]
    kinds = {detail["@type"] for detail in error["details"]}
    assert "type.googleapis.com/google.rpc.BadRequest" in kinds


async def test_malformed_json_is_refused_by_envoy(envoy: Envoy) -> None:
    url = f"http://{envoy.address}/switchboard.v1.TaskService/Execute"
    status, _, answer = await post(url, b"{not json", "application/json")
    assert status == 400, answer


async def test_a_stopped_upstream_turns_unhealthy(envoy: Envoy, upstream: RunningServer) -> None:
    assert await envoy.health() == {upstream.address: "healthy"}
    await upstream.app.stop(0)
    await envoy.wait_for_health({upstream.address: "/failed_active_hc"})


async def test_calls_are_spread_over_the_replicas(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    replicas = [await server_factory(), await server_factory()]
    async with (
        run_envoy(tmp_path, [r.address for r in replicas]) as envoy,
        grpc.aio.insecure_channel(envoy.address) as channel,
    ):
        tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        for _ in range(4):
            request = tasks_pb2.ExecuteRequest(task=tasks_pb2.TaskSpec(input="hello"))
            assert (await tasks.Execute(request, timeout=30)).task.state == SUCCEEDED
    counts = []
    for replica in replicas:
        async with grpc.aio.insecure_channel(replica.address) as direct:
            listed = await tasks_pb2_grpc.TaskServiceStub(direct).ListTasks(
                tasks_pb2.ListTasksRequest(), timeout=30
            )
            counts.append(len(listed.tasks))
    # One HTTP/2 connection from the client, yet each request picks the next replica.
    assert counts == [2, 2]


def test_only_idempotent_methods_are_retried_once_a_replica_got_them() -> None:
    manager = render_config(["127.0.0.1:50051"])["static_resources"]["listeners"][0]
    routes = manager["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"
    ][0]["routes"]
    retried = {
        r["match"]["prefix"]
        for r in routes
        if "reset" in r["route"].get("retry_policy", {}).get("retry_on", "")
    }
    assert retried == {
        "/switchboard.v1.TaskService/WatchTask",
        "/switchboard.v1.TaskService/GetTask",
        "/switchboard.v1.TaskService/ListTasks",
        "/switchboard.v1.AgentService/",
    }
    # Everything else, Execute and SubmitTask among them, falls through to the catch-all,
    # retried only when no replica got the request (it could not connect, or was refused).
    assert routes[-1]["match"] == {"prefix": "/"}
    assert routes[-1]["route"]["retry_policy"]["retry_on"] == "connect-failure,refused-stream"
