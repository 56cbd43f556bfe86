"""``switchboard``: run the server, migrate its database, check its health.

Settings come from flags, then ``SWITCHBOARD_*`` environment variables, then the
YAML file named by ``--config`` / ``SWITCHBOARD_CONFIG``. A bad setting exits 2
with a message naming it; the server's heavy imports happen only for ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from switchboard.server.config import load_settings

if TYPE_CHECKING:
    from switchboard.server.config import Settings

_USAGE_ERROR = 2
_WILDCARD_HOSTS = ("", "[::]", "0.0.0.0", "::")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    return command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard", description="Switchboard: a gRPC service that runs AI-agent tasks."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    serve.add_argument("--address", help="listen address (default [::]:50051)")
    _database_flags(serve)
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    serve.set_defaults(command=_serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    _database_flags(migrate)
    migrate.set_defaults(command=_migrate)

    check = commands.add_parser(
        "health", help="ask a server's health service; exit 0 when SERVING, 1 otherwise"
    )
    check.add_argument(
        "--address",
        help="server address (default: SWITCHBOARD_ADDRESS with a wildcard host as localhost)",
    )
    check.add_argument(
        "--service", default="", help="service name; empty (the default) asks liveness"
    )
    check.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    check.set_defaults(command=_health)
    return parser


def _database_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="SQLAlchemy async URL of the task store")
    parser.add_argument("--config", help="YAML settings file (or SWITCHBOARD_CONFIG)")


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(
        address=args.address,
        database_url=args.database_url,
        config=args.config,
        log_level=args.log_level,
    )
    # Imported here: the server's import chain would slow `health`, a container probe.
    from switchboard.server.app import App, BindError, ConfigurationError  # noqa: PLC0415
    from switchboard.server.telemetry import setup_logging  # noqa: PLC0415

    setup_logging(settings.log_level)
    try:
        asyncio.run(App(settings).serve())
    except BindError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    except ConfigurationError as exc:
        _fail(f"invalid settings: {exc}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(database_url=args.database_url, config=args.config)
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - see _serve

    from switchboard.server.store import migrate  # noqa: PLC0415 - see _serve

    try:
        asyncio.run(migrate(settings.database_url))
    except (OSError, SQLAlchemyError) as exc:
        print(f"switchboard: cannot migrate the database: {exc}", file=sys.stderr)
        return 1
    print("switchboard: the database schema is up to date")
    return 0


def _health(args: argparse.Namespace) -> int:
    address = args.address or _local(os.environ.get("SWITCHBOARD_ADDRESS", "[::]:50051"))
    request = health_pb2.HealthCheckRequest(service=args.service)
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{exc.code().name}: {exc.details()}")
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def _local(address: str) -> str:
    # A server listening on every interface is reached on this host through localhost.
    host, _, port = address.rpartition(":")
    return f"localhost:{port}" if host in _WILDCARD_HOSTS else address


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(**flags)
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        _fail(f"invalid settings: {problems}")
    except FileNotFoundError as exc:
        _fail(str(exc))
    except yaml.YAMLError as exc:
        _fail(f"the settings file is not valid YAML: {exc}")


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """One settings error as ``agents[0].model: must be ...``."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    message = message.removeprefix("Value error, ")
    # Checks across fields name their own field path in the message.
    return f"{path.lstrip('.')}: {message}" if path else message


def _fail(message: str) -> NoReturn:
    print(
        f"switchboard: {message}. Settings come from flags, SWITCHBOARD_* environment "
        "variables and the YAML file named by --config or SWITCHBOARD_CONFIG.",
        file=sys.stderr,
    )
    raise SystemExit(_USAGE_ERROR)
