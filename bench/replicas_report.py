"""The replicas suite's results: tables with where the CPU went, or JSON."""

from __future__ import annotations

import math
import os
from typing import Any

from bench.latency import EventLatency
from bench.replicas import ReplicaResults, Throughput
from bench.report import row

CPU_GROUPS = ("replicas", "envoy", "postgres", "redis", "client")
# Beyond this share of the machine spent outside the measured processes, say so (the
# kernel's share of loopback traffic alone takes about a tenth of 2 cores).
_NOISY = 0.15

_THROUGHPUT_COLUMNS = (
    ("scenario", 39),
    ("in-flight", 9),
    ("ok", 6),
    ("errors", 6),
    ("calls/s", 8),
    ("p50 ms", 8),
    ("p99 ms", 8),
    *((name, max(len(name), 6)) for name in (*CPU_GROUPS, "other")),
    ("busy", 5),
    ("CPU bound/s", 11),
)
_LATENCY_COLUMNS = (
    ("scenario", 50),
    ("tasks", 6),
    ("events", 7),
    ("skipped", 7),
    ("p50 ms", 7),
    ("p90 ms", 7),
    ("p99 ms", 7),
    ("max ms", 7),
    ("tasks ran on", 14),
)


def _rounded(value: float | None, digits: int) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def _text(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cpu_per_call(round_: Throughput) -> dict[str, float | None]:
    """Milliseconds of CPU per successful call, by process group, and ``other``.

    ``other`` is whatever else the machine did in the window (the rest of PostgreSQL,
    the kernel, other programs): the machine's busy time minus the groups'.
    """
    ok = round_.measurement.result.ok
    spent = {name: round_.cpu.spent.get(name) for name in CPU_GROUPS}
    spent["other"] = round_.cpu.unaccounted
    return {
        name: None if seconds is None or not ok else 1000 * seconds / ok
        for name, seconds in spent.items()
    }


def cpu_bound(round_: Throughput) -> float | None:
    """The calls/s the CPU per call allows on this machine with nothing else running.

    The lower of two ceilings: every core spent on this run's processes alone (the CPU
    columns but ``other``), and each replica — one Python process — on one core at most.
    """
    figures = cpu_per_call(round_)
    own = [figures[name] for name in CPU_GROUPS]
    replica = figures["replicas"]
    if any(value is None for value in own) or not replica:
        return None
    cores = os.cpu_count() or 1
    machine = cores * 1000 / sum(value for value in own if value is not None)
    return min(machine, min(round_.replicas, cores) * 1000 / replica)


def _throughput_row(round_: Throughput) -> dict[str, Any]:
    figures = row(round_.measurement)
    del figures["events_per_s"]
    figures["agent"] = round_.agent
    figures["replicas"] = round_.replicas
    figures["cpu_ms_per_call"] = {
        name: _rounded(value, 3) for name, value in cpu_per_call(round_).items()
    }
    figures["cpu_bound_calls_per_s"] = _rounded(cpu_bound(round_), 1)
    figures["machine_busy_share"] = _rounded(round_.cpu.machine_share, 2)
    other = round_.cpu.unaccounted
    figures["other_share"] = (
        None if other is None or not round_.cpu.capacity else round(other / round_.cpu.capacity, 2)
    )
    return figures


def scaling(results: ReplicaResults) -> dict[str, dict[str, float | None]]:
    """Per agent: calls/s with N > 1 replicas over calls/s with 1 (when both ran)."""
    found: dict[str, dict[str, float | None]] = {}
    by_agent: dict[str, dict[int, float]] = {}
    for round_ in results.throughput:
        by_agent.setdefault(round_.agent, {})[round_.replicas] = (
            round_.measurement.result.calls_per_second
        )
    for agent, rates in by_agent.items():
        one = rates.get(1)
        if not one:
            continue
        found[agent] = {
            f"{count}_vs_1": round(rate / one, 3)
            for count, rate in sorted(rates.items())
            if count != 1
        }
    return found


def _latency_row(latency: EventLatency) -> dict[str, Any]:
    return {
        "title": latency.title,
        "concurrency": latency.load.concurrency,
        "tasks": latency.load.ok,
        "errors": dict(latency.load.errors),
        "elapsed_s": round(latency.load.elapsed, 3),
        "events_counted": len(latency.latencies),
        "events_before_watch": latency.before_watch,
        "p50_ms": _rounded(latency.percentile_ms(0.50), 2),
        "p90_ms": _rounded(latency.percentile_ms(0.90), 2),
        "p99_ms": _rounded(latency.percentile_ms(0.99), 2),
        "max_ms": _rounded(latency.max_ms, 2),
        "task_p50_ms": _rounded(latency.load.percentile_ms(0.50), 2),
        "tasks_ran_on": dict(latency.ran_on),
    }


def as_json(results: ReplicaResults) -> dict[str, Any]:
    """Everything, for scripts."""
    return {
        "throughput": {
            round_.measurement.key: _throughput_row(round_) for round_ in results.throughput
        },
        "scaling": scaling(results),
        "latency": {latency.key: _latency_row(latency) for latency in results.latency},
    }


def _line(columns: tuple[tuple[str, int], ...], cells: list[str]) -> str:
    widths = [width for _, width in columns]
    first, *rest = cells
    numbers = [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
    return "  ".join([first.ljust(widths[0]), *numbers])


def _throughput_table(results: ReplicaResults) -> list[str]:
    header = _line(_THROUGHPUT_COLUMNS, [name for name, _ in _THROUGHPUT_COLUMNS])
    lines = [
        " " * (len(header) - 75) + "CPU ms per call, by process   busy: machine, all cores",
        header,
        "-" * len(header),
    ]
    for round_ in results.throughput:
        figures = _throughput_row(round_)
        cpu = figures["cpu_ms_per_call"]
        busy = figures["machine_busy_share"]
        cells = [
            figures["title"],
            str(figures["concurrency"]),
            str(figures["ok"]),
            str(sum(figures["errors"].values())),
            _text(figures["calls_per_s"], 1),
            _text(figures["p50_ms"], 2),
            _text(figures["p99_ms"], 2),
            *(_text(cpu[name], 2) for name in (*CPU_GROUPS, "other")),
            "-" if busy is None else f"{busy:.0%}",
            _text(figures["cpu_bound_calls_per_s"], 0),
        ]
        lines.append(_line(_THROUGHPUT_COLUMNS, cells))
    lines.append("")
    noisy = [
        f"{figures['title']} {figures['other_share']:.0%}"
        for figures in map(_throughput_row, results.throughput)
        if (figures["other_share"] or 0) > _NOISY
    ]
    if noisy:
        lines.append(
            'note: the rest of the machine ("other": the kernel, other programs) took a large '
            "share of all cores in "
            + "; ".join(noisy)
            + ": when other programs, those rounds had less CPU than the others"
        )
    for agent, ratios in scaling(results).items():
        described = ", ".join(
            f"{key.split('_')[0]} replicas {value:.2f}x" for key, value in ratios.items()
        )
        if described:
            lines.append(f"Execute {agent}, calls/s against 1 replica: {described}")
    return lines


def _latency_table(results: ReplicaResults) -> list[str]:
    header = _line(_LATENCY_COLUMNS, [name for name, _ in _LATENCY_COLUMNS])
    lines = [header, "-" * len(header)]
    for latency in results.latency:
        figures = _latency_row(latency)
        ran_on = ", ".join(
            f"{name[-1].upper()} {'-' if count is None else f'{count:.0f}'}"
            for name, count in figures["tasks_ran_on"].items()
        )
        cells = [
            figures["title"],
            str(figures["tasks"]),
            str(figures["events_counted"]),
            str(figures["events_before_watch"]),
            *(_text(figures[key], 2) for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
            ran_on,
        ]
        lines.append(_line(_LATENCY_COLUMNS, cells))
    return lines


def as_table(results: ReplicaResults) -> str:
    """Tables for people: throughput through Envoy, then event latency."""
    lines: list[str] = []
    if results.throughput:
        lines += _throughput_table(results)
    if results.latency:
        lines += ["", *_latency_table(results)] if lines else _latency_table(results)
    errors = {
        key: errors
        for key, errors in [
            *((r.measurement.key, dict(r.measurement.result.errors)) for r in results.throughput),
            *((latency.key, dict(latency.load.errors)) for latency in results.latency),
        ]
        if errors
    }
    if errors:
        lines += ["", f"errors by kind: {errors}"]
    return "\n".join(lines)
