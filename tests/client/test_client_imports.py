"""The client stands alone: importing it, or running ``swb``, loads nothing of the server."""

from __future__ import annotations

import json
import sys

import switchboard.client
from tests.e2e.programs import run_process

from .conftest import SWB

# The server package and the heavy dependencies only its extra installs.
_SERVER_ONLY = (
    "switchboard.server",
    "pydantic",
    "sqlalchemy",
    "agents",
    "openai",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "yaml",
)

_PROBE = """
import json, sys
import switchboard.client, switchboard.client.cli
from switchboard.client.cli import main
try:
    main(["--help"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _server_modules(names: list[str]) -> list[str]:
    return [
        name
        for name in names
        if name.split(".")[0] in _SERVER_ONLY or name.startswith("switchboard.server")
    ]


async def test_importing_the_client_and_swb_help_load_no_server_module() -> None:
    done = (await run_process(sys.executable, "-c", _PROBE)).check()
    loaded = json.loads(done.stderr)
    assert "switchboard.client.async_client" in loaded
    assert _server_modules(loaded) == []
    assert "usage: swb" in done.stdout


async def test_the_swb_script_runs() -> None:
    done = (await run_process(SWB, "--help")).check()
    assert "usage: swb" in done.stdout
    for command in ("run", "submit", "watch", "get", "ls", "cancel", "agents"):
        assert command in done.stdout
    assert (await run_process(SWB, "--version")).check().stdout.startswith("swb ")


def test_public_names_are_sorted_and_exist() -> None:
    names = switchboard.client.__all__
    # isort style, as ruff's RUF022 wants it: CONSTANTS, then Classes, then functions.
    assert list(names) == sorted(names, key=lambda n: (not n.isupper(), n[0].islower(), n))
    assert all(hasattr(switchboard.client, name) for name in names)
