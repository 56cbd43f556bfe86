"""A Redis server of the test's own, to stop and start under a limiter."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path


def free_port() -> int:
    """A loopback port nothing listens on (the OS's pick, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SpareRedis:
    """``redis-server`` on ``port``, without persistence; ``start`` waits until it is ready."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[bytes] | None = None

    async def start(self) -> None:
        """Start a server with no data and wait for its "Ready to accept connections"."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        process = await asyncio.create_subprocess_exec(
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(self._directory)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._process = process
        assert process.stdout is not None
        async with asyncio.timeout(10):
            while b"Ready to accept connections" not in await process.stdout.readline():
                assert process.returncode is None, "redis-server exited"
        # Keep reading its log, or a full pipe would block the server.
        self._drain = asyncio.create_task(process.stdout.read())

    async def stop(self) -> None:
        """Stop the server and wait for it to exit (its port is free again)."""
        if self._process is None:
            return
        self._process.terminate()
        await self._process.wait()
        if self._drain is not None:
            await self._drain
        self._process = None
