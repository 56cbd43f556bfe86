"""A real Node.js client (@grpc/grpc-js + @grpc/proto-loader, tests/node/client.mjs).

It loads protos/ from this repository, so it also proves the .proto files stand on their
own for another language: imports resolve, the package and services are what the Python
side serves.
"""

from __future__ import annotations

import json
import shutil
import socket
from typing import Any

import pytest

from .programs import REPO_ROOT, Completed, run_process

CLIENT = REPO_ROOT / "tests" / "node" / "client.mjs"
TERMINAL_STATES = {
    "TASK_STATE_SUCCEEDED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELLED",
    "TASK_STATE_TIMED_OUT",
}


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with this repo's node_modules installed."""
    executable = shutil.which("node")
    if executable is None:
        pytest.fail(
            "Node.js is required: apt-get install -y nodejs npm, then scripts/test-services.sh",
            pytrace=False,
        )
    if not (REPO_ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node_modules is missing: run scripts/test-services.sh (npm ci)", pytrace=False)
    return executable


def _payloads(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    # oneofs: true makes proto-loader name the payload member that is set.
    return [event[kind] for event in events if event["payload"] == kind]


async def _run_client(node: str, *args: str) -> Completed:
    return await run_process(node, CLIENT, *args, cwd=REPO_ROOT)


@pytest.fixture
async def node_results(node: str, running_server: Any) -> dict[str, Any]:
    """What the Node.js client saw on the server: Execute, a watched task, an error."""
    done = (await _run_client(node, running_server.address)).check()
    results: dict[str, Any] = json.loads(done.stdout)
    return results


async def test_execute_returns_a_succeeded_task(node_results: dict[str, Any]) -> None:
    task = node_results["execute"]
    assert task["id"]
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert task["output_text"].strip()
    assert task["spec"]["input"] == "hello from Node.js"


async def test_watch_streams_contiguous_events_ending_terminal(
    node_results: dict[str, Any],
) -> None:
    watch = node_results["watch"]
    task_id = watch["submitted"]["id"]
    events = watch["events"]
    assert events, "WatchTask sent no event"
    assert {event["task_id"] for event in events} == {task_id}
    assert [event["sequence"] for event in events] == list(range(1, len(events) + 1))

    assert events[0]["payload"] == events[-1]["payload"] == "state_changed"
    assert events[0]["state_changed"]["state"] == "TASK_STATE_QUEUED"
    assert events[-1]["state_changed"]["state"] == "TASK_STATE_SUCCEEDED"
    earlier_states = {change["state"] for change in _payloads(events[:-1], "state_changed")}
    assert not earlier_states & TERMINAL_STATES

    final = watch["final"]
    deltas = [delta["text"] for delta in _payloads(events, "output_delta")]
    assert "".join(deltas) == final["output_text"] != ""
    assert final["state"] == "TASK_STATE_SUCCEEDED"
    assert final["last_sequence"] == len(events)


async def test_unknown_task_is_not_found_with_error_info(node_results: dict[str, Any]) -> None:
    error = node_results["get_unknown"]
    assert error["code"] == 5  # NOT_FOUND
    [info] = [
        detail
        for detail in error["status_details"]
        if detail["type_url"] == "type.googleapis.com/google.rpc.ErrorInfo"
    ]
    assert info["domain"] == "switchboard.dev"
    assert info["reason"] == "TASK_NOT_FOUND"


async def test_client_without_an_address_is_a_usage_error(node: str) -> None:
    done = await _run_client(node)
    assert done.returncode == 2
    assert "usage:" in done.stderr


async def test_client_exits_non_zero_when_the_server_is_unreachable(node: str) -> None:
    # A port that was free a moment ago: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = await _run_client(node, f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert "UNAVAILABLE" in done.stderr
