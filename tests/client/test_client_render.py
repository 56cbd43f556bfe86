"""What ``swb`` prints for a task: the cached mark in the details and in the table."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType

from switchboard.client import _render
from switchboard.v1 import tasks_pb2


def _printed(renderable: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None, highlight=False)
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def _task(*, cached: bool) -> tasks_pb2.Task:
    return tasks_pb2.Task(
        id="t-1",
        spec=tasks_pb2.TaskSpec(input="hi"),
        state=tasks_pb2.TASK_STATE_SUCCEEDED,
        cached=cached,
    )


def test_a_cached_task_says_so() -> None:
    task = _task(cached=True)
    assert "SUCCEEDED (cached)" in _printed(_render.task_details(task))
    assert "SUCCEEDED (cached)" in _printed(_render.tasks_table([task], 200))


def test_a_task_that_ran_has_no_mark() -> None:
    task = _task(cached=False)
    assert "cached" not in _printed(_render.task_details(task))
    assert "cached" not in _printed(_render.tasks_table([task], 200))
