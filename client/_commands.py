"""The ``swb`` commands: each takes the parsed arguments and returns an exit status."""

from __future__ import annotations

import argparse
import getpass
import itertools
import sys
from pathlib import Path

import grpc
from rich.live import Live

from switchboard.client import _render
from switchboard.client._base import ADDRESS_ENV, TOKEN_ENV
from switchboard.client._requests import TaskOptions
from switchboard.client.errors import InvalidArgumentError, SwitchboardError
from switchboard.client.sync_client import Client
from switchboard.v1 import tasks_pb2

_MAX_PAGE_SIZE = 1000
# The reason of a refused login: a token would not help.
_BAD_LOGIN = "INVALID_CREDENTIALS"


def report_error(error: SwitchboardError, address: str) -> None:
    """Print ``error: CODE: message`` (and the bad fields) to stderr."""
    lines = [f"error: {error.code.name}: {error.message}"]
    if error.code == grpc.StatusCode.UNAVAILABLE and not error.domain:
        # No ErrorInfo means the failure came from the channel, not from the service.
        lines[0] = (
            f"error: UNAVAILABLE: cannot reach the Switchboard server at {address} "
            f"(is it running? set --address or ${ADDRESS_ENV}): {error.message}"
        )
    if isinstance(error, InvalidArgumentError):
        lines += [f"  {field}: {description}" for field, description in error.field_violations]
    if error.code == grpc.StatusCode.UNAUTHENTICATED and error.reason != _BAD_LOGIN:
        lines.append(f"  pass a token with --token or ${TOKEN_ENV} (`swb login` gets one)")
    print("\n".join(lines), file=sys.stderr)


def _client(args: argparse.Namespace) -> Client:
    root = Path(args.ca_cert).read_bytes() if args.ca_cert else None
    return Client(
        args.address,
        tls=args.tls,
        root_certificates=root,
        token=args.token,
        timeout=args.call_timeout,
    )


def _task_options(args: argparse.Namespace) -> TaskOptions:
    options = TaskOptions()
    if args.agent is not None:
        options["agent"] = args.agent
    if args.instructions is not None:
        options["instructions"] = args.instructions
    if args.priority is not None:
        options["priority"] = args.priority
    if args.task_timeout is not None:
        options["task_timeout"] = args.task_timeout
    if args.no_cache:
        options["no_cache"] = True
    return options


def _show_task(task: tasks_pb2.Task, args: argparse.Namespace) -> None:
    if args.json:
        _render.json_line(task)
    else:
        _render.plain_console().print(_render.task_details(task))


def _outcome(task: tasks_pb2.Task) -> int:
    """0 when the task succeeded; otherwise say how it ended, on stderr, and return 1."""
    if task.state == tasks_pb2.TASK_STATE_SUCCEEDED:
        return 0
    why = f": {_render.status_text(task.error)}" if task.HasField("error") else ""
    print(f"error: task {task.id} ended {_render.state_name(task.state)}{why}", file=sys.stderr)
    return 1


def _follow(client: Client, task_id: str, after: int, args: argparse.Namespace) -> tasks_pb2.Task:
    """Show a task's events as they come (live on a terminal, else as lines); return it."""
    events = client.watch(task_id, after)
    console = _render.plain_console()
    if args.json:
        for event in events:
            _render.json_line(event)
    elif console.is_interactive:
        view = _render.WatchView(task_id)
        # Transient, then printed once: the live region is cropped to the screen,
        # the final picture must not be.
        with Live(view, console=console, refresh_per_second=12, transient=True):
            for event in events:
                view.apply(event)
        console.print(view)
    else:
        for event in events:
            console.out(_render.event_line(event))
            console.file.flush()
    task = client.get(task_id)
    if not args.json:
        # The live view showed the output whole; event lines only in pieces.
        console.print(_render.task_details(task, with_output=not console.is_interactive))
    return task


def run(args: argparse.Namespace) -> int:
    """``swb run``: Execute, or with --watch SubmitTask then follow it."""
    with _client(args) as client:
        if not args.watch:
            task = client.execute(args.input, request_id=args.request_id, **_task_options(args))
            _show_task(task, args)
            return _outcome(task)
        task = client.submit(args.input, request_id=args.request_id, **_task_options(args))
        try:
            task = _follow(client, task.id, 0, args)
        except KeyboardInterrupt:
            print(f"task {task.id} keeps running; `swb cancel {task.id}` stops it", file=sys.stderr)
            raise
        if args.json:
            _render.json_line(task)
        return _outcome(task)


def submit(args: argparse.Namespace) -> int:
    """``swb submit``: queue a task, print its id (the task, with --json)."""
    with _client(args) as client:
        task = client.submit(args.input, request_id=args.request_id, **_task_options(args))
    if args.json:
        _render.json_line(task)
    else:
        print(task.id)
    return 0


def watch(args: argparse.Namespace) -> int:
    """``swb watch``: follow a task until it ends."""
    with _client(args) as client:
        _follow(client, args.task_id, args.after, args)
    return 0


def get(args: argparse.Namespace) -> int:
    """``swb get``: show one task."""
    with _client(args) as client:
        _show_task(client.get(args.task_id), args)
    return 0


def ls(args: argparse.Namespace) -> int:
    """``swb ls``: list tasks, newest first."""
    page_size = min(args.limit, _MAX_PAGE_SIZE) if args.limit else 0
    with _client(args) as client:
        tasks = client.list(state=args.state, agent=args.agent, page_size=page_size)
        limited = itertools.islice(tasks, args.limit or None)
        if args.json:
            for task in limited:
                _render.json_line(task)
        else:
            console = _render.plain_console()
            console.print(_render.tasks_table(limited, console.width))
    return 0


def cancel(args: argparse.Namespace) -> int:
    """``swb cancel``: cancel a task and show how it ended."""
    with _client(args) as client:
        _show_task(client.cancel(args.task_id), args)
    return 0


def agents(args: argparse.Namespace) -> int:
    """``swb agents``: list the configured agents."""
    with _client(args) as client:
        found = client.list_agents()
    if args.json:
        for agent in found:
            _render.json_line(agent)
    else:
        _render.plain_console().print(_render.agents_table(found))
    return 0


def login(args: argparse.Namespace) -> int:
    """``swb login``: log in, print the token (with --json, the whole response)."""
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.username}: ")
    with _client(args) as client:
        response = client.login(args.username, password)
    if args.json:
        _render.json_line(response)
    else:
        print(response.access_token)
    return 0
