"""build_tools: configured tool names to SDK tools, and every way a name can be wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from agents import FileSearchTool, FunctionTool, WebSearchTool

from switchboard.server.agents.tools import build_tools
from switchboard.server.agents.tools.imports import load_function
from switchboard.server.config import ToolsConfig
from tests.agents import sample_tools

HOSTED = frozenset({"web_search", "file_search"})


def _build(
    *names: str, hosted: frozenset[str] = frozenset(), **config: object
) -> dict[str, object]:
    return dict(
        build_tools(names, ToolsConfig.model_validate(config), hosted, field="agents[3].tools")
    )


def test_builtins_are_function_tools_named_as_configured() -> None:
    tools = _build("calculator", "current_time", "http_fetch")

    assert list(tools) == ["calculator", "current_time", "http_fetch"]
    assert all(isinstance(tool, FunctionTool) for tool in tools.values())


def test_an_import_path_becomes_a_tool_named_after_the_function() -> None:
    tools = _build(
        "tests.agents.sample_tools:word_count", "tests.agents.sample_tools:Letters.count"
    )

    assert list(tools) == ["word_count", "count"]
    word_count = tools["word_count"]
    assert isinstance(word_count, FunctionTool)
    assert word_count.description == "Count the words in a text."
    schema = word_count.params_json_schema
    assert schema["required"] == ["text"]
    assert schema["properties"]["text"]["description"] == "The text whose words to count."


def test_load_function_returns_the_callable_itself() -> None:
    assert load_function("tests.agents.sample_tools:word_count") is sample_tools.word_count
    assert load_function("tests.agents.sample_tools:Letters.count") is sample_tools.Letters.count


def test_hosted_kinds_go_to_a_provider_that_hosts_them() -> None:
    tools = _build("web_search", "file_search", hosted=HOSTED, vector_store_ids=["vs_1"])

    assert isinstance(tools["web_search"], WebSearchTool)
    file_search = tools["file_search"]
    assert isinstance(file_search, FileSearchTool)
    assert file_search.vector_store_ids == ["vs_1"]


@pytest.mark.parametrize("hosted", [frozenset(), HOSTED], ids=["not-hosted", "no-vector-store"])
def test_file_search_is_local_without_a_hosted_one(tmp_path: Path, hosted: frozenset[str]) -> None:
    tools = _build("file_search", hosted=hosted, file_search_dir=tmp_path)

    assert isinstance(tools["file_search"], FunctionTool)
    assert tools["file_search"].name == "file_search"


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (
            ["calculator", "abacus"],
            "agents[3].tools[1]: unknown tool 'abacus' (expected one of calculator, "
            "current_time, http_fetch, web_search, file_search, or a function by import path "
            "'package.module:function')",
        ),
        (
            ["tests.agents.sample_tools.word_count"],
            "agents[3].tools[0]: unknown tool 'tests.agents.sample_tools.word_count' (expected",
        ),
        (
            ["tests.agents.no_such_module:word_count"],
            "agents[3].tools[0]: cannot import module 'tests.agents.no_such_module': "
            "No module named 'tests.agents.no_such_module'",
        ),
        (
            ["tests.agents.broken_tools:anything"],
            "agents[3].tools[0]: importing module 'tests.agents.broken_tools' failed: "
            "RuntimeError: broken on purpose",
        ),
        (
            ["tests.agents.sample_tools:missing"],
            "agents[3].tools[0]: module 'tests.agents.sample_tools' has no attribute 'missing'",
        ),
        (
            ["tests.agents.sample_tools:Letters.missing"],
            "agents[3].tools[0]: module 'tests.agents.sample_tools' has no attribute "
            "'Letters.missing'",
        ),
        (
            ["tests.agents.sample_tools:NOT_CALLABLE"],
            "agents[3].tools[0]: 'tests.agents.sample_tools:NOT_CALLABLE' is not callable",
        ),
        (
            ["tests.agents.sample_tools:takes_a_loop"],
            "agents[3].tools[0]: cannot make a tool of tests.agents.sample_tools:takes_a_loop: "
            "Unable to generate pydantic-core schema",
        ),
        ([":word_count"], "agents[3].tools[0]: ':word_count' is not an import path"),
        (["tests.agents.sample_tools:"], "agents[3].tools[0]: 'tests.agents.sample_tools:' is not"),
        (
            ["calculator", "current_time", "calculator"],
            "agents[3].tools[2]: a tool named 'calculator' is already configured",
        ),
        (
            ["tests.agents.sample_tools:word_count", "tests.agents.sample_tools:word_count"],
            "agents[3].tools[1]: a tool named 'word_count' is already configured",
        ),
        (
            ["web_search"],
            "agents[3].tools[0]: web_search needs a provider that hosts it (an openai: model)",
        ),
        (
            ["file_search"],
            "agents[3].tools[0]: file_search needs tools.file_search_dir (a local directory "
            "to search), or tools.vector_store_ids with a provider that hosts it "
            "(an openai: model)",
        ),
    ],
)
def test_a_name_that_cannot_be_served_is_refused_with_its_field_path(
    names: list[str], error: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}"):
        _build(*names)


def test_file_search_refuses_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    error = f"agents[3].tools[0]: file_search: tools.file_search_dir is not a directory: {missing}"
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        _build("file_search", file_search_dir=missing)
