"""``switchboard serve --workers N``: N server processes sharing one address.

The supervisor never builds a server: it checks the settings, checks that nothing
listens on the address, then starts each worker as a fresh interpreter running
``switchboard serve`` (``python -m switchboard.server serve``), so gRPC, its threads
and everything else a server holds come to life inside the worker and nothing is
inherited across a fork. Every worker listens on the same address with SO_REUSEPORT
and the kernel spreads incoming connections over them; worker ``i`` serves
``/metrics`` on the metrics port plus ``i``.

Worker 0 starts alone, then the others together: a setting only a running server
can refuse (exit 2), a port another program took (exit 1) or a pending migration
meets one process, not N. A worker that fails to start stops everything with its exit
status. Later, a worker that dies is started again after a backoff; one that keeps
dying soon after its start makes the supervisor give up. SIGTERM and SIGINT are
passed on to every worker, each drains as a lone server would, and the supervisor
exits 0 when all of them drained cleanly.

Each worker holds one end of a socket pair whose other end only its supervisor has:
the worker says on it that it serves, and reads on it the supervisor's end closing
when the supervisor dies however it dies (even SIGKILL): the worker then stops as on
SIGTERM, so no worker outlives its supervisor holding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from switchboard.server.cli_support import fail, settings_from
from switchboard.server.config import Settings
from switchboard.server.listen import bind_problem

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from switchboard.server.app import App

__all__ = ["WORKER_ENV", "Worker", "supervise", "supervised_worker"]

WORKER_ENV = "SWITCHBOARD_WORKER"
"""Set by the supervisor in each worker: ``INDEX:FD``, FD its end of the socket pair."""

_log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_BACKOFF_INITIAL = 0.5  # seconds before the first restart, doubling on each quick failure
_BACKOFF_MAX = 30.0
_STABLE_AFTER = 60.0  # a worker that ran this long before dying did not crash-loop
_GIVE_UP_AFTER = 5  # quick failures in a row of one worker


def supervise(workers: int, **flags: str | None) -> int:
    """Run ``workers`` server processes on one address until SIGTERM/SIGINT; the exit status.

    ``flags`` are the ``serve`` flags (``address``, ``database_url``, ``config``,
    ``log_level``). Settings that cannot work with several processes exit 2.
    """
    settings = settings_from(**flags)
    # Imported here: the rest of telemetry is of no use to a supervisor.
    from switchboard.server.telemetry import setup_logging  # noqa: PLC0415

    if sys.platform != "linux":
        fail("--workers needs Linux, where SO_REUSEPORT spreads connections over the workers")
    if _in_memory(settings.database_url):
        fail(
            f"database_url: {settings.database_url} is an in-memory SQLite database, which "
            "each worker would have for itself: use a SQLite file or PostgreSQL with --workers"
        )
    _host, _, port = settings.address.rpartition(":")
    if port == "0":
        fail(
            f"address: {settings.address} asks for a free port, which would differ per "
            "worker: give a port with --workers"
        )
    metrics = _metrics_addresses(settings.metrics_address, workers)
    problem = bind_problem(settings.address, reuse_port=False)
    if problem is not None:
        print(f"switchboard: cannot listen on {settings.address}: {problem}", file=sys.stderr)
        return 1
    setup_logging(settings.log_level)
    if settings.redis_url is None:
        _log.warning(
            "%d workers without redis_url: each keeps its own event bus, cache and rate "
            "limits (see docs/workers.md)",
            workers,
        )
    config = flags.get("config")
    plan = _Plan(
        address=settings.address,
        argv=(
            sys.executable,
            "-m",
            "switchboard.server",
            "serve",
            *(["--config", config] if config else []),
        ),
        # Through the environment, not flags: a database password stays out of `ps`.
        env={
            "SWITCHBOARD_ADDRESS": settings.address,
            "SWITCHBOARD_DATABASE_URL": settings.database_url,
            "SWITCHBOARD_LOG_LEVEL": settings.log_level,
        },
        metrics=metrics,
    )
    return asyncio.run(_Supervisor(plan).run())


def _in_memory(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (a bad URL exits 2)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        fail(f"database_url: {exc}")
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    )


def _metrics_addresses(address: str, workers: int) -> list[str]:
    """Each worker's metrics address: the port plus the worker's index (empty: off)."""
    if not address:
        return [""] * workers
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        fail(f"metrics_address: not a host:port address: {address!r}")
    first = int(port)
    if first == 0:  # each worker takes a free port of its own, and logs it
        return [address] * workers
    if first + workers - 1 > 65535:
        fail(f"metrics_address: ports {first}..{first + workers - 1} do not all exist")
    return [f"{host}:{first + index}" for index in range(workers)]


@dataclass(frozen=True)
class _Plan:
    """How to start the workers."""

    address: str
    argv: tuple[str, ...]
    env: dict[str, str]
    metrics: list[str]


@dataclass
class _Slot:
    """One worker position and the process in it now."""

    index: int
    process: asyncio.subprocess.Process | None = None
    line: socket.socket | None = None  # the supervisor's end of the pair (module doc)
    started: float = 0.0
    quick_failures: int = field(default=0)

    @property
    def pid(self) -> int:
        """The current process's id (0 before the first start)."""
        return self.process.pid if self.process is not None else 0


