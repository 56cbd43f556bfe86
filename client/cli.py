"""``swb``: the Switchboard command line.

Run ``swb --help`` (and ``swb COMMAND --help``) for usage. Exit status: 0 on
success, 1 when a call fails (or ``run`` ends in a state other than SUCCEEDED),
2 for usage errors, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from switchboard.client import _commands
from switchboard.client._base import ADDRESS_ENV, TOKEN_ENV, default_address
from switchboard.client._requests import enum_choices
from switchboard.client.errors import SwitchboardError
from switchboard.v1 import tasks_pb2

_PRIORITIES = enum_choices(tasks_pb2.TaskPriority, "TASK_PRIORITY_")
_STATES = enum_choices(tasks_pb2.TaskState, "TASK_STATE_")


def _version() -> str:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:
        return "unknown"


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _connection_options(*, with_timeout: bool, suppress: bool) -> argparse.ArgumentParser:
    """The global options, accepted before the command and (defaults suppressed) after it."""
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--address",
        default=default(None),
        help=f"server host:port (default: ${ADDRESS_ENV} or localhost:50051)",
    )
    group.add_argument(
        "--token",
        default=default(None),
        help=f"bearer token sent with every call (default: ${TOKEN_ENV})",
    )
    group.add_argument("--tls", action="store_true", default=default(False), help="use TLS")
    group.add_argument(
        "--ca-cert",
        metavar="FILE",
        default=default(None),
        help="PEM root certificates to verify the server with (implies --tls)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print proto3 JSON, one object per line, and nothing else on stdout",
    )
    if with_timeout:
        group.add_argument(
            "--timeout",
            dest="call_timeout",
            type=_positive_float,
            metavar="SECONDS",
            default=default(None),
            help="deadline of each call (default: none)",
        )
    return parser


def _task_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="the task's input text")
    parser.add_argument("--agent", help="the agent to run it (default: the server's default)")
    parser.add_argument("--instructions", help="extra instructions for the agent")
    parser.add_argument("--priority", choices=_PRIORITIES, help="queue priority (default: medium)")
    parser.add_argument(
        "--timeout",
        dest="task_timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="how long the task may run (default: the agent's; 1 to 300)",
    )
    parser.add_argument(
        "--request-id", default="", help="idempotency key: a repeat returns the same task"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run the agent even if a cached result exists, and do not cache this one",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``swb`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="swb",
        description="Run and inspect Switchboard agent tasks.",
        parents=[_connection_options(with_timeout=True, suppress=False)],
        epilog="Global options may also follow the command (except --timeout on run and "
        "submit, where it is the task's timeout).",
    )
    parser.add_argument("--version", action="version", version=f"swb {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_connection_options(with_timeout=True, suppress=True)]
    task_common = [_connection_options(with_timeout=False, suppress=True)]

    run = commands.add_parser(
        "run",
        parents=task_common,
        help="run a task and print the result",
        description="Run a task and print it when it ends. With --watch, queue it and show "
        "its progress live; with --json, its events one per line, then the final task.",
    )
    _task_arguments(run)
    run.add_argument("--watch", action="store_true", help="show progress as it happens")
    run.set_defaults(handler=_commands.run)

    submit = commands.add_parser(
        "submit",
        parents=task_common,
        help="queue a task and print its id",
        description="Queue a task and print its id (with --json, the task).",
    )
    _task_arguments(submit)
    submit.set_defaults(handler=_commands.submit)

    watch = commands.add_parser(
        "watch",
        parents=common,
        help="follow a task's events until it ends",
        description="Follow a task's events until it ends (with --json, one event per line).",
    )
    watch.add_argument("task_id", metavar="ID")
    watch.add_argument(
        "--after",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="only events after sequence N",
    )
    watch.set_defaults(handler=_commands.watch)

    get = commands.add_parser("get", parents=common, help="show a task")
    get.add_argument("task_id", metavar="ID")
    get.set_defaults(handler=_commands.get)

    ls = commands.add_parser("ls", parents=common, help="list tasks, newest first")
    ls.add_argument("--state", choices=_STATES, help="only tasks in this state")
    ls.add_argument("--agent", default="", help="only tasks for this agent")
    ls.add_argument(
        "--limit",
        type=_non_negative_int,
        default=50,
        metavar="N",
        help="at most N tasks (default: 50; 0: all)",
    )
    ls.set_defaults(handler=_commands.ls)

    cancel = commands.add_parser("cancel", parents=common, help="cancel a task")
    cancel.add_argument("task_id", metavar="ID")
    cancel.set_defaults(handler=_commands.cancel)

    agents = commands.add_parser("agents", parents=common, help="list the agents")
    agents.set_defaults(handler=_commands.agents)

    login = commands.add_parser(
        "login",
        parents=common,
        help="log in to the server's built-in identity and print a token",
        description="Log in (AuthService.Login) and print the token, e.g. "
        f"`export {TOKEN_ENV}=$(swb login alice)`. The password is asked for on a terminal, "
        "otherwise (or with --password-stdin) read from standard input.",
    )
    login.add_argument("username", metavar="USERNAME")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    login.set_defaults(handler=_commands.login)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``swb`` with ``argv`` (default: the process's arguments); return the exit status."""
    args = build_parser().parse_args(argv)
    args.address = args.address or default_address()
    args.token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        status: int = args.handler(args)
    except SwitchboardError as error:
        _commands.report_error(error, args.address)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # e.g. --ca-cert names no readable file
        print(f"error: {error}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
