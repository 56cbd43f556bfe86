"""Task inputs and outputs reach the logs only when log_payloads is switched on."""

from __future__ import annotations

import logging

import pytest

from tests.orchestrator.conftest import HarnessFactory


@pytest.mark.parametrize("enabled", [False, True])
async def test_payloads_are_logged_only_when_asked(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture, enabled: bool
) -> None:
    harness = await make_harness(log_payloads=enabled)
    with caplog.at_level(logging.DEBUG):
        task = await harness.execute("a confidential question")
    logged = [vars(record) for record in caplog.records]
    inputs = [r for r in logged if r.get("input") == "a confidential question"]
    outputs = [r for r in logged if r.get("output") == task.output_text]
    assert (len(inputs), len(outputs)) == ((1, 1) if enabled else (0, 0))
    assert all("a confidential question" not in r["msg"] for r in logged)
