"""The echo runtime: the input back, one delta, no usage, and no Agents SDK."""

from __future__ import annotations

import subprocess
import sys

from switchboard.server.agents import AgentOutcome, AgentRun, EchoRuntime
from switchboard.server.domain import OutputDelta, ToolKind, ToolRef
from tests.agents.conftest import Recorder


async def test_returns_the_input_as_one_delta_and_reports_no_usage(recorder: Recorder) -> None:
    text = "  spaces, newlines\nand ünïcode stay as they are  "
    run = AgentRun(task_id="t-1", agent="echo", input=text, instructions="ignored")

    outcome = await EchoRuntime().run(run, recorder)

    assert outcome == AgentOutcome(output_text=text, agent="echo")
    assert recorder.payloads == [OutputDelta(text)]


async def test_ignores_tools(recorder: Recorder) -> None:
    run = AgentRun(task_id="t-1", agent="bench", input="x", tools=(ToolRef(ToolKind.WEB_SEARCH),))

    assert await EchoRuntime().run(run, recorder) == AgentOutcome("x", "bench")


def test_importing_the_echo_runtime_does_not_load_the_agents_sdk() -> None:
    probe = (
        "import sys\n"
        "import switchboard.server.agents.echo\n"
        "from switchboard.server.agents import EchoRuntime, build_runtimes\n"
        "print(sorted(m for m in sys.modules if m == 'agents' or m.startswith('agents.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"