class _Supervisor:
    """Starts the workers, restarts the ones that die, passes signals on (module doc)."""

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._slots = [_Slot(index) for index in range(len(plan.metrics))]
        self._stopping = asyncio.Event()
        self._signal = signal.SIGTERM  # what stops the workers: passed on to late starters
        self._by_signal = False  # stopping because the supervisor was told to

    async def run(self) -> int:
        """Supervise until the workers are gone; the exit status."""
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            return await self._run()
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)

    async def _run(self) -> int:
        first, *others = self._slots
        started = [await self._start(first)]
        if started[0] and others:
            started += await asyncio.gather(*(self._start(slot) for slot in others))
        if not all(started):
            self._stop()
            await asyncio.gather(*(self._ended(s) for s in self._slots if s.process is not None))
            failed = self._slots[started.index(False)]
            if failed.process is None or self._by_signal:  # stopped while starting
                return self._drained()
            code = failed.process.returncode
            _log.error(
                "worker %d did not start (%s): stopped the others",
                failed.index,
                _describe(code),
                extra={"worker": failed.index, "pid": failed.pid, "exit_code": code},
            )
            return code if code is not None and code > 0 else 1
        if not self._stopping.is_set():
            _log.info(
                "%d workers serving on %s",
                len(self._slots),
                self._plan.address,
                extra={"pids": [slot.pid for slot in self._slots]},
            )
        verdict = 0
        for keeping in asyncio.as_completed([self._keep(slot) for slot in self._slots]):
            gave_up = await keeping
            if gave_up is not None and not self._stopping.is_set():
                verdict = gave_up
                self._stop()
        _log.info("all workers stopped")
        return verdict or self._drained()

    def _drained(self) -> int:
        """0 when every worker exited 0 (drained), else 1."""
        clean = all(slot.process is None or slot.process.returncode == 0 for slot in self._slots)
        return 0 if clean else 1

    async def _start(self, slot: _Slot) -> bool:
        """Start the slot's worker; True once it serves, False when it exited first."""
        if self._stopping.is_set():
            return False
        line, theirs = socket.socketpair()
        env = {
            **os.environ,
            **self._plan.env,
            WORKER_ENV: f"{slot.index}:{theirs.fileno()}",
        }
        if self._plan.metrics[slot.index]:
            env["SWITCHBOARD_METRICS_ADDRESS"] = self._plan.metrics[slot.index]
        try:
            slot.process = await asyncio.create_subprocess_exec(
                *self._plan.argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                # Its own process group: a Ctrl-C in a terminal reaches the supervisor
                # only, which passes it on once (a second signal stops a worker at once).
                process_group=0,
            )
        except BaseException:
            line.close()
            raise
        finally:
            theirs.close()
        slot.line = line
        slot.started = asyncio.get_running_loop().time()
        if self._stopping.is_set():  # a signal came while the process was being made
            slot.process.send_signal(self._signal)
        extra = {"worker": slot.index, "pid": slot.pid}
        _log.info("worker %d starting (pid %d)", slot.index, slot.pid, extra=extra)
        if await _said_serving(line):
            _log.info("worker %d serving (pid %d)", slot.index, slot.pid, extra=extra)
            return True
        await self._ended(slot)
        return False

    @staticmethod
    async def _ended(slot: _Slot) -> int:
        """Wait for the slot's process to end; its exit status (negative: its signal)."""
        assert slot.process is not None
        code = await slot.process.wait()
        if slot.line is not None:
            slot.line.close()
            slot.line = None
        return code

    async def _keep(self, slot: _Slot) -> int | None:
        """Restart the slot's worker whenever it dies, until stopping (None) or giving up."""
        while True:
            code = await self._ended(slot)
            extra = {"worker": slot.index, "pid": slot.pid, "exit_code": code}
            if self._stopping.is_set():
                level = logging.INFO if code == 0 else logging.WARNING
                _log.log(level, "worker %d %s", slot.index, _describe(code), extra=extra)
                return None
            uptime = asyncio.get_running_loop().time() - slot.started
            slot.quick_failures = slot.quick_failures + 1 if uptime < _STABLE_AFTER else 1
            if slot.quick_failures >= _GIVE_UP_AFTER:
                _log.error(
                    "worker %d %s, %d times in a row within %d s of its start: giving up",
                    slot.index,
                    _describe(code),
                    slot.quick_failures,
                    _STABLE_AFTER,
                    extra=extra,
                )
                return code if code > 0 else 1
            delay = min(_BACKOFF_INITIAL * 2 ** (slot.quick_failures - 1), _BACKOFF_MAX)
            _log.warning(
                "worker %d %s after %.1f s: starting it again in %.1f s",
                slot.index,
                _describe(code),
                uptime,
                delay,
                extra=extra,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return None
            await self._start(slot)

    def _on_signal(self, signum: signal.Signals) -> None:
        again = self._by_signal
        self._by_signal = True
        _log.info(
            "received %s%s: passing it on to the workers",
            signum.name,
            " again (the workers stop at once)" if again else "",
        )
        self._stopping.set()
        self._signal = signum
        self._send(signum)

    def _stop(self) -> None:
        """Stop every worker gracefully (once: a second SIGTERM would cut the drain short)."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._send(signal.SIGTERM)

    def _send(self, signum: signal.Signals) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)


async def _said_serving(line: socket.socket) -> bool:
    """Whether the worker at the other end of ``line`` said it serves (False: it ended)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not answer.done():
            try:
                answer.set_result(line.recv(1))
            except OSError:
                answer.set_result(b"")

    loop.add_reader(line.fileno(), readable)
    try:
        return bool(await answer)
    finally:
        loop.remove_reader(line.fileno())


def _describe(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal has no name
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Worker:
    """A worker process that ``serve --workers N`` started (this process, when it is one)."""

    def __init__(self, index: int, line: socket.socket) -> None:
        self.index = index
        """The worker's position: its metrics port is the base port plus this."""
        self._line = line
        self._app: App | None = None

    def app(self, settings: Settings, tracer: Tracer | None) -> App:
        """The server of this worker: it shares the port and keeps in touch with the supervisor.

        Every log record from here on carries ``worker``: call after logging is set up.
        """
        from switchboard.server.app import App  # noqa: PLC0415 - heavy, workers only

        for handler in logging.getLogger().handlers:
            handler.addFilter(_WorkerTag(self.index))
        self._app = App(settings, tracer=tracer, reuse_port=True, on_serving=self._serving)
        return self._app

    def _serving(self) -> None:
        """Tell the supervisor this worker serves, then watch for its end of the line closing."""
        with contextlib.suppress(OSError):  # it is gone: the reader below sees so at once
            self._line.send(b"1")
        asyncio.get_running_loop().add_reader(self._line.fileno(), self._supervisor_gone)

    def _supervisor_gone(self) -> None:
        with contextlib.suppress(OSError):
            if self._line.recv(1):
                return  # the supervisor says nothing on the line: only its end closing counts
        asyncio.get_running_loop().remove_reader(self._line.fileno())
        self._line.close()
        if self._app is not None:
            _log.warning("the supervisor is gone: stopping")
            self._app.request_stop()  # idempotent: a drain underway goes on


def supervised_worker() -> Worker | None:
    """The worker this process is, when ``serve --workers N`` started it; None otherwise.

    Reads (and removes, so no program it runs inherits it) ``SWITCHBOARD_WORKER``.
    """
    raw = os.environ.pop(WORKER_ENV, None)
    if raw is None:
        return None
    try:
        index, fd = (int(part) for part in raw.split(":"))
        line = socket.socket(fileno=fd)
    except (ValueError, OSError):
        fail(f"{WORKER_ENV}: {raw!r} is not INDEX:FD of a socket (the supervisor sets it)")
    line.set_inheritable(False)
    return Worker(index, line)


class _WorkerTag(logging.Filter):
    """Adds ``worker`` (the index) to every record, so the merged logs tell workers apart."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops it."""
        record.worker = self._index
        return True
