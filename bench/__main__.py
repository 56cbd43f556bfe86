"""``python -m bench``: start the servers, run every scenario, print the results.

``--scenario embedded`` (the default) starts `switchboard serve` on its embedded default
(a new SQLite file in a temporary folder) and the bare grpc.aio echo server, each in its
own process on loopback, drives them from this process, stops them, and prints a table
(or JSON) with the ratios. ``--scenario replicas`` runs replicas on PostgreSQL + Redis
behind Envoy (bench/replicas.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc

from bench import replicas_report, report, scenarios
from bench.backing import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL
from bench.load import LoadSettings
from bench.processes import ServerFailed, start_echo_server, start_switchboard
from bench.replicas import (
    MAX_REPLICAS,
    REPLICA_SCENARIOS,
    ReplicaPlan,
    ReplicaResults,
    run_replicas,
)
from bench.scenarios import Measurement

_R = TypeVar("_R")

SCENARIOS = ("bare_echo", "execute_echo", "execute_assistant", "watch_live", "watch_replay")
SUITES = {"embedded": SCENARIOS, "replicas": REPLICA_SCENARIOS}


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(sorted({int(item) for item in text.split(",")}))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Start the servers, run every scenario, print the results.",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds measured per scenario (10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of unmeasured warm-up first (1)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (32)")
    parser.add_argument(
        "--watch-words",
        type=int,
        default=200,
        help="words of the WatchTask input: the offline model streams one delta each (200)",
    )
    parser.add_argument(
        "--scenario",
        choices=sorted(SUITES),
        default="embedded",
        help="embedded: one server on SQLite against bare gRPC (default); replicas: "
        "replicas on PostgreSQL + Redis behind Envoy, and cross-replica event latency",
    )
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=None,
        help=f"comma-separated subset of the suite's scenarios: embedded {','.join(SCENARIOS)} "
        f"(watch_replay needs watch_live); replicas {','.join(REPLICA_SCENARIOS)}",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    replicas = parser.add_argument_group("--scenario replicas")
    replicas.add_argument(
        "--replicas",
        type=_numbers,
        default=(1, 2, 3),
        help=f"replica counts of the Envoy rounds, 1..{MAX_REPLICAS} (1,2,3)",
    )
    replicas.add_argument(
        "--latency-concurrency",
        type=int,
        default=4,
        help="tasks in flight in the event-latency rounds (4); their input has --watch-words",
    )
    replicas.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="an existing database to connect to for CREATE/DROP DATABASE of the run's own "
        f"({DEFAULT_POSTGRES_URL})",
    )
    replicas.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis the replicas share, under a prefix of their own ({DEFAULT_REDIS_URL})",
    )
    return parser


def _check(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    known = SUITES[arguments.scenario]
    if arguments.only is None:
        arguments.only = list(known)
    unknown = sorted(set(arguments.only) - set(known))
    if unknown:
        parser.error(
            f"--only: unknown scenarios {unknown}; choose from {list(known)} "
            f"(--scenario {arguments.scenario})"
        )
    if "watch_replay" in arguments.only and "watch_live" not in arguments.only:
        parser.error("--only: watch_replay replays the tasks of watch_live; add watch_live")
    if arguments.duration <= 0 or arguments.warmup < 0 or arguments.concurrency < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --concurrency >= 1")
    if not 1 <= arguments.watch_words <= 1000:
        parser.error("--watch-words must be 1..1000 (the input limit is 10,000 characters)")
    if not set(arguments.replicas) <= set(range(1, MAX_REPLICAS + 1)):
        parser.error(f"--replicas: each count must be 1..{MAX_REPLICAS}")
    if arguments.latency_concurrency < 1:
        parser.error("--latency-concurrency must be >= 1")


async def _run(arguments: argparse.Namespace) -> dict[str, Measurement]:
    settings = LoadSettings(arguments.concurrency, arguments.duration, arguments.warmup)
    wanted = set(arguments.only)
    done: dict[str, Measurement] = {}

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        workdir = Path(folder)
        if "bare_echo" in wanted:
            echo_server = await start_echo_server(workdir)
            try:
                progress("measuring the bare grpc.aio echo server ...")
                done["bare_echo"] = await scenarios.bare_echo(echo_server, settings)
            finally:
                await echo_server.stop()
        if wanted - {"bare_echo"}:
            server = await start_switchboard(workdir)
            try:
                for agent in ("echo", "assistant"):
                    if f"execute_{agent}" in wanted:
                        progress(f"measuring Execute on agent {agent} ...")
                        done[f"execute_{agent}"] = await scenarios.execute(server, settings, agent)
                if "watch_live" in wanted:
                    progress("measuring SubmitTask + WatchTask live ...")
                    live, watched = await scenarios.watch_live(
                        server, settings, arguments.watch_words
                    )
                    done["watch_live"] = live
                    if "watch_replay" in wanted:
                        progress("measuring WatchTask replay ...")
                        done["watch_replay"] = await scenarios.watch_replay(
                            server, settings, watched
                        )
            finally:
                await server.stop()
    return {key: done[key] for key in SCENARIOS if key in done}


async def _run_replicas(arguments: argparse.Namespace) -> ReplicaResults:
    wanted = set(arguments.only)
    plan = ReplicaPlan(
        replicas=arguments.replicas,
        agents=tuple(agent for agent in ("echo", "assistant") if f"execute_{agent}" in wanted),
        latency="event_latency" in wanted,
        load=LoadSettings(arguments.concurrency, arguments.duration, arguments.warmup),
        latency_load=LoadSettings(
            arguments.latency_concurrency, arguments.duration, arguments.warmup
        ),
        words=arguments.watch_words,
        postgres_url=arguments.postgres_url,
        redis_url=arguments.redis_url,
    )

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as folder:
        return await run_replicas(plan, Path(folder), progress)


def _header(arguments: argparse.Namespace) -> str:
    common = (
        f"{arguments.duration:g} s per scenario after {arguments.warmup:g} s warm-up; "
        f"loopback; Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    if arguments.scenario == "replicas":
        return (
            f"Switchboard bench, replicas: switchboard serve on PostgreSQL + Redis; Execute "
            f"through Envoy with {arguments.concurrency} calls in flight; event latency with "
            f"{arguments.latency_concurrency} task(s) of {arguments.watch_words} words in "
            f"flight; {common}"
        )
    return (
        f"Switchboard bench: {arguments.concurrency} calls in flight, {common}; "
        "server: switchboard serve on SQLite (embedded default)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every call succeeded, 1 when some failed, 2 on bad flags."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    _check(arguments, parser)
    if arguments.scenario == "replicas":
        return _finish(
            arguments,
            _run_replicas(arguments),
            replicas_report.as_json,
            replicas_report.as_table,
            lambda results: (
                any(r.measurement.result.errors for r in results.throughput)
                or any(latency.load.errors for latency in results.latency)
            ),
        )
    return _finish(
        arguments,
        _run(arguments),
        report.as_json,
        report.as_table,
        lambda measurements: any(m.result.errors for m in measurements.values()),
    )


def _finish(
    arguments: argparse.Namespace,
    run: Coroutine[Any, Any, _R],
    as_json: Callable[[_R], Any],
    as_table: Callable[[_R], str],
    failed: Callable[[_R], bool],
) -> int:
    """Run the scenarios, print the report (JSON or a table); 1 when any call failed."""
    try:
        results = asyncio.run(run)
    except ServerFailed as failure:
        print(f"bench: {failure}", file=sys.stderr)
        return 1
    if arguments.json:
        print(json.dumps(as_json(results), indent=2))
    else:
        print(_header(arguments))
        print()
        print(as_table(results))
    return 1 if failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
