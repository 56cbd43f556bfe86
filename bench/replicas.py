"""The replicas suite: Switchboard as deployed, N replicas on PostgreSQL + Redis behind Envoy.

``python -m bench --scenario replicas`` (see README.md). One fresh database and Redis
prefix for the run; replicas are real ``switchboard serve`` processes on loopback,
started one after the other as the rounds need them (A, then B, then C), so a round
with N replicas runs with exactly N of them up:

- 1 replica: the same-replica event latency (submit to A, watch on A), then Execute
  through Envoy fronting A;
- 2 replicas: the cross-replica event latency (submit to A, watch on B), then Execute
  through Envoy fronting A and B;
- 3 replicas: Execute through Envoy fronting A, B and C.

Each Envoy is a new process whose upstreams are exactly the replicas of its round.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import scenarios
from bench.backing import Backing, fresh_backing
from bench.cpu import CpuWindow, ProcessGroup, matching_pids
from bench.latency import EventLatency, event_latency
from bench.load import LoadSettings
from bench.processes import ServerProcess, start_switchboard
from bench.proxy import Proxy, envoy_in_front
from bench.scenarios import Measurement

REPLICA_SCENARIOS = ("execute_echo", "execute_assistant", "event_latency")
MAX_REPLICAS = 3
_NAMES = "abc"


@dataclass(frozen=True)
class ReplicaPlan:
    """What the suite runs, and against which PostgreSQL and Redis."""

    replicas: tuple[int, ...]  # Envoy rounds: 1..3 replicas each
    agents: tuple[str, ...]  # Execute scenarios: "echo", "assistant"
    latency: bool
    load: LoadSettings  # the Execute rounds
    latency_load: LoadSettings  # the event-latency rounds (tasks in flight)
    words: int  # input words of an event-latency task
    postgres_url: str
    redis_url: str


@dataclass(frozen=True)
class Throughput:
    """One Execute round through Envoy, and who spent the machine's CPU during it."""

    agent: str
    replicas: int
    measurement: Measurement  # its server CPU is every replica's together
    cpu: CpuWindow


@dataclass
class ReplicaResults:
    """Everything the suite measured."""

    throughput: list[Throughput] = field(default_factory=list)
    latency: list[EventLatency] = field(default_factory=list)


@dataclass(frozen=True)
class _Front:
    """Envoy as a scenario target: its address; the CPU clock of the replicas behind it."""

    proxy: Proxy
    replicas: Sequence[ServerProcess]

    @property
    def address(self) -> str:
        return self.proxy.address

    def cpu_seconds(self) -> float | None:
        clocks = [replica.cpu_seconds() for replica in self.replicas]
        return None if None in clocks else sum(clock for clock in clocks if clock is not None)


def _cpu_window(backing: Backing, replicas: Sequence[ServerProcess], proxy: Proxy) -> CpuWindow:
    def postgres() -> list[int]:
        # A backend's title names its database: "postgres: USER DATABASE HOST(PORT) STATE".
        # The postmaster (its command line as started, with -D) forks one per connection.
        marker = f" {backing.database_name} "
        return matching_pids(
            lambda name, command: (
                name == "postgres" and (marker in command or not command.startswith("postgres:"))
            )
        )

    def redis() -> list[int]:
        return matching_pids(lambda name, _command: name == "redis-server")

    return CpuWindow(
        [
            ProcessGroup("replicas", lambda: [replica.process.pid for replica in replicas]),
            ProcessGroup("envoy", lambda: [proxy.pid]),
            ProcessGroup("postgres", postgres),
            ProcessGroup("redis", redis),
            ProcessGroup("client", lambda: [os.getpid()]),
        ]
    )


async def _start_replica(workdir: Path, backing: Backing, index: int) -> ServerProcess:
    settings = {
        **backing.settings(),
        # Migrated once by the bench, as in production: replicas do not race to migrate.
        "SWITCHBOARD_STORE__AUTO_MIGRATE": "false",
    }
    return await start_switchboard(
        workdir,
        name=f"replica-{_NAMES[index]}",
        database_url=backing.database_url,
        env=settings,
    )


async def _latency_round(
    plan: ReplicaPlan, fleet: list[ServerProcess], progress: Callable[[str], None]
) -> EventLatency:
    first, last = fleet[0], fleet[-1]
    where = "same replica" if first is last else "another replica"
    progress(f"measuring event latency: submit to {first.name}, watch on {last.name} ...")
    return await event_latency(
        "latency_same" if first is last else "latency_other",
        f"events, submit to {first.name[-1].upper()}, watch on {last.name[-1].upper()} ({where})",
        submit_to=first,
        watch_on=last,
        settings=plan.latency_load,
        words=plan.words,
    )


async def _throughput_rounds(
    plan: ReplicaPlan,
    workdir: Path,
    backing: Backing,
    fleet: list[ServerProcess],
    progress: Callable[[str], None],
) -> list[Throughput]:
    count = len(fleet)
    envoy_dir = workdir / f"envoy-{count}"
    await asyncio.to_thread(envoy_dir.mkdir)
    done = []
    async with envoy_in_front(envoy_dir, [replica.address for replica in fleet]) as proxy:
        front = _Front(proxy, list(fleet))
        for agent in plan.agents:
            progress(f"measuring Execute on agent {agent} through Envoy, {count} replica(s) ...")
            window = _cpu_window(backing, fleet, proxy)
            measured = await scenarios.execute(front, plan.load, agent, window)
            plural = "replica" if count == 1 else "replicas"
            titled = Measurement(
                f"envoy_{agent}_{count}",
                f"Execute {agent} via Envoy, {count} {plural}",
                measured.result,
            )
            done.append(Throughput(agent, count, titled, window))
    return done


async def run_replicas(
    plan: ReplicaPlan, workdir: Path, progress: Callable[[str], None]
) -> ReplicaResults:
    """Run ``plan`` in ``workdir`` (logs, Envoy configs); every process is stopped after."""
    results = ReplicaResults()
    size = max(max(plan.replicas, default=0), 2 if plan.latency else 0)
    progress("creating the run's PostgreSQL database and migrating it ...")
    async with fresh_backing(plan.postgres_url, plan.redis_url) as backing:
        fleet: list[ServerProcess] = []
        try:
            for index in range(size):
                progress(f"starting replica {_NAMES[index].upper()} ...")
                fleet.append(await _start_replica(workdir, backing, index))
                if plan.latency and len(fleet) in (1, 2):
                    results.latency.append(await _latency_round(plan, fleet, progress))
                if plan.agents and len(fleet) in plan.replicas:
                    results.throughput += await _throughput_rounds(
                        plan, workdir, backing, fleet, progress
                    )
        finally:
            for replica in reversed(fleet):
                await replica.stop()
    return results
