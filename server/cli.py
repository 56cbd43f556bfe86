"""``switchboard``: run the server, migrate its database, check its health, manage users.

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
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.server.cli_identity import add_token_command, add_user_commands
from switchboard.server.cli_support import database_flags, fail, settings_from

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
    database_flags(serve)
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="server processes sharing the address through SO_REUSEPORT, worker i with "
        "/metrics on the metrics port + i (default 1: this process serves); docs/workers.md",
    )
    serve.set_defaults(command=_serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    database_flags(migrate)
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
    tls = check.add_argument_group("TLS (for a server with tls.cert_file set)")
    tls.add_argument(
        "--tls", action="store_true", help="connect with TLS, trusting the system's CAs"
    )
    tls.add_argument("--ca", type=Path, help="trust this CA bundle (PEM); implies --tls")
    tls.add_argument("--cert", type=Path, help="client certificate (PEM), for mTLS; implies --tls")
    tls.add_argument("--key", type=Path, help="the client certificate's private key (PEM)")
    tls.add_argument(
        "--server-name", help="expect this name in the server's certificate (default: the host)"
    )
    check.set_defaults(command=_health)
    add_user_commands(commands)
    add_token_command(commands)
    return parser


def _worker_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"not a number of processes (1 or more): {value!r}")
    return count


def _serve(args: argparse.Namespace) -> int:
    flags = {
        "address": args.address,
        "database_url": args.database_url,
        "config": args.config,
        "log_level": args.log_level,
    }
    # Imported here: the server's import chain would slow `health`, a container probe.
    from switchboard.server.workers import supervise, supervised_worker  # noqa: PLC0415

    if args.workers > 1:
        return supervise(args.workers, **flags)
    worker = supervised_worker()  # None unless `serve --workers N` started this process
    settings = settings_from(**flags)
    from switchboard.server.app import App, BindError, ConfigurationError  # noqa: PLC0415
    from switchboard.server.telemetry import setup_logging, setup_tracing  # noqa: PLC0415

    setup_logging(settings.log_level)
    try:
        tracing = setup_tracing()  # from the OTEL_* variables; None when off
    except ValueError as exc:
        fail(f"invalid OpenTelemetry settings: {exc}")
    tracer = tracing.tracer if tracing else None
    app = App(settings, tracer=tracer) if worker is None else worker.app(settings, tracer)
    try:
        asyncio.run(app.serve())
    except BindError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    except ConfigurationError as exc:
        fail(f"invalid settings: {exc}")
    finally:
        if tracing is not None:
            tracing.shutdown(5.0)  # bounded: a collector that is down must not hang the exit
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = settings_from(database_url=args.database_url, config=args.config)
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - see _serve

    from switchboard.server.store import migrate  # noqa: PLC0415 - see _serve

    try:
        asyncio.run(migrate(settings.database_url))
    except (OSError, SQLAlchemyError) as exc:
        print(f"switchboard: cannot migrate the database: {exc}", file=sys.stderr)
        return 1
    print("switchboard: the database schema is up to date")
    return 0


def _health_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    if (args.cert is None) != (args.key is None):
        fail("health: --cert and --key go together")
    if not (args.tls or args.ca or args.cert or args.server_name):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=args.ca.read_bytes() if args.ca else None,
        private_key=args.key.read_bytes() if args.key else None,
        certificate_chain=args.cert.read_bytes() if args.cert else None,
    )


def _health(args: argparse.Namespace) -> int:
    address = args.address or _local(os.environ.get("SWITCHBOARD_ADDRESS", "[::]:50051"))
    request = health_pb2.HealthCheckRequest(service=args.service)
    try:
        credentials = _health_credentials(args)
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    with (
        grpc.secure_channel(address, credentials, options)
        if credentials is not None
        else grpc.insecure_channel(address)
    ) as channel:
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
