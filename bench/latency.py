"""How long a task event takes from its production to a watcher, on the same or another replica.

Each task is submitted to one replica and watched on another (or the same) one, from its
first event. An event's latency is its receipt time here minus its production time, the
``TaskEvent.time`` the running replica stamped when it recorded the event; every process
runs on this machine, so both times come from the same clock. The path measured is the
whole of it: the journal's batching, the commit, the Redis publish, the watching
replica's subscription, its stream, and the client's deserialisation.

Only events produced after the WatchTask call was made count: the ones before (the
QUEUED event at least) reach the watcher from the store's replay, and their "latency"
would only say how late the watcher arrived.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.load import LoadResult, LoadSettings, measure
from bench.processes import ServerProcess
from bench.scenarios import CALL_LIMIT, watch_input, watch_to_end
from switchboard.v1 import tasks_pb2, tasks_pb2_grpc

# Observed where a task runs (RUNNING to its end): says which replica ran how many.
_TASKS_RUN = "agent_task_duration_seconds_count"
_COUNT_PATIENCE = 5.0  # seconds


@dataclass
class EventLatency:
    """The events' latencies of one round, and where its tasks ran."""

    key: str
    title: str
    load: LoadResult  # per task: submit to terminal event; items are events received
    latencies: list[float] = field(default_factory=list)  # seconds, counted events only
    before_watch: int = 0  # events produced before the watch began (not counted)
    ran_on: dict[str, float | None] = field(default_factory=dict)  # replica name -> tasks

    def percentile_ms(self, fraction: float) -> float:
        """Event latency at ``fraction`` (0.5, 0.99) of the counted events, nearest rank."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def max_ms(self) -> float:
        """The slowest counted event."""
        return 1000 * max(self.latencies) if self.latencies else math.nan


def _seconds(stamp: Timestamp) -> float:
    return float(stamp.seconds) + stamp.nanos / 1e9


async def _tasks_run(replicas: list[ServerProcess]) -> dict[str, float | None]:
    return {replica.name: await replica.metric(_TASKS_RUN) for replica in replicas}


async def _tasks_run_since(
    replicas: list[ServerProcess], before: dict[str, float | None], tasks: int
) -> dict[str, float | None]:
    """Tasks each replica ran since ``before``, once they add up to ``tasks`` (bounded wait).

    A replica counts a task when it has finished it, which may be a moment after the
    watcher saw the terminal event.
    """
    deadline = time.monotonic() + _COUNT_PATIENCE
    while True:
        after = await _tasks_run(replicas)
        ran: dict[str, float | None] = {}
        for name, count in after.items():
            start = before.get(name)
            ran[name] = None if count is None or start is None else count - start
        counted = [value for value in ran.values() if value is not None]
        if len(counted) < len(ran) or sum(counted) >= tasks or time.monotonic() > deadline:
            return ran
        await asyncio.sleep(0.05)  # the counters are only visible by scraping


async def event_latency(
    key: str,
    title: str,
    *,
    submit_to: ServerProcess,
    watch_on: ServerProcess,
    settings: LoadSettings,
    words: int,
) -> EventLatency:
    """SubmitTask to ``submit_to``, WatchTask on ``watch_on``; the latency of every event.

    ``settings.concurrency`` tasks are in flight at a time, each the offline model's
    answer to a ``words``-word input (one output delta per word, about ``words`` + 10
    events per task). Warm-up tasks are run and thrown away first.
    """
    request = tasks_pb2.SubmitTaskRequest(
        task=tasks_pb2.TaskSpec(input=watch_input(words), agent="assistant", no_cache=True)
    )
    replicas = list({submit_to.name: submit_to, watch_on.name: watch_on}.values())
    sink = EventLatency(key, title, LoadResult(settings.concurrency))
    async with (
        grpc.aio.insecure_channel(submit_to.address) as submit_channel,
        grpc.aio.insecure_channel(watch_on.address) as watch_channel,
    ):
        submitter = tasks_pb2_grpc.TaskServiceStub(submit_channel)
        watcher = tasks_pb2_grpc.TaskServiceStub(watch_channel)

        async def submit_and_watch() -> int:
            submitted = await submitter.SubmitTask(request, timeout=CALL_LIMIT)
            opened = time.time()

            def received(event: tasks_pb2.TaskEvent) -> None:
                now, produced = time.time(), _seconds(event.time)
                if produced < opened:
                    sink.before_watch += 1
                else:
                    sink.latencies.append(now - produced)

            return await watch_to_end(watcher, submitted.task.id, received)

        if settings.warmup > 0:
            warmup = LoadSettings(settings.concurrency, settings.warmup, warmup=0)
            await measure(submit_and_watch, warmup, watch_on.cpu_seconds)
            sink.latencies.clear()
            sink.before_watch = 0
        before = await _tasks_run(replicas)
        measured = LoadSettings(settings.concurrency, settings.duration, warmup=0)
        sink.load = await measure(submit_and_watch, measured, watch_on.cpu_seconds)
    finished = sink.load.ok + sum(sink.load.errors.values())
    sink.ran_on = await _tasks_run_since(replicas, before, finished)
    return sink
