"""An agent's configured tool names to the SDK tools that serve them.

A name is a built-in (``calculator``, ``current_time``, ``http_fetch``), a hosted kind
(``web_search``, ``file_search``) or a function by import path
(``package.module:function``). Each SDK tool is keyed by the name a task uses to ask
for it: the function's name for function tools, the kind for the hosted ones.

``web_search`` needs a provider that hosts it (the Responses API of an ``openai:``
model). ``file_search`` is the hosted one when the provider hosts it and
``tools.vector_store_ids`` is set; otherwise the local search over
``tools.file_search_dir``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agents import FileSearchTool, Tool, WebSearchTool, function_tool

from switchboard.server.agents.tools.calculator import calculator
from switchboard.server.agents.tools.clock import current_time
from switchboard.server.agents.tools.failures import report_failure
from switchboard.server.agents.tools.file_search import file_search_tool
from switchboard.server.agents.tools.http_fetch import http_fetch_tool
from switchboard.server.agents.tools.imports import load_function
from switchboard.server.config import ToolsConfig
from switchboard.server.domain import ToolKind

# The hosted kinds a task may ask for (ToolKind), and the names they are configured by.
WEB_SEARCH = ToolKind.WEB_SEARCH.value
FILE_SEARCH = ToolKind.FILE_SEARCH.value

_BUILTINS: Mapping[str, Callable[[ToolsConfig], Callable[..., Any]]] = {
    "calculator": lambda _config: calculator,
    "current_time": lambda _config: current_time,
    "http_fetch": http_fetch_tool,
}


def build_tools(
    names: Sequence[str], config: ToolsConfig, hosted: frozenset[str], *, field: str
) -> dict[str, Tool]:
    """The SDK tools for ``names``, keyed by the name a task asks for each by.

    ``hosted`` are the kinds the agent's provider hosts. ``field`` is where ``names``
    sit in the configuration (``agents[2].tools``): a name that cannot be served raises
    ``ValueError`` starting with its path, e.g. ``agents[2].tools[1]: ...``.
    """
    tools: dict[str, Tool] = {}
    for position, name in enumerate(names):
        try:
            tool = _tool(name, config, hosted)
            if tool.name in tools:
                raise ValueError(f"a tool named {tool.name!r} is already configured")
        except ValueError as exc:
            raise ValueError(f"{field}[{position}]: {exc}") from None
        tools[tool.name] = tool
    return tools


def _tool(name: str, config: ToolsConfig, hosted: frozenset[str]) -> Tool:
    if name == WEB_SEARCH:
        if WEB_SEARCH not in hosted:
            raise ValueError("web_search needs a provider that hosts it (an openai: model)")
        return WebSearchTool()
    if name == FILE_SEARCH:
        return _file_search(config, hosted)
    builtin = _BUILTINS.get(name)
    if builtin is not None:
        return _function_tool(builtin(config))
    if ":" in name:
        return _function_tool(load_function(name))
    expected = ", ".join([*_BUILTINS, WEB_SEARCH, FILE_SEARCH])
    raise ValueError(
        f"unknown tool {name!r} (expected one of {expected}, "
        "or a function by import path 'package.module:function')"
    )


def _file_search(config: ToolsConfig, hosted: frozenset[str]) -> Tool:
    if FILE_SEARCH in hosted and config.vector_store_ids:
        return FileSearchTool(vector_store_ids=list(config.vector_store_ids))
    directory = config.file_search_dir
    if directory is None:
        raise ValueError(
            "file_search needs tools.file_search_dir (a local directory to search), "
            "or tools.vector_store_ids with a provider that hosts it (an openai: model)"
        )
    if not directory.is_dir():
        raise ValueError(f"file_search: tools.file_search_dir is not a directory: {directory}")
    return _function_tool(file_search_tool(directory))


def _function_tool(function: Callable[..., Any]) -> Tool:
    try:
        return function_tool(function, failure_error_function=report_failure)
    except Exception as exc:  # e.g. a parameter that has no JSON schema
        reason = str(exc).strip().partition("\n")[0]
        raise ValueError(f"cannot make a tool of {_name(function)}: {reason}") from None


def _name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None)
    return f"{module}:{name}" if module and name else repr(function)
