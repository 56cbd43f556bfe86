"""The ``switchboard`` console script as a user runs it: serve, health, migrate, bad settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.programs import Completed, run_process

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Programs see no SWITCHBOARD_* setting the test did not give, and work in tmp_path."""
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # a default SQLite file lands here, not in the checkout


# Servers started here take a free port for /metrics, never the default 9464.
_QUIET_METRICS = {"SWITCHBOARD_METRICS_ADDRESS": "127.0.0.1:0"}


async def _switchboard(*args: str, env: dict[str, str] | None = None) -> Completed:
    return await run_process(
        SWITCHBOARD, *args, cwd=Path.cwd(), env=_QUIET_METRICS | (env or {}), limit=60
    )


class Served:
    """A ``switchboard serve`` process and the port it announced."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: list[dict[str, str]]):
        self.process = process
        self.port = port
        self.log = log


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """``switchboard serve`` on a free port, settings from a YAML file, flags and env."""
    config = tmp_path / "switchboard.yaml"
    config.write_text(
        f"address: '[::]:1'\n"  # overridden by the flag below
        f"database_url: sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}\n"
        "server:\n  grace_period: 5\n"
    )
    process = await asyncio.create_subprocess_exec(
        SWITCHBOARD,
        "serve",
        "--config",
        str(config),
        "--address",
        "127.0.0.1:0",
        env={**os.environ, **_QUIET_METRICS, "SWITCHBOARD_LOG_LEVEL": "debug"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log: list[dict[str, str]] = []
    try:
        port = await asyncio.wait_for(_announced_port(process, log), 60)
        yield Served(process, port, log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _announced_port(process: asyncio.subprocess.Process, log: list[dict[str, str]]) -> int:
    assert process.stderr is not None
    async for line in process.stderr:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # gRPC's own C-level lines are not ours
        log.append(record)
        if "port" in record:
            return int(record["port"])
    pytest.fail(f"switchboard serve exited ({await process.wait()}) before listening: {log}")


async def test_serve_answers_health_then_stops_on_sigterm(served: Served) -> None:
    address = f"127.0.0.1:{served.port}"
    assert served.log[-1]["logger"] == "switchboard.server.app"
    assert served.log[-1]["message"] == f"listening on 127.0.0.1:0 (port {served.port}, plaintext)"

    liveness = (await _switchboard("health", "--address", address)).check()
    assert liveness.stdout.strip() == "SERVING"
    readiness = await _switchboard(
        "health", "--address", address, "--service", "switchboard.v1.TaskService"
    )
    assert readiness.check().stdout.strip() == "SERVING"
    unknown = await _switchboard("health", "--address", address, "--service", "nope.Service")
    assert unknown.returncode == 1
    assert unknown.stdout.startswith("NOT_FOUND")

    taken = await _switchboard("serve", "--address", address)
    assert taken.returncode == 1
    assert f"cannot listen on {address}: Address already in use" in taken.stderr

    served.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.process.wait(), 60) == 0
    assert served.process.stderr is not None
    rest = (await served.process.stderr.read()).decode()
    records = [json.loads(line) for line in rest.splitlines() if line.startswith("{")]
    ours = [r["message"] for r in records if r["logger"] == "switchboard.server.app"]
    assert ours[-6:] == [
        "received SIGTERM: shutting down",
        "shutdown: health reports NOT_SERVING",
        "shutdown: refusing new calls; in-flight calls get 5.0 s",
        "shutdown: stopping the orchestrator; running tasks get 5.0 s",
        "shutdown: closing the store",
        "shutdown: done",
    ]


async def test_health_of_nothing_fails() -> None:
    # Port 1 on loopback: nothing listens there.
    result = await _switchboard("health", "--address", "127.0.0.1:1", "--timeout", "5")
    assert result.returncode == 1
    assert result.stdout.startswith("UNAVAILABLE")


async def test_migrate_creates_the_schema_and_is_repeatable(tmp_path: Path) -> None:
    database = tmp_path / "data" / "switchboard.db"
    url = f"sqlite+aiosqlite:///{database}"
    migrated = (await _switchboard("migrate", "--database-url", url)).check()
    assert "up to date" in migrated.stdout
    assert database.exists()
    again = (await _switchboard("migrate", "--database-url", url)).check()
    assert "up to date" in again.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve", "--config", "/no/such/file.yaml"], {}, "no such file: /no/such/file.yaml"),
        (["serve"], {"SWITCHBOARD_QUEUE__MAX_CONCURRENCY": "0"}, "queue.max_concurrency:"),
        (["serve"], {"SWITCHBOARD_DEFAULT_AGENT": "nobody"}, "default_agent: 'nobody'"),
        (["migrate"], {"SWITCHBOARD_LOG_LEVEL": "loud"}, "log_level: Input should be"),
    ],
)
async def test_bad_settings_exit_2_with_a_clear_message(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = await _switchboard(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("switchboard: ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("bogus: 1\n", "bogus: Extra inputs are not permitted"),
        ("server: [unclosed\n", "not valid YAML"),
        ("server:\n  grace_period: soon\n", "server.grace_period:"),
        # Agents that cannot run are refused at start, naming the field.
        ("agents:\n  - name: a\n    model: gpt-4\n", "agents[0].model: must be"),
        (
            "agents:\n  - name: a\n    handoffs: [ghost]\n",
            "agents[0].handoffs[0]: no agent named 'ghost'",
        ),
        ("agents:\n  - name: a\n    tools: [teleport]\n", "agents[0].tools[0]: unknown tool"),
        (
            "agents:\n  - name: a\n    tools: [web_search]\n",
            "agents[0].tools[0]: web_search needs",
        ),
        (
            "agents:\n  - name: a\n    model: 'compat:llama3'\n",
            "base_url is required for a compat: model",
        ),
        (
            "agents:\n  - name: a\n    model: 'openai:gpt-4.1-mini'\n"
            "    api_key_env: SWITCHBOARD_TEST_UNSET_KEY\n",
            "agents[0].api_key_env: SWITCHBOARD_TEST_UNSET_KEY is not set",
        ),
    ],
)
async def test_a_bad_settings_file_exits_2(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"default_agent: a\n{content}" if content.startswith("agents") else content)
    database = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = await _switchboard(
        "serve", "--config", str(config), "--database-url", database, "--address", "127.0.0.1:0"
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_bad_flag_is_a_usage_error() -> None:
    result = await _switchboard("serve", "--log-level", "loud")
    assert result.returncode == 2
    assert "invalid choice: 'loud'" in result.stderr
