"""A PostgreSQL cluster of the test's own, to stop and start under running replicas.

The machine's shared server on 5432 serves every other test: it is never restarted.
This one is made by ``initdb`` in a fresh directory (trust authentication, loopback
only, no durability: it lives for one test module), runs ``postgres`` as a child
process on a free port and is stopped with a fast shutdown, which cuts every
connection as a crash or a failover would. PostgreSQL refuses to run as root: under
root the cluster belongs to, and runs as, the ``postgres`` system user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.ratelimit.spare_redis import free_port

_BOUND = 30.0
_POLL = 0.05


def _bindir() -> Path:
    """The newest installed PostgreSQL's server programs (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail(
            "no PostgreSQL server programs in /usr/lib/postgresql/*/bin: "
            "apt-get install -y postgresql",
            pytrace=False,
        )
    return found[-1].parent


def _owner() -> pwd.struct_passwd:
    """The system user PostgreSQL runs as when the tests run as root."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, the private PostgreSQL needs the `postgres` system user "
            "(apt-get install -y postgresql creates it)",
            pytrace=False,
        )


class PrivatePostgres:
    """``postgres`` on ``127.0.0.1:port`` over a new cluster; ``start``/``stop`` at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self._bin = _bindir()
        self._root = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
        self._data = self._root / "data"
        self._log = self._root / "postgres.log"
        self._user = _owner() if os.geteuid() == 0 else None
        self._process: asyncio.subprocess.Process | None = None

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _as_owner(self, program: str, *args: str) -> list[str]:
        """The command line running ``program`` as the cluster's owner.

        Not through subprocess's ``user=``: changing ids forces a plain fork() of this
        multi-threaded process (gRPC's threads included), whose child gRPC's fork
        handlers may crash before the exec. ``setpriv`` (util-linux) drops the ids
        after a clean exec instead.
        """
        command = [str(self._bin / program), *args]
        if self._user is None:
            return command
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("setpriv is missing: apt-get install -y util-linux", pytrace=False)
        user = self._user
        ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        return [setpriv, *ids, "--", *command]

    async def init(self) -> None:
        """Create the cluster (``initdb``): superuser ``postgres``, trust, UTF-8."""
        if self._user is not None:
            os.chown(self._root, self._user.pw_uid, self._user.pw_gid)
        process = await asyncio.create_subprocess_exec(
            *self._as_owner(
                "initdb",
                *("-D", str(self._data), "-U", "postgres", "-A", "trust"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), _BOUND)
        if process.returncode != 0:
            pytest.fail(f"initdb failed ({process.returncode}):\n{output.decode()}")

    async def start(self) -> None:
        """Start the server and wait (bounded) until it accepts connections."""
        assert self._process is None, "already running"
        with self._log.open("ab") as sink:
            self._process = await asyncio.create_subprocess_exec(
                *self._as_owner(
                    "postgres",
                    *("-D", str(self._data), "-p", str(self.port)),
                    *("-c", "listen_addresses=127.0.0.1"),
                    *("-c", f"unix_socket_directories={self._root}"),
                    # Throwaway data: no fsync, no full pages.
                    *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                    *("-c", "full_page_writes=off"),
                ),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            async with asyncio.timeout(_BOUND):
                while not await self._answers():
                    if self._process.returncode is not None:
                        raise RuntimeError(f"postgres exited with {self._process.returncode}")
                    await asyncio.sleep(_POLL)
        except (TimeoutError, RuntimeError) as exc:
            pytest.fail(f"private PostgreSQL did not start: {exc!r}\n{self._log.read_text()}")

    async def _answers(self) -> bool:
        try:
            connection = await asyncpg.connect(self._dsn(), timeout=2)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    async def stop(self) -> None:
        """Fast shutdown (SIGINT): every session is cut; wait until the server is gone."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), _BOUND)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def create_database(self, name: str) -> str:
        """Create database ``name``; its URL."""
        connection = await asyncpg.connect(self._dsn(), timeout=10)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    def remove(self) -> None:
        """Delete the cluster's files (once stopped)."""
        shutil.rmtree(self._root, ignore_errors=True)


@contextlib.asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A started private cluster, stopped and deleted on exit."""
    cluster = PrivatePostgres()
    try:
        await cluster.init()
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
        cluster.remove()
