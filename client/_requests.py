"""Request building shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TypedDict, cast

from google.protobuf import duration_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from switchboard.v1 import tasks_pb2

#: A task priority: ``"low"``, ``"medium"``, ``"high"`` (any case, with or without
#: the ``TASK_PRIORITY_`` prefix) or a ``tasks_pb2.TaskPriority`` value.
Priority = str | int

#: A task state: ``"succeeded"``, ``"TASK_STATE_FAILED"``... or a ``tasks_pb2.TaskState``.
State = str | int

#: A tool: ``"web_search"`` or ``"file_search"`` for those hosted tools, any other
#: name for the agent's function tool of that name, or a ``tasks_pb2.Tool``.
ToolLike = str | tasks_pb2.Tool

#: One item of a batch: input text, a full spec, or a request (to set its request_id).
BatchItem = str | tasks_pb2.TaskSpec | tasks_pb2.ExecuteRequest

_HOSTED_TOOLS = {
    "web_search": tasks_pb2.TOOL_TYPE_WEB_SEARCH,
    "file_search": tasks_pb2.TOOL_TYPE_FILE_SEARCH,
}


class TaskOptions(TypedDict, total=False):
    """How to run a task; the keyword arguments of execute, submit and batch_execute.

    Each one set here overrides the same field of a ``TaskSpec`` passed as the task.
    """

    #: Extra instructions for the agent (TaskSpec.instructions).
    instructions: str
    #: The agent to run the task; unset selects the server's default (TaskSpec.agent).
    agent: str
    #: Tools the agent may use (TaskSpec.tools).
    tools: Sequence[ToolLike]
    #: Free-form labels kept with the task (TaskSpec.metadata).
    labels: Mapping[str, str]
    #: Queue priority (TaskSpec.priority).
    priority: Priority
    #: How long the task may run, in seconds or as a timedelta (TaskSpec.timeout).
    task_timeout: float | timedelta
    #: True to bypass the server's result cache: neither read nor write it (TaskSpec.no_cache).
    no_cache: bool


def enum_value(enum: EnumTypeWrapper, prefix: str, value: str | int) -> int:
    """Resolve ``value`` (a name, with or without ``prefix``) in ``enum``.

    Numbers pass through unchecked: the server validates them, and may know
    values newer than this client.

    Raises:
        ValueError: when ``value`` is a name of no member of the enum.

    """
    if not isinstance(value, str):
        return int(value)
    name = value.strip().upper()
    full = name if name.startswith(prefix) else prefix + name
    if full in enum.keys():  # noqa: SIM118 - an EnumTypeWrapper, not a dict
        return int(enum.Value(full))
    choices = ", ".join(enum_choices(enum, prefix))
    raise ValueError(f"{value!r} is not one of: {choices}")


def enum_choices(enum: EnumTypeWrapper, prefix: str) -> list[str]:
    """The lower-case short names of an enum's members, without UNSPECIFIED."""
    return [
        name.removeprefix(prefix).lower()
        for name in enum.keys()  # noqa: SIM118
        if not name.endswith("UNSPECIFIED")
    ]


def priority_value(value: Priority) -> tasks_pb2.TaskPriority:
    """Resolve a priority name or number (see :data:`Priority`)."""
    return cast(
        "tasks_pb2.TaskPriority", enum_value(tasks_pb2.TaskPriority, "TASK_PRIORITY_", value)
    )


def state_value(value: State) -> tasks_pb2.TaskState:
    """Resolve a state name or number (see :data:`State`)."""
    return cast("tasks_pb2.TaskState", enum_value(tasks_pb2.TaskState, "TASK_STATE_", value))


def task_spec(task: str | tasks_pb2.TaskSpec, options: TaskOptions) -> tasks_pb2.TaskSpec:
    """Build a TaskSpec from input text or a spec, with ``options`` applied on top.

    Raises:
        TypeError: for an option that does not exist (``**options`` would
            otherwise swallow a misspelt keyword argument silently).

    """
    unknown = options.keys() - TaskOptions.__optional_keys__
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    spec = tasks_pb2.TaskSpec()
    if isinstance(task, str):
        spec.input = task
    else:
        spec.CopyFrom(task)
    if "instructions" in options:
        spec.instructions = options["instructions"]
    if "agent" in options:
        spec.agent = options["agent"]
    if "tools" in options:
        del spec.tools[:]
        spec.tools.extend(_tool(tool) for tool in options["tools"])
    if "labels" in options:
        spec.metadata.update(options["labels"])
    if "priority" in options:
        spec.priority = priority_value(options["priority"])
    if "task_timeout" in options:
        spec.timeout.CopyFrom(duration(options["task_timeout"]))
    if "no_cache" in options:
        spec.no_cache = options["no_cache"]
    return spec


def duration(value: float | timedelta) -> duration_pb2.Duration:
    """A Duration of ``value`` seconds (or of the timedelta)."""
    result = duration_pb2.Duration()
    if isinstance(value, timedelta):
        result.FromTimedelta(value)
    else:
        result.FromNanoseconds(round(value * 1e9))
    return result


def execute_request(
    task: str | tasks_pb2.TaskSpec, request_id: str, options: TaskOptions
) -> tasks_pb2.ExecuteRequest:
    """An ExecuteRequest for one task."""
    return tasks_pb2.ExecuteRequest(task=task_spec(task, options), request_id=request_id)


def submit_request(
    task: str | tasks_pb2.TaskSpec, request_id: str, options: TaskOptions
) -> tasks_pb2.SubmitTaskRequest:
    """A SubmitTaskRequest for one task."""
    return tasks_pb2.SubmitTaskRequest(task=task_spec(task, options), request_id=request_id)


def batch_request(
    items: Iterable[BatchItem], options: TaskOptions
) -> tasks_pb2.BatchExecuteRequest:
    """A BatchExecuteRequest; ``options`` apply to every item."""
    requests = []
    for item in items:
        if isinstance(item, tasks_pb2.ExecuteRequest):
            requests.append(execute_request(item.task, item.request_id, options))
        else:
            requests.append(execute_request(item, "", options))
    return tasks_pb2.BatchExecuteRequest(requests=requests)


def list_request(
    state: State | None, agent: str, page_size: int, page_token: str
) -> tasks_pb2.ListTasksRequest:
    """A ListTasksRequest; ``state`` None lists every state."""
    return tasks_pb2.ListTasksRequest(
        state=state_value(state) if state is not None else tasks_pb2.TASK_STATE_UNSPECIFIED,
        agent=agent,
        page_size=page_size,
        page_token=page_token,
    )


def _tool(tool: ToolLike) -> tasks_pb2.Tool:
    if isinstance(tool, tasks_pb2.Tool):
        return tool
    hosted = _HOSTED_TOOLS.get(tool)
    if hosted is not None:
        return tasks_pb2.Tool(type=hosted)
    return tasks_pb2.Tool(type=tasks_pb2.TOOL_TYPE_FUNCTION, name=tool)
