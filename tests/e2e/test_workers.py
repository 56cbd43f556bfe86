"""``switchboard serve --workers N`` as an operator runs it: real processes sharing one port.

Which process serves a call is read from the machine, not assumed: the listening
sockets of the gRPC port and of each metrics port are traced to their processes
through /proc, and each worker's /metrics counts the calls that process served.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.v1 import agents_pb2, agents_pb2_grpc
from tests.e2e.programs import run_process
from tests.telemetry.series import grpc_labels, series

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
START_LIMIT = 120.0  # seconds for every worker to start (imports are slow on a busy machine)
_LIST_AGENTS_OK = grpc_labels("unary", "switchboard.v1.AgentService", "ListAgents", grpc_code="OK")

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(sys.platform != "linux", reason="--workers needs Linux"),
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Programs see no SWITCHBOARD_* setting the test did not give, and work in tmp_path."""
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _free_port(count: int = 1) -> int:
    """The first of ``count`` consecutive ports nothing is bound to now.

    Taken below the kernel's ephemeral range: there, any program's outgoing connection
    could take one of them between this choice and the server binding it.
    """
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        first = random.randrange(10_000, ephemeral - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports below {ephemeral}")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Supervisor:
    """A running ``switchboard serve --workers N`` and everything it logged so far."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, metrics: int) -> None:
        self.process = process
        self.port = port
        self.metrics = metrics
        self.records: list[dict[str, Any]] = []
        self.text: list[str] = []  # every stderr line, JSON or not
        self.ended = False  # stderr closed: the supervisor and every worker are gone
        self._grew = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.text.append(line)
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    self.records.append(record)
            async with self._grew:
                self._grew.notify_all()
        async with self._grew:
            self.ended = True
            self._grew.notify_all()

    def log(self) -> str:
        """Everything logged, for failure messages."""
        return "\n".join(self.text)

    def find(self, message: str, worker: int | None = None) -> list[dict[str, Any]]:
        """The records whose message starts with ``message`` (of worker ``worker``)."""
        return [
            r
            for r in self.records
            if str(r.get("message", "")).startswith(message)
            and (worker is None or r.get("worker") == worker)
        ]

    async def logged(
        self, message: str, worker: int | None = None, *, count: int = 1, limit: float = 60
    ) -> dict[str, Any]:
        """The ``count``-th record starting with ``message``, once it is logged."""
        try:
            async with asyncio.timeout(limit), self._grew:
                await self._grew.wait_for(
                    lambda: len(self.find(message, worker)) >= count or self.ended
                )
        except TimeoutError:
            pytest.fail(f"not logged in {limit} s: {message!r}\n{self.log()}", pytrace=False)
        found = self.find(message, worker)
        if len(found) < count:
            pytest.fail(f"ended without logging {message!r}\n{self.log()}", pytrace=False)
        return found[count - 1]

    async def serving(self) -> dict[int, int]:
        """Once every worker serves: worker index -> pid (of its latest process)."""
        await self.logged("2 workers serving on", limit=START_LIMIT)
        return self.pids()

    def pids(self) -> dict[int, int]:
        """Worker index -> pid of the latest process that said it serves."""
        return {
            r["worker"]: r["pid"] for r in self.find("worker ") if " serving (pid " in r["message"]
        }

    async def ended_with(self, limit: float = 60) -> int:
        """The supervisor's exit status, once it and its workers are gone (stderr closed)."""
        code = await asyncio.wait_for(self.process.wait(), limit)
        async with asyncio.timeout(limit), self._grew:
            await self._grew.wait_for(lambda: self.ended)
        return code


@contextlib.asynccontextmanager
async def supervised(
    tmp_path: Path,
    *,
    config: str = "",
    env: dict[str, str] | None = None,
    metrics: int | None = None,
) -> AsyncIterator[Supervisor]:
    """``switchboard serve --workers 2`` on free ports (gRPC, and /metrics from a base port)."""
    port = _free_port()
    metrics = metrics or _free_port(2)
    settings = tmp_path / "switchboard.yaml"
    settings.write_text(
        f"database_url: sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}\n"
        "server:\n  grace_period: 5\n" + config
    )
    process = await asyncio.create_subprocess_exec(
        SWITCHBOARD,
        "serve",
        "--workers",
        "2",
        "--address",
        f"127.0.0.1:{port}",
        "--config",
        str(settings),
        env={**os.environ, "SWITCHBOARD_METRICS_ADDRESS": f"127.0.0.1:{metrics}", **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    supervisor = Supervisor(process, port, metrics)
    try:
        yield supervisor
    finally:
        if process.returncode is None:
            for pid in _children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            await process.wait()
        supervisor._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor._reader


def _children(pid: int) -> set[int]:
    with contextlib.suppress(FileNotFoundError):
        return {
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        }
    return set()


def _listeners(port: int, pids: set[int]) -> set[int]:
    """Which of ``pids`` hold a socket listening on TCP ``port`` (IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{inode}]")
    holders = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        holders.add(pid)
    return holders


def _gone(pid: int) -> bool:
    """Whether process ``pid`` ended (a zombie nobody reaped yet counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


async def _until(condition: Callable[[], bool], what: str, limit: float = 30) -> None:
    """Wait (bounded) for a condition of the machine that no event announces."""
    try:
        async with asyncio.timeout(limit):
            while not condition():  # noqa: ASYNC110 - the kernel announces nothing here
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not true after {limit} s: {what}", pytrace=False)


async def _call_on_a_new_connection(port: int) -> None:
    """One ListAgents over a connection of its own (the kernel picks its worker)."""
    options = [("grpc.use_local_subchannel_pool", 1)]  # never reuse another channel's socket
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = agents_pb2_grpc.AgentServiceStub(channel)
        reply = await stub.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10)
    assert {agent.id for agent in reply.agents} == {"assistant", "echo"}


async def _served(metrics_port: int) -> float:
    """The ListAgents calls the worker behind ``metrics_port`` answered OK."""

    def scrape() -> str:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return str(reply.read().decode())

    return series(await asyncio.to_thread(scrape), "grpc_server_handled_total").get(
        _LIST_AGENTS_OK, 0.0
    )


async def _calls_until_served_by_each(supervisor: Supervisor, ports: list[int]) -> int:
    """Call on new connections until the worker of every metrics port served one; how many."""
    for calls in range(1, 65):  # both got one, but with odds of 2**-63 against
        await _call_on_a_new_connection(supervisor.port)
        if all([await _served(port) for port in ports]):
            return calls
    pytest.fail(f"64 connections and still not every worker served\n{supervisor.log()}")


async def test_workers_share_the_port_then_drain_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    env = {"SWITCHBOARD_DATABASE_URL": database_url}  # SQLite file, then PostgreSQL
    async with supervised(tmp_path, env=env) as supervisor:
        pids = await supervisor.serving()
        assert set(pids) == {0, 1}
        assert set(pids.values()) == _children(supervisor.process.pid)
        assert supervisor.process.pid not in pids.values()
        # Both processes listen on the one gRPC port; worker i alone on metrics port + i.
        workers = set(pids.values())
        assert _listeners(supervisor.port, workers | {supervisor.process.pid}) == workers
        for index, pid in pids.items():
            assert _listeners(supervisor.metrics + index, workers) == {pid}

        metrics_ports = [supervisor.metrics, supervisor.metrics + 1]
        calls = await _calls_until_served_by_each(supervisor, metrics_ports)
        counted = [await _served(port) for port in metrics_ports]
        assert all(counted)
        assert sum(counted) == calls  # each call served once, by exactly one worker

        supervisor.process.send_signal(signal.SIGTERM)
        assert await supervisor.ended_with() == 0, supervisor.log()
        assert all(_gone(pid) for pid in workers)
        for index in pids:
            await supervisor.logged("received SIGTERM: shutting down", worker=index)
            await supervisor.logged("shutdown: done", worker=index)
            assert supervisor.find(f"worker {index} exited with status 0")
        assert supervisor.records[-1]["message"] == "all workers stopped"


async def test_a_killed_worker_is_replaced_while_the_port_keeps_serving(
    tmp_path: Path,
) -> None:
    async with supervised(tmp_path) as supervisor:
        pids = await supervisor.serving()
        os.kill(pids[1], signal.SIGKILL)
        restart = await supervisor.logged("worker 1 was killed by SIGKILL after ")
        assert restart["message"].endswith("starting it again in 0.5 s")
        assert restart["level"] == "warning"
        # Reaped, so its socket is closed: until its successor listens, worker 0 serves alone.
        assert _listeners(supervisor.port, set(pids.values())) == {pids[0]}
        for _ in range(8):
            await _call_on_a_new_connection(supervisor.port)

        await supervisor.logged("worker 1 serving (pid ", worker=1, count=2, limit=START_LIMIT)
        replacement = supervisor.pids()[1]
        assert replacement != pids[1]
        assert _children(supervisor.process.pid) == {pids[0], replacement}
        assert _listeners(supervisor.port, {pids[0], replacement}) == {pids[0], replacement}
        assert _listeners(supervisor.metrics + 1, {replacement}) == {replacement}
        # A new process on the same metrics port: it counts only what it served itself.
        await _calls_until_served_by_each(supervisor, [supervisor.metrics + 1])

        # Ctrl-C: passed on once, each worker drains as on SIGTERM.
        supervisor.process.send_signal(signal.SIGINT)
        assert await supervisor.ended_with() == 0, supervisor.log()
        for index in (0, 1):
            assert supervisor.find("received SIGINT: shutting down", worker=index)
        assert _gone(pids[0])
        assert _gone(replacement)


async def test_a_worker_that_keeps_failing_makes_the_supervisor_give_up(
    tmp_path: Path,
) -> None:
    async with supervised(tmp_path) as supervisor:
        pids = await supervisor.serving()
        # From now on a worker starting reads settings it refuses (exit 2).
        settings = tmp_path / "switchboard.yaml"
        settings.write_text(settings.read_text() + "queue:\n  max_concurrency: 0\n")
        os.kill(pids[1], signal.SIGKILL)

        assert await supervisor.ended_with(limit=120) == 2, supervisor.log()
        delays = [
            r["message"].rpartition(" in ")[2]
            for r in supervisor.find("worker 1 ")
            if "starting it again" in r["message"]
        ]
        assert delays == ["0.5 s", "1.0 s", "2.0 s", "4.0 s"]
        gave_up = supervisor.find("worker 1 exited with status 2, 5 times in a row")
        assert gave_up, supervisor.log()
        assert gave_up[0]["level"] == "error"
        assert "queue.max_concurrency:" in supervisor.log()
        # The healthy worker was drained, not left behind.
        await supervisor.logged("shutdown: done", worker=0)
        assert _gone(pids[0])


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    async with supervised(tmp_path) as supervisor:
        pids = await supervisor.serving()
        supervisor.process.kill()
        # Their stderr is this pipe: it closes when the last worker has exited.
        assert await supervisor.ended_with() == -signal.SIGKILL
        for index, pid in pids.items():
            await supervisor.logged("the supervisor is gone: stopping", worker=index)
            await supervisor.logged("shutdown: done", worker=index)
            await _until(functools.partial(_gone, pid), f"worker pid {pid} ended")


async def test_a_setting_only_a_worker_can_refuse_exits_2(tmp_path: Path) -> None:
    config = (
        "default_agent: a\n"
        "agents:\n  - name: a\n    model: 'openai:gpt-4.1-mini'\n"
        "    api_key_env: SWITCHBOARD_TEST_UNSET_KEY\n"
    )
    async with supervised(tmp_path, config=config) as supervisor:
        assert await supervisor.ended_with() == 2, supervisor.log()
        assert "agents[0].api_key_env: SWITCHBOARD_TEST_UNSET_KEY is not set" in supervisor.log()
        assert supervisor.find("worker 0 did not start (exited with status 2)")
        assert not supervisor.find("worker 1 starting")  # the first one fails for all
        assert "Traceback" not in supervisor.log()


async def test_a_worker_failing_at_start_stops_the_others(tmp_path: Path) -> None:
    metrics = _free_port(2)
    with socket.socket() as squatter:  # on worker 1's metrics port
        squatter.bind(("127.0.0.1", metrics + 1))
        squatter.listen()
        async with supervised(tmp_path, metrics=metrics) as supervisor:
            assert await supervisor.ended_with(limit=START_LIMIT) == 1, supervisor.log()
            assert f"cannot listen on 127.0.0.1:{metrics + 1}" in supervisor.log()
            assert supervisor.find("worker 1 did not start (exited with status 1)")
            await supervisor.logged("shutdown: done", worker=0)


@pytest.mark.parametrize("sharing", [False, True], ids=["plain", "so_reuseport"])
async def test_a_port_another_program_listens_on_fails_before_any_worker(
    tmp_path: Path, sharing: bool
) -> None:
    with socket.socket() as other:
        if sharing:  # would silently get half the connections if workers joined it
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = await run_process(
            SWITCHBOARD, "serve", "--workers", "2", "--address", f"127.0.0.1:{port}", limit=60
        )
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "worker" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["--database-url", "sqlite+aiosqlite://"],
            {},
            "database_url: sqlite+aiosqlite:// is an in-memory SQLite database",
        ),
        (
            [],
            {"SWITCHBOARD_DATABASE_URL": "sqlite+aiosqlite:///:memory:"},
            "is an in-memory SQLite database",
        ),
        (["--address", "127.0.0.1:0"], {}, "address: 127.0.0.1:0 asks for a free port"),
        (
            [],
            {"SWITCHBOARD_METRICS_ADDRESS": "127.0.0.1:65535"},
            "metrics_address: ports 65535..65536 do not all exist",
        ),
        ([], {"SWITCHBOARD_QUEUE__MAX_CONCURRENCY": "0"}, "queue.max_concurrency:"),
    ],
)
async def test_settings_workers_cannot_share_exit_2(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    address = ["--address", f"127.0.0.1:{_free_port()}"]
    result = await run_process(
        SWITCHBOARD, "serve", "--workers", "2", *address, *args, env=env, limit=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("switchboard: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("count", ["0", "-1", "two"])
async def test_a_worker_count_below_one_is_a_usage_error(count: str) -> None:
    result = await run_process(SWITCHBOARD, "serve", "--workers", count, limit=60)
    assert result.returncode == 2
    assert f"argument --workers: not a number of processes (1 or more): '{count}'" in (
        result.stderr
    )
