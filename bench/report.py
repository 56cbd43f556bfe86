"""The results as a table with the ratios that matter, or as JSON."""

from __future__ import annotations

import math
from typing import Any

from bench.scenarios import Measurement

_COLUMNS = (
    ("scenario", 44),
    ("in-flight", 9),
    ("ok", 7),
    ("errors", 6),
    ("calls/s", 9),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("events/s", 9),
    ("srv CPU ms/call", 15),
    ("client CPU", 10),
)


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def row(measurement: Measurement) -> dict[str, Any]:
    """One scenario's figures, as plain values."""
    result = measurement.result
    return {
        "title": measurement.title,
        "concurrency": result.concurrency,
        "ok": result.ok,
        "errors": dict(result.errors),
        "elapsed_s": round(result.elapsed, 3),
        "calls_per_s": round(result.calls_per_second, 1),
        "p50_ms": round(result.percentile_ms(0.50), 2),
        "p99_ms": round(result.percentile_ms(0.99), 2),
        "events_per_s": round(result.items_per_second, 1) if measurement.streams else None,
        "server_cpu_ms_per_call": (
            None
            if result.server_cpu_ms_per_call is None
            else round(result.server_cpu_ms_per_call, 3)
        ),
        "client_cpu_share": round(result.client_cpu_share, 2),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def ratios(measurements: dict[str, Measurement]) -> dict[str, dict[str, float | None]]:
    """The service against the bare baseline, and the model path against the echo path."""
    pairs = {
        "execute_echo_vs_bare_echo": ("execute_echo", "bare_echo"),
        "execute_assistant_vs_execute_echo": ("execute_assistant", "execute_echo"),
    }
    found: dict[str, dict[str, float | None]] = {}
    for name, (subject, reference) in pairs.items():
        if subject in measurements and reference in measurements:
            one, other = measurements[subject].result, measurements[reference].result
            found[name] = {
                "throughput": _ratio(one.calls_per_second, other.calls_per_second),
                "p50_latency": _ratio(one.percentile_ms(0.5), other.percentile_ms(0.5)),
                "server_cpu_per_call": _ratio(
                    one.server_cpu_ms_per_call, other.server_cpu_ms_per_call
                ),
            }
    return found


def as_json(measurements: dict[str, Measurement]) -> dict[str, Any]:
    """Everything, for scripts."""
    return {
        "scenarios": {key: row(measurement) for key, measurement in measurements.items()},
        "ratios": ratios(measurements),
    }


def _line(cells: list[str]) -> str:
    """The first column left-aligned, numbers right-aligned."""
    widths = [width for _, width in _COLUMNS]
    first, *rest = cells
    numbers = [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
    return "  ".join([first.ljust(widths[0]), *numbers])


def as_table(measurements: dict[str, Measurement]) -> str:
    """A table for people, then the ratios in words."""
    header = _line([name for name, _ in _COLUMNS])
    lines = [header, "-" * len(header)]
    for measurement in measurements.values():
        figures = row(measurement)
        cells = [
            figures["title"],
            str(figures["concurrency"]),
            str(figures["ok"]),
            str(sum(figures["errors"].values())),
            _number(figures["calls_per_s"]),
            _number(figures["p50_ms"], 2),
            _number(figures["p99_ms"], 2),
            _number(figures["events_per_s"], 0),
            _number(figures["server_cpu_ms_per_call"], 3),
            f"{figures['client_cpu_share']:.0%}",
        ]
        lines.append(_line(cells))
    errors = {
        key: dict(measurement.result.errors)
        for key, measurement in measurements.items()
        if measurement.result.errors
    }
    if errors:
        lines += ["", f"errors by kind: {errors}"]
    lines += ["", *_ratio_lines(ratios(measurements))]
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ratio_lines(found: dict[str, dict[str, float | None]]) -> list[str]:
    titles = {
        "execute_echo_vs_bare_echo": "Execute (echo agent) vs bare grpc.aio echo",
        "execute_assistant_vs_execute_echo": "Execute (assistant, offline model via the "
        "Agents SDK) vs Execute (echo agent)",
    }
    lines = []
    for name, figures in found.items():
        lines.append(
            f"{titles[name]}: throughput {_times(figures['throughput'])}, "
            f"p50 latency {_times(figures['p50_latency'])}, "
            f"server CPU per call {_times(figures['server_cpu_per_call'])}"
        )
    return lines
