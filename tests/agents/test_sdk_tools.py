"""Tools through the real Agents SDK runner: the offline model calls them by directive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.testing import ScriptedModel, assistant_message

from switchboard.server.agents import AgentRun, AgentRuntime, build_runtimes
from switchboard.server.agents.offline import ANSWER_PREFIX
from switchboard.server.agents.tools import build_tools
from switchboard.server.config import AgentConfig, Settings, ToolsConfig
from switchboard.server.domain import (
    OutputDelta,
    TokenUsage,
    ToolCalled,
    ToolKind,
    ToolRef,
    ToolReturned,
    UsageReported,
)
from tests.agents.conftest import Recorder, runtime_on

_TOOLS = ["calculator", "current_time", "tests.agents.sample_tools:word_count"]


def _agent(names: list[str] = _TOOLS, **settings: Any) -> AgentRuntime:
    config = AgentConfig(name="helper", instructions="use tools", tools=names)
    return build_runtimes(Settings(agents=[config], default_agent="helper", **settings))["helper"]


def _run(text: str, *tools: ToolRef, instructions: str = "") -> AgentRun:
    return AgentRun("t-1", "helper", text, instructions=instructions, tools=tools)


def _words(text: str) -> int:
    return len(text.split())


async def test_the_model_calls_a_tool_and_answers_with_its_output(recorder: Recorder) -> None:
    message = 'What is 6 times 7?\n/tool calculator {"expression": "6 * 7"}'

    outcome = await _agent().run(_run(message), recorder)

    answer = f"{ANSWER_PREFIX} {message}\ncalculator returned: 42"
    assert outcome.output_text == answer
    assert outcome.agent == "helper"
    assert recorder.of(ToolCalled) == [
        ToolCalled("call_offline_1", "calculator", '{"expression": "6 * 7"}')
    ]
    assert recorder.of(ToolReturned) == [ToolReturned("call_offline_1", "42")]
    assert "".join(delta.text for delta in recorder.of(OutputDelta)) == answer
    # One usage per model turn, as the offline model counted it.
    first_in = _words("use tools") + _words(message)
    turns = [
        TokenUsage(first_in, 5, first_in + 5),
        TokenUsage(first_in + 1, _words(answer), first_in + 1 + _words(answer)),
    ]
    assert [event.usage for event in recorder.of(UsageReported)] == turns
    kinds = [type(payload).__name__ for payload in recorder.payloads]
    assert kinds[:3] == ["UsageReported", "ToolCalled", "ToolReturned"]
    assert kinds[3:] == ["OutputDelta"] * len(recorder.of(OutputDelta)) + ["UsageReported"]


async def test_a_function_by_import_path_runs_as_a_tool(recorder: Recorder) -> None:
    outcome = await _agent().run(_run('/tool word_count {"text": "one two three"}'), recorder)

    assert outcome.output_text.endswith("\nword_count returned: 3")
    assert recorder.of(ToolReturned) == [ToolReturned("call_offline_1", "3")]


async def test_a_failing_tool_is_reported_to_the_model_and_marked_an_error(
    recorder: Recorder,
) -> None:
    runtime = _agent([*_TOOLS, "tests.agents.sample_tools:explode"])
    message = '/tool calculator {"expression": "1 / 0"}\n/tool explode {"reason": "kaboom"}'

    outcome = await runtime.run(_run(message), recorder)

    assert recorder.of(ToolReturned) == [
        ToolReturned("call_offline_1", "error: division by zero", is_error=True),
        ToolReturned("call_offline_2", "error: RuntimeError: kaboom", is_error=True),
    ]
    assert outcome.output_text.endswith(
        "\ncalculator returned: error: division by zero"
        "\nexplode returned: error: RuntimeError: kaboom"
    )


async def test_malformed_arguments_are_a_tool_error_not_a_failed_task(recorder: Recorder) -> None:
    outcome = await _agent().run(_run("/tool calculator not json"), recorder)

    [returned] = recorder.of(ToolReturned)
    assert returned.is_error
    assert returned.output.startswith("error: ModelBehaviorError: Invalid JSON input")
    assert outcome.output_text.startswith(ANSWER_PREFIX)


async def test_a_task_listing_tools_gets_only_those(recorder: Recorder) -> None:
    runtime = _agent()
    message = '/tool current_time\n/tool word_count {"text": "a b"}'
    only_word_count = ToolRef(ToolKind.FUNCTION, "word_count")

    outcome = await runtime.run(_run(message, only_word_count), recorder)

    # current_time is not offered to this task: its directive is skipped.
    assert [call.name for call in recorder.of(ToolCalled)] == ["word_count"]
    assert outcome.output_text.endswith("\nword_count returned: 2")


async def test_a_task_listing_no_tools_gets_all_of_them(recorder: Recorder) -> None:
    await _agent().run(_run('/tool current_time\n/tool calculator {"expression": "1"}'), recorder)

    assert [call.name for call in recorder.of(ToolCalled)] == ["current_time", "calculator"]


async def test_the_model_is_offered_the_tools_of_the_task() -> None:
    tools = build_tools(_TOOLS, ToolsConfig(), frozenset(), field="tools")
    model = ScriptedModel([[assistant_message("a")]] * 3)
    runtime = runtime_on(model, tools=list(tools.values()), instructions="be kind")
    calculator = ToolRef(ToolKind.FUNCTION, "calculator")

    await runtime.run(_run("x", calculator), Recorder())
    await runtime.run(_run("x", calculator, instructions="and brief"), Recorder())
    await runtime.run(_run("x"), Recorder())

    assert [[tool.name for tool in call.tools] for call in model.calls] == [
        ["calculator"],
        ["calculator"],
        ["calculator", "current_time", "word_count"],
    ]
    assert [call.system_instructions for call in model.calls] == [
        "be kind",
        "be kind\n\nand brief",
        "be kind",
    ]


async def test_the_local_file_search_serves_a_file_search_task(
    tmp_path: Path, recorder: Recorder
) -> None:
    (tmp_path / "policy.txt").write_text("Refunds are paid within 14 days.\n")
    runtime = _agent(["file_search"], tools={"file_search_dir": tmp_path})

    assert runtime.tools == frozenset({"file_search"})
    run = _run('/tool file_search {"query": "refunds"}', ToolRef(ToolKind.FILE_SEARCH))
    outcome = await runtime.run(run, recorder)

    hit = "1. policy.txt (line 1, score 1): Refunds are paid within 14 days."
    assert recorder.of(ToolReturned) == [ToolReturned("call_offline_1", hit)]
    assert outcome.output_text.endswith(f"\nfile_search returned: {hit}")
