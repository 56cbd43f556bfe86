"""The real ``swb`` console script, as a subprocess, against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import pty
from typing import Any

from tests.e2e.programs import run_process

from .conftest import SWB, Swb
from .services import ErrorService, serving

_TERMINAL = {"TASK_STATE_SUCCEEDED", "TASK_STATE_FAILED", "TASK_STATE_CANCELLED"}


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


async def test_run_prints_the_finished_task(swb: Swb) -> None:
    done = (await swb("run", "hello [bold]world[/bold]", "--agent", "echo")).check()
    assert "SUCCEEDED" in done.stdout
    assert "hello [bold]world[/bold]" in done.stdout  # no markup interpretation
    assert "\x1b[" not in done.stdout  # not a terminal: no escapes
    assert done.stderr == ""


async def test_run_json_is_one_task(swb: Swb) -> None:
    done = (
        await swb(
            "--json",
            "run",
            "hi there",
            "--priority",
            "high",
            "--timeout",
            "10",
            "--instructions",
            "short",
            "--request-id",
            "cli-1",
        )
    ).check()
    (task,) = _json_lines(done.stdout)
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert "hi there" in task["outputText"]
    assert task["spec"]["priority"] == "TASK_PRIORITY_HIGH"
    assert task["spec"]["timeout"] == "10s"
    assert task["spec"]["instructions"] == "short"
    again = _json_lines(
        (await swb("run", "hi there", "--request-id", "cli-1", "--json")).check().stdout
    )
    assert again[0]["id"] == task["id"]


async def test_no_cache_reaches_the_task_spec(swb: Swb) -> None:
    (plain,) = _json_lines((await swb("--json", "run", "x", "--agent", "echo")).check().stdout)
    assert "noCache" not in plain["spec"]
    (ran,) = _json_lines((await swb("--json", "run", "x", "--no-cache")).check().stdout)
    assert ran["spec"]["noCache"] is True
    (queued,) = _json_lines((await swb("--json", "submit", "x", "--no-cache")).check().stdout)
    assert queued["spec"]["noCache"] is True
    assert "cached" not in (await swb("get", queued["id"])).check().stdout


async def test_run_watch_json_streams_events_then_the_task(swb: Swb) -> None:
    done = (await swb("--json", "run", "--watch", "a b c d e f")).check()
    *events, task = _json_lines(done.stdout)
    assert [int(event["sequence"]) for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["stateChanged"]["state"] == "TASK_STATE_SUCCEEDED"
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    deltas = "".join(e["outputDelta"]["text"] for e in events if "outputDelta" in e)
    assert deltas == task["outputText"]


async def test_run_watch_without_a_terminal_prints_plain_lines(swb: Swb) -> None:
    done = (await swb("run", "--watch", "plain lines please", "--agent", "assistant")).check()
    lines = done.stdout.splitlines()
    print(done.stdout)
    assert lines[0].split()[:3] == ["1", "state", "QUEUED"]
    assert any(line.split()[1:2] == ["output"] for line in lines)
    assert any("RUNNING -> SUCCEEDED" in line for line in lines)
    assert "\x1b[" not in done.stdout


async def test_run_watch_on_a_terminal_shows_a_live_view(running_server: Any) -> None:
    controller, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        SWB,
        "--address",
        running_server.address,
        "run",
        "--watch",
        "live and well",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=terminal,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"},
    )
    os.close(terminal)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        output = (await asyncio.to_thread(read_all)).decode()
    finally:
        os.close(controller)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    assert "live and well" in output
    assert "SUCCEEDED" in output
    assert "\x1b[" in output  # drawn for a terminal
    assert "attempts" in output  # the summary after the live view


async def test_submit_then_watch_get_ls_cancel(swb: Swb) -> None:
    submitted = (await swb("submit", "one two three", "--agent", "assistant")).check()
    task_id = submitted.stdout.strip()
    assert len(submitted.stdout.splitlines()) == 1
    events = _json_lines((await swb("watch", task_id, "--json")).check().stdout)
    assert events[-1]["stateChanged"]["state"] == "TASK_STATE_SUCCEEDED"
    tail = _json_lines((await swb("--json", "watch", task_id, "--after", "2")).check().stdout)
    assert [int(event["sequence"]) for event in tail] == [int(e["sequence"]) for e in events[2:]]
    watched = (await swb("watch", task_id)).check()
    assert "RUNNING -> SUCCEEDED" in watched.stdout

    shown = (await swb("get", task_id)).check()
    assert task_id in shown.stdout
    assert "SUCCEEDED" in shown.stdout
    (got,) = _json_lines((await swb("get", task_id, "--json")).check().stdout)
    assert got["id"] == task_id

    (cancelled,) = _json_lines((await swb("cancel", task_id, "--json")).check().stdout)
    assert cancelled["state"] == "TASK_STATE_SUCCEEDED"  # it had ended: cancel returns it as is
    assert "SUCCEEDED" in (await swb("cancel", task_id)).check().stdout


async def test_ls_lists_filters_and_limits(swb: Swb) -> None:
    ids = [
        (await swb("submit", f"task {i}", "--agent", "echo")).check().stdout.strip()
        for i in range(3)
    ]
    for task_id in ids:
        (await swb("watch", task_id, "--json")).check()
    listed = _json_lines((await swb("ls", "--json", "--limit", "0")).check().stdout)
    assert [task["id"] for task in listed] == ids[::-1]
    limited = _json_lines((await swb("--json", "ls", "--limit", "2")).check().stdout)
    assert [task["id"] for task in limited] == ids[::-1][:2]
    assert _json_lines((await swb("ls", "--json", "--state", "failed")).check().stdout) == []
    assert _json_lines((await swb("ls", "--json", "--agent", "assistant")).check().stdout) == []
    table = (await swb("ls", "--state", "succeeded")).check().stdout
    assert table.split()[:6] == ["ID", "STATE", "AGENT", "CREATED", "DURATION", "INPUT"]
    assert all(task_id in table for task_id in ids)


async def test_agents(swb: Swb) -> None:
    table = (await swb("agents")).check().stdout
    assert "assistant *" in table
    assert "echo" in table
    agents = _json_lines((await swb("agents", "--json")).check().stdout)
    assert [agent["id"] for agent in agents] == ["assistant", "echo"]


async def test_bad_input_exits_1_with_the_field_violations(swb: Swb) -> None:
    done = await swb("run", "")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: INVALID_ARGUMENT: task.input: must not be empty",
        "  task.input: must not be empty",
    ]
    missing = await swb("get", "no-such-task")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: NOT_FOUND: task 'no-such-task' not found"
    too_long = await swb("run", "x", "--timeout", "999")
    assert too_long.returncode == 1
    assert "task.timeout" in too_long.stderr


async def test_usage_errors_exit_2(swb: Swb) -> None:
    for args in (
        ("get",),
        ("ls", "--state", "done"),
        ("run", "x", "--priority", "urgent"),
        ("watch", "id", "--after", "-1"),
        ("frobnicate",),
    ):
        done = await swb(*args)
        assert done.returncode == 2, args
        assert "usage: swb" in done.stderr
        assert done.stdout == ""


async def test_rich_errors_list_every_violation() -> None:
    async with serving(ErrorService()) as address:
        done = await run_process(SWB, "get", "invalid", env={"SWITCHBOARD_ADDRESS": address})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: INVALID_ARGUMENT: task.input: must not be empty (and 1 more)",
        "  task.input: must not be empty",
        "  task.tools[3].name: is required for function tools",
    ]


async def test_address_from_the_environment(running_server: Any) -> None:
    done = await run_process(
        SWB, "agents", "--json", env={"SWITCHBOARD_ADDRESS": running_server.address}
    )
    assert [agent["id"] for agent in _json_lines(done.check().stdout)] == ["assistant", "echo"]


async def test_unreachable_server_is_reported_clearly() -> None:
    async with serving(ErrorService()) as address:
        pass  # closed again: nothing listens there now
    done = await run_process(SWB, "--address", address, "ls")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(
        f"error: UNAVAILABLE: cannot reach the Switchboard server at {address} (is it running?"
    )
