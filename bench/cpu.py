"""Where the CPU went: per-process clocks and the machine's, read from /proc (Linux only).

On a small machine the load generator, the proxy, the replicas, PostgreSQL and Redis all
compete for the same cores, so a throughput figure means little without knowing who was
busy. Every reader returns None where /proc is missing rather than guessing.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[float, int] | None:
    """Process ``pid``'s user + system CPU seconds and its start time (clock ticks)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The fields after the command name, which may itself hold spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[19])


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time process ``pid`` used so far (None when it is unreadable)."""
    found = _stat(pid)
    return None if found is None else found[0]


def machine_busy_seconds() -> float | None:
    """CPU seconds every core together spent not idle since boot (None without /proc)."""
    try:
        first = (_PROC / "stat").read_text().splitlines()[0]
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    # already part of user time.
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in first.split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _TICKS


def matching_pids(accept: Callable[[str, str], bool]) -> list[int]:
    """Processes whose (command name, command line) ``accept`` takes, e.g. PostgreSQL's."""
    found = []
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it exited meanwhile, or is not ours to read
        if accept(name, command):
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class ProcessGroup:
    """Processes whose CPU time is summed under one name (they may come and go)."""

    name: str
    pids: Callable[[], Iterable[int]]


class CpuWindow:
    """CPU seconds each group and the whole machine spent between ``start`` and ``stop``.

    Processes come and go inside a window (PostgreSQL forks a backend per connection, and
    a pool may open and close connections all the time), and one that exits takes its
    clock with it. So the groups are read every ``interval`` while the window is open:
    a process is counted from its first reading (from zero when it started inside the
    window) to its last, and only what it spent in its last ``interval`` can escape —
    into ``unaccounted``, since the machine's total counts everything.
    """

    def __init__(self, groups: Iterable[ProcessGroup], interval: float = 0.5) -> None:
        self._groups = list(groups)
        self._interval = interval
        # (group, pid, start time) -> CPU seconds at the first and the latest reading
        self._first: dict[tuple[str, int, int], float] = {}
        self._last: dict[tuple[str, int, int], float] = {}
        self._lock = threading.Lock()
        self._open = False
        self._sampler: asyncio.Task[None] | None = None
        self._machine_before: float | None = None
        self._began = 0.0
        self.spent: dict[str, float | None] = {}
        self.machine: float | None = None
        self.wall = 0.0  # seconds between start and stop

    def _observe(self, *, opening: bool = False) -> None:
        readings = []
        for group in self._groups:
            for pid in group.pids():
                found = _stat(pid)
                if found is not None:
                    readings.append(((group.name, pid, found[1]), found[0]))
        with self._lock:
            if not (self._open or opening):
                return  # a reading that finished after the window closed
            for key, seconds in readings:
                # A process first seen after the opening reading started in the window.
                self._first.setdefault(key, seconds if opening else 0.0)
                self._last[key] = seconds

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            # In a thread: scanning /proc takes milliseconds the load loop should not wait.
            await asyncio.to_thread(self._observe)

    def start(self) -> None:
        """Read every clock, and keep reading them until ``stop`` (needs a running loop)."""
        self._machine_before = machine_busy_seconds()
        self._observe(opening=True)
        self._open = True
        self._began = time.monotonic()
        self._sampler = asyncio.get_running_loop().create_task(self._sample())

    def stop(self) -> None:
        """Read them a last time: ``spent`` per group and ``machine`` hold the differences."""
        self.wall = time.monotonic() - self._began
        if self._sampler is not None:
            self._sampler.cancel()
        self._observe()
        machine_after = machine_busy_seconds()
        with self._lock:
            self._open = False
            for group in self._groups:
                keys = [key for key in self._last if key[0] == group.name]
                # A group with no readable process has no figure, rather than a zero.
                self.spent[group.name] = (
                    sum(self._last[key] - self._first[key] for key in keys) if keys else None
                )
        if self._machine_before is not None and machine_after is not None:
            self.machine = machine_after - self._machine_before

    @property
    def capacity(self) -> float:
        """CPU seconds the machine had over the window: every core, all the window long."""
        return self.wall * (os.cpu_count() or 1)

    @property
    def machine_share(self) -> float | None:
        """How busy the whole machine was (1.0 = every core, all the window long)."""
        if self.machine is None or self.capacity <= 0:
            return None
        return self.machine / self.capacity

    @property
    def unaccounted(self) -> float | None:
        """CPU seconds the machine spent outside every group (kernel, other programs)."""
        if self.machine is None:
            return None
        return self.machine - sum(seconds for seconds in self.spent.values() if seconds)
