"""The limits a task must respect (from the original design) and their checks.

Every check collects ``FieldViolation``s with the request's field paths, so one
INVALID_ARGUMENT lists everything wrong with a request (or a whole batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

from switchboard.server.agents import tool_name
from switchboard.server.config import Settings
from switchboard.server.domain import FieldViolation, InvalidArgument, TaskSpec, ToolKind

MAX_INPUT_CHARS = 10_000
MAX_INSTRUCTIONS_CHARS = 5_000
MAX_TOOLS = 10
MIN_TIMEOUT = timedelta(seconds=1)
MAX_TIMEOUT = timedelta(seconds=300)
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_REQUEST_ID_CHARS = 128
MAX_BATCH = 100
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def spec_violations(
    spec: TaskSpec, settings: Settings, offered: Mapping[str, frozenset[str]], path: str
) -> list[FieldViolation]:
    """Everything wrong with ``spec``, its fields named under ``path`` (e.g. ``task``).

    ``offered`` maps each agent to the tools it can serve; asking for another is an error.
    """
    out: list[FieldViolation] = []

    def bad(field: str, description: str) -> None:
        out.append(FieldViolation(f"{path}.{field}", description))

    if not spec.input.strip():
        bad("input", "must not be empty")
    elif len(spec.input) > MAX_INPUT_CHARS:
        bad("input", f"must be at most {MAX_INPUT_CHARS} characters (got {len(spec.input)})")
    if len(spec.instructions) > MAX_INSTRUCTIONS_CHARS:
        bad(
            "instructions",
            f"must be at most {MAX_INSTRUCTIONS_CHARS} characters (got {len(spec.instructions)})",
        )
    if spec.agent and settings.agent(spec.agent) is None:
        known = ", ".join(agent.name for agent in settings.agents)
        bad("agent", f"unknown agent {spec.agent[:64]!r} (known: {known})")
    if len(spec.tools) > MAX_TOOLS:
        bad("tools", f"must list at most {MAX_TOOLS} tools (got {len(spec.tools)})")
    agent = spec.agent or settings.default_agent
    tools = offered.get(agent, frozenset())
    for index, tool in enumerate(spec.tools[: MAX_TOOLS + 1]):
        if tool.kind is ToolKind.FUNCTION and not tool.name:
            bad(f"tools[{index}].name", "is required for a function tool")
        elif tool.kind is not ToolKind.FUNCTION and tool.name:
            bad(f"tools[{index}].name", f"must be empty for a {tool.kind.value} tool")
        elif agent in offered and (name := tool_name(tool)) not in tools:
            choice = ", ".join(sorted(tools)) or "none"
            bad(
                f"tools[{index}]", f"agent {agent!r} cannot use {name[:64]!r} (it offers: {choice})"
            )
    if spec.timeout is not None and not MIN_TIMEOUT <= spec.timeout <= MAX_TIMEOUT:
        bad("timeout", "must be between 1s and 300s")
    out.extend(_metadata_violations(spec.metadata, f"{path}.metadata"))
    return out


def _metadata_violations(metadata: dict[str, str], path: str) -> list[FieldViolation]:
    if len(metadata) > MAX_METADATA_ENTRIES:
        return [FieldViolation(path, f"must have at most {MAX_METADATA_ENTRIES} entries")]
    out = []
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            out.append(FieldViolation(path, f"keys must be 1 to {MAX_METADATA_KEY_CHARS} chars"))
        if len(value) > MAX_METADATA_VALUE_CHARS:
            out.append(
                FieldViolation(
                    f"{path}[{key[:MAX_METADATA_KEY_CHARS]!r}]",
                    f"must be at most {MAX_METADATA_VALUE_CHARS} characters",
                )
            )
    return out


def request_id_violations(request_id: str, path: str) -> list[FieldViolation]:
    """Checks of an AIP-155 request id: printable, at most 128 characters."""
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        return [FieldViolation(path, f"must be at most {MAX_REQUEST_ID_CHARS} characters")]
    if not request_id.isprintable():
        return [FieldViolation(path, "must be printable text")]
    return []


def with_defaults(spec: TaskSpec, settings: Settings) -> TaskSpec:
    """``spec`` with its agent and timeout filled in from the configuration."""
    agent = settings.agent(spec.agent or settings.default_agent)
    if agent is None:  # spec_violations reported it; callers validate first
        raise InvalidArgument([FieldViolation("task.agent", "unknown agent")])
    return replace(spec, agent=agent.name, timeout=spec.timeout or agent.timeout)


def checked_page_size(page_size: int) -> int:
    """The page size to use for ``page_size`` (0 means the default)."""
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(
            [FieldViolation("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")]
        )
    return page_size or DEFAULT_PAGE_SIZE


def batch_violations(size: int) -> list[FieldViolation]:
    """Checks of a batch's size."""
    if not 1 <= size <= MAX_BATCH:
        return [FieldViolation("requests", f"must hold 1 to {MAX_BATCH} requests (got {size})")]
    return []


def raise_if_any(violations: Sequence[FieldViolation]) -> None:
    """Raise one InvalidArgument listing ``violations``, if there are any."""
    if violations:
        raise InvalidArgument(list(violations))
