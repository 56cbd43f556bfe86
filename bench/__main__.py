"""``python -m bench``: start the servers, run every scenario, print the results.

Starts `switchboard serve` on its embedded default (a new SQLite file in a temporary
folder) and the bare grpc.aio echo server, each in its own process on loopback, drives
them from this process, stops them, and prints a table (or JSON) with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import grpc

from bench import report, scenarios
from bench.load import LoadSettings
from bench.processes import ServerFailed, start_echo_server, start_switchboard
from bench.scenarios import Measurement

SCENARIOS = ("bare_echo", "execute_echo", "execute_assistant", "watch_live", "watch_replay")


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
        "--only",
        type=lambda text: text.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (watch_replay needs watch_live)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _check(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    unknown = sorted(set(arguments.only) - set(SCENARIOS))
    if unknown:
        parser.error(f"--only: unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    if "watch_replay" in arguments.only and "watch_live" not in arguments.only:
        parser.error("--only: watch_replay replays the tasks of watch_live; add watch_live")
    if arguments.duration <= 0 or arguments.warmup < 0 or arguments.concurrency < 1:
        parser.error("--duration must be > 0, --warmup >= 0, --concurrency >= 1")
    if not 1 <= arguments.watch_words <= 1000:
        parser.error("--watch-words must be 1..1000 (the input limit is 10,000 characters)")


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


def _header(arguments: argparse.Namespace) -> str:
    return (
        f"Switchboard bench: {arguments.concurrency} calls in flight, {arguments.duration:g} s "
        f"per scenario after {arguments.warmup:g} s warm-up; loopback; "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs; server: switchboard serve on SQLite (embedded default)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when every call succeeded, 1 when some failed, 2 on bad flags."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    _check(arguments, parser)
    try:
        measurements = asyncio.run(_run(arguments))
    except ServerFailed as failure:
        print(f"bench: {failure}", file=sys.stderr)
        return 1
    if arguments.json:
        print(json.dumps(report.as_json(measurements), indent=2))
    else:
        print(_header(arguments))
        print()
        print(report.as_table(measurements))
    failed = any(measurement.result.errors for measurement in measurements.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
