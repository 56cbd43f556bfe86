"""Drive podman from the image tests: run commands, start the image, wait for its health."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = "/var/lib/switchboard"
# Generous: the first start imports the server and migrates the store (about 3 s here).
SERVING_WITHIN = 90.0
_POLL_INTERVAL = 0.2


def fail(message: str) -> NoReturn:
    """Fail the test with ``message`` only (no traceback: the message says it all)."""
    pytest.fail(message, pytrace=False)


@dataclass(frozen=True)
class Podman:
    """The podman command with the containers.conf that scripts/image-check.sh writes."""

    executable: str
    env: dict[str, str]

    @classmethod
    def from_environment(cls) -> Podman:
        """Podman as scripts/image-check.sh sets it up; a failed test when it is not."""
        executable = shutil.which("podman")
        if executable is None:
            fail("podman is not installed: run scripts/image-check.sh (it installs it)")
        conf = os.environ.get("CONTAINERS_CONF", "")
        if not conf or not Path(conf).is_file():
            fail(
                "CONTAINERS_CONF names no file: run these tests through "
                "scripts/image-check.sh, which writes one (runc, cgroupfs) and exports it"
            )
        return cls(executable, {**os.environ, "CONTAINERS_CONF": conf})

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS``; with ``check``, a failed test showing its output unless it exits 0."""
        argv = [self.executable, *args]
        try:
            done = subprocess.run(
                argv,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            output = [_text(exc.stdout), _text(exc.stderr)]
            fail(f"{' '.join(argv)} did not finish in {timeout} s\n" + "\n".join(output))
        if check and done.returncode != 0:
            fail(
                f"{' '.join(argv)} exited with {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        """``podman KIND inspect NAME`` as JSON."""
        [found] = json.loads(self.run(kind, "inspect", name).stdout)
        result: dict[str, Any] = found
        return result


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def free_ports(count: int) -> list[int]:
    """Ports free on every interface now (held together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Container:
    """One container of the image, on the host's network, with its own ports."""

    podman: Podman
    image: str
    volume: str
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    name: str = field(default_factory=lambda: f"switchboard-image-test-{uuid.uuid4().hex[:10]}")
    grpc_port: int = 0
    metrics_port: int = 0
    seconds_to_serving: float = 0.0

    @property
    def address(self) -> str:
        """Where grpcurl reaches it."""
        return f"localhost:{self.grpc_port}"

    def start(self) -> Container:
        """Run it detached: read-only root, nothing writable but the data volume."""
        self.grpc_port, self.metrics_port = free_ports(2)
        env = {
            "SWITCHBOARD_ADDRESS": f"[::]:{self.grpc_port}",
            "SWITCHBOARD_METRICS_ADDRESS": f"[::]:{self.metrics_port}",
            # The operator's choice the image requires on a wildcard address (docs/image.md).
            "SWITCHBOARD_AUTH__ALLOW_UNAUTHENTICATED": "true",
            **self.env,
        }
        flags = [f"--env={key}={value}" for key, value in env.items()]
        flags += [f"--volume={mount}" for mount in self.mounts]
        self.podman.run(
            "run",
            "--detach",
            f"--name={self.name}",
            "--network=host",
            "--read-only",
            # No tmpfs on /tmp, /var/tmp, /run either: the image must not need them.
            "--read-only-tmpfs=false",
            f"--volume={self.volume}:{DATA_DIR}",
            *flags,
            self.image,
        )
        return self

    def wait_serving(self) -> None:
        """Poll the image's own HEALTHCHECK until it passes (bounded); fail if it exits."""
        started = time.monotonic()
        deadline = started + SERVING_WITHIN
        while True:
            check = self.podman.run("healthcheck", "run", self.name, check=False)
            if check.returncode == 0:
                self.seconds_to_serving = time.monotonic() - started
                return
            state = self.state()
            if state["Status"] != "running":
                fail(
                    f"the container {state['Status']} (exit code {state['ExitCode']}) "
                    f"before its health check passed; its log:\n{self.logs()}"
                )
            if time.monotonic() > deadline:
                fail(
                    f"the health check did not pass within {SERVING_WITHIN} s "
                    f"({check.stdout.strip()} {check.stderr.strip()}); log:\n{self.logs()}"
                )
            time.sleep(_POLL_INTERVAL)

    def wait_logged(self, start: str, within: float = 30.0) -> None:
        """Poll its log until a record's message starts with ``start`` (bounded)."""
        deadline = time.monotonic() + within
        while not any(message.startswith(start) for message in messages(log_records(self.logs()))):
            if time.monotonic() > deadline:
                fail(f"no log record {start!r} within {within} s; log:\n{self.logs()}")
            time.sleep(_POLL_INTERVAL)

    def wait_exit(self, within: float) -> int:
        """Wait for it to exit by itself; return its exit code."""
        done = self.podman.run("wait", self.name, timeout=within)
        return int(done.stdout.strip())

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside it, as its user."""
        return self.podman.run("exec", self.name, *argv, check=check)

    def state(self) -> dict[str, Any]:
        """Its ``State`` from ``podman inspect``."""
        state: dict[str, Any] = self.podman.inspect("container", self.name)["State"]
        return state

    def logs(self) -> str:
        """What it wrote to stdout and stderr."""
        done = self.podman.run("logs", self.name, check=False)
        return done.stdout + done.stderr

    def stop(self, timeout: int) -> float:
        """SIGTERM, SIGKILL after ``timeout`` s (``podman stop``); return the seconds it took."""
        started = time.monotonic()
        self.podman.run("stop", f"--time={timeout}", self.name, timeout=timeout + 60)
        return time.monotonic() - started

    def remove(self) -> None:
        """Remove it, running or not (its named volume stays)."""
        self.podman.run("rm", "--force", "--time=0", self.name, check=False)


def log_records(text: str) -> list[dict[str, Any]]:
    """The server's JSON log lines in ``text`` (podman's own lines are skipped)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def messages(records: Sequence[dict[str, Any]]) -> list[str]:
    """The ``message`` of each log record."""
    return [str(record.get("message", "")) for record in records]
