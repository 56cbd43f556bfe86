"""`python -m bench` runs end to end: tiny durations, every scenario, machine-readable."""

from __future__ import annotations

import json
import sys

from .programs import REPO_ROOT, run_process

SCENARIOS = {"bare_echo", "execute_echo", "execute_assistant", "watch_live", "watch_replay"}


async def test_bench_measures_every_scenario_and_the_ratios() -> None:
    done = await run_process(
        sys.executable,
        "-m",
        "bench",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--watch-words",
        "5",
        "--json",
        cwd=REPO_ROOT,
    )
    results = json.loads(done.check().stdout)

    scenarios = results["scenarios"]
    assert set(scenarios) == SCENARIOS
    for name, figures in scenarios.items():
        assert figures["ok"] > 0, name
        assert figures["errors"] == {}, name
        assert figures["calls_per_s"] > 0, name
        assert figures["p50_ms"] <= figures["p99_ms"], name
    for name in ("watch_live", "watch_replay"):
        # 5 words: at least queued, running, 5 deltas and the terminal event per task.
        assert scenarios[name]["events_per_s"] >= 8 * scenarios[name]["calls_per_s"]
    assert set(results["ratios"]) == {
        "execute_echo_vs_bare_echo",
        "execute_assistant_vs_execute_echo",
    }


async def test_bench_refuses_unknown_scenarios() -> None:
    done = await run_process(sys.executable, "-m", "bench", "--only", "nope", cwd=REPO_ROOT)
    assert done.returncode == 2
    assert "unknown scenarios ['nope']" in done.stderr


async def test_bench_measures_replicas_behind_envoy_and_cross_replica_latency() -> None:
    done = await run_process(
        sys.executable,
        "-m",
        "bench",
        "--scenario",
        "replicas",
        "--duration",
        "0.3",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--latency-concurrency",
        "1",
        "--watch-words",
        "5",
        "--json",
        cwd=REPO_ROOT,
    )
    results = json.loads(done.check().stdout)

    throughput = results["throughput"]
    assert set(throughput) == {
        f"envoy_{agent}_{n}" for agent in ("echo", "assistant") for n in (1, 2, 3)
    }
    for name, figures in throughput.items():
        assert figures["ok"] > 0, name
        assert figures["errors"] == {}, name
        assert figures["p50_ms"] <= figures["p99_ms"], name
    assert set(results["scaling"]) == {"echo", "assistant"}
    for name in ("latency_same", "latency_other"):
        figures = results["latency"][name]
        assert figures["errors"] == {}, name
        assert figures["events_counted"] > 0, name
        assert figures["p50_ms"] <= figures["p99_ms"], name
