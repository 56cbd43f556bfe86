"""What the model sees when a tool fails, and how the run learns that it failed.

A failed call does not fail the task: the SDK hands the model ``error: ...`` as the
tool's output (our ``failure_error_function``), and the model carries on. The SDK's
output item does not say that the call failed, so the failure handler also notes the
call id in the run's context, a ``FailedCalls``, for ``ToolReturned(is_error=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents import RunContextWrapper
from agents.tool_context import ToolContext


@dataclass
class FailedCalls:
    """The context of one SDK run: the ids of its tool calls that failed."""

    ids: set[str] = field(default_factory=set)


def report_failure(context: RunContextWrapper[Any], error: Exception) -> str:
    """The tool output for a call that raised ``error``; notes the call as failed.

    ``ValueError`` is how tools refuse their input, so its message is enough; anything
    else is named by its type.
    """
    if isinstance(context, ToolContext) and isinstance(context.context, FailedCalls):
        context.context.ids.add(context.tool_call_id)
    detail = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
    return f"error: {detail}"
