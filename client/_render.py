"""How the ``swb`` CLI shows tasks, events and agents: rich for people, JSON for scripts.

Everything user-supplied (task input, output, error messages) goes into rich as
``Text``, never as markup, so brackets in a task's output print as they are.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from switchboard.v1 import agents_pb2, tasks_pb2

_STATE_STYLES: dict[int, str] = {
    tasks_pb2.TASK_STATE_QUEUED: "blue",
    tasks_pb2.TASK_STATE_RUNNING: "cyan",
    tasks_pb2.TASK_STATE_SUCCEEDED: "green",
    tasks_pb2.TASK_STATE_FAILED: "red",
    tasks_pb2.TASK_STATE_CANCELLED: "yellow",
    tasks_pb2.TASK_STATE_TIMED_OUT: "magenta",
}


_UNBOUNDED_WIDTH = 100_000
_MAX_INPUT_WIDTH = 80


def json_line(message: Message) -> None:
    """Write ``message`` as one line of proto3 JSON to stdout, flushed (for streams)."""
    sys.stdout.write(json_format.MessageToJson(message, indent=None) + "\n")
    sys.stdout.flush()


def _short_name(enum: EnumTypeWrapper, value: int, prefix: str) -> str:
    # A server newer than this client may send values it has no name for.
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def state_name(state: int) -> str:
    """``SUCCEEDED`` for ``TASK_STATE_SUCCEEDED``."""
    return _short_name(tasks_pb2.TaskState, state, "TASK_STATE_")


def state_text(state: int) -> Text:
    """The state's short name, coloured."""
    return Text(state_name(state), style=_STATE_STYLES.get(state, ""))


def task_state_text(task: tasks_pb2.Task) -> Text:
    """The task's state, coloured, marked ``(cached)`` when the result cache served it."""
    text = state_text(task.state)
    if task.cached:
        text.append(" (cached)", style="dim")
    return text


def status_text(status: status_pb2.Status) -> str:
    """``DEADLINE_EXCEEDED: task ran out of time`` for a google.rpc.Status."""
    return f"{_short_name(code_pb2.Code, status.code, '')}: {status.message}"


def usage_text(usage: tasks_pb2.TokenUsage) -> str:
    """Token counts, e.g. ``12 in / 30 out / 42 total``."""
    return f"{usage.input_tokens} in / {usage.output_tokens} out / {usage.total_tokens} total"


def _time(task: tasks_pb2.Task, field: str) -> str:
    if not task.HasField(field):
        return ""
    stamp: timestamp_pb2.Timestamp = getattr(task, field)
    return f"{stamp.ToDatetime(tzinfo=UTC).astimezone():%Y-%m-%d %H:%M:%S}"


def _duration(task: tasks_pb2.Task) -> str:
    if not (task.HasField("start_time") and task.HasField("end_time")):
        return ""
    seconds = (task.end_time.ToDatetime() - task.start_time.ToDatetime()).total_seconds()
    return f"{seconds:.2f} s"


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def task_details(task: tasks_pb2.Task, *, with_output: bool = True) -> RenderableType:
    """A task as field/value lines, then a blank line and its output."""
    rows: list[tuple[str, str | Text]] = [
        ("id", task.id),
        ("state", task_state_text(task)),
        ("agent", task.agent or task.spec.agent),
        ("priority", _short_name(tasks_pb2.TaskPriority, task.spec.priority, "TASK_PRIORITY_")),
        ("attempts", str(task.attempts)),
        ("created", _time(task, "create_time")),
        ("started", _time(task, "start_time")),
        ("ended", _time(task, "end_time")),
        ("duration", _duration(task)),
        ("tokens", usage_text(task.usage) if task.HasField("usage") else ""),
        ("request id", task.request_id),
        ("error", Text(status_text(task.error), style="red") if task.HasField("error") else ""),
        ("input", _one_line(task.spec.input, 200)),
    ]
    # Lines rather than a table: a table pads every row to its widest, which leaves
    # trailing blanks in piped output.
    shown = [(name, value) for name, value in rows if value]
    width = max((len(name) for name, _ in shown), default=0)
    lines = [Text.assemble((name.ljust(width), "bold"), "  ", value) for name, value in shown]
    grid = Group(*lines)
    if not (with_output and task.output_text):
        return grid
    return Group(grid, Text(""), Text(task.output_text))


def tasks_table(tasks: Iterable[tasks_pb2.Task], width: int) -> Table:
    """Tasks as a table, one row each, fitted to ``width`` columns.

    Ids are copied into the next command, so no column but the input ever gives way.
    """
    headers = ("ID", "STATE", "AGENT", "CREATED", "DURATION")
    rows = [
        (
            Text(task.id),
            task_state_text(task),
            Text(task.agent or task.spec.agent),
            Text(_time(task, "create_time")),
            Text(_duration(task)),
            task.spec.input,
        )
        for task in tasks
    ]
    widths = [
        max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(headers)
    ]
    # Every column is padded by one blank on each side.
    input_width = min(_MAX_INPUT_WIDTH, max(10, width - sum(widths) - 2 * (len(headers) + 1)))
    table = Table(box=None, header_style="bold")
    for header, column_width in zip(headers, widths, strict=True):
        table.add_column(header, no_wrap=True, min_width=column_width)
    table.add_column("INPUT", no_wrap=True, overflow="ellipsis")
    for *cells, text in rows:
        table.add_row(*cells, Text(_one_line(text, input_width)))
    return table


def agents_table(agents: Iterable[agents_pb2.Agent]) -> Table:
    """Agents as a table; the default agent's id is marked with ``*``."""
    table = Table(box=None, header_style="bold")
    for column in ("ID", "MODEL", "HEALTH", "CIRCUIT", "RUNNING", "QUEUED", "MAX", "TOOLS"):
        table.add_column(column)
    table.add_column("DESCRIPTION", overflow="fold")
    for agent in agents:
        healthy = agent.health == agents_pb2.AGENT_HEALTH_HEALTHY
        table.add_row(
            Text(agent.id + (" *" if agent.default else "")),
            Text(agent.model),
            Text(
                _short_name(agents_pb2.AgentHealth, agent.health, "AGENT_HEALTH_").lower(),
                style="green" if healthy else "red",
            ),
            Text(
                _short_name(agents_pb2.CircuitState, agent.circuit_state, "CIRCUIT_STATE_").lower()
            ),
            Text(str(agent.in_flight)),
            Text(str(agent.queued)),
            Text(str(agent.max_concurrency)),
            Text(", ".join(agent.tools)),
            Text(agent.description),
        )
    return table


def event_line(event: tasks_pb2.TaskEvent) -> str:
    """One event as one plain line: sequence, kind, what happened."""
    kind = event.WhichOneof("payload") or "unknown"
    if kind == "state_changed":
        change = event.state_changed
        detail = state_name(change.state)
        if change.previous_state:
            detail = f"{state_name(change.previous_state)} -> {detail}"
        if change.reason:
            detail += f" ({change.reason})"
        if change.HasField("error"):
            detail += f": {status_text(change.error)}"
        kind = "state"
    elif kind == "agent_changed":
        change_agent = event.agent_changed
        detail = change_agent.agent
        if change_agent.previous_agent:
            verb = "handoff from" if change_agent.handoff else "after"
            detail += f" ({verb} {change_agent.previous_agent})"
        kind = "agent"
    elif kind == "output_delta":
        detail = json.dumps(event.output_delta.text, ensure_ascii=False)
        kind = "output"
    elif kind == "tool_call":
        call = event.tool_call
        detail = f"{call.name}({call.arguments_json}) [{call.call_id}]"
    elif kind == "tool_result":
        result = event.tool_result
        failed = " (error)" if result.is_error else ""
        detail = f"[{result.call_id}]{failed} {json.dumps(result.output, ensure_ascii=False)}"
    elif kind == "usage":
        detail = usage_text(event.usage.usage)
    elif kind == "log":
        detail = f"{event.log.level}: {event.log.message}"
    else:
        detail = ""
    return f"{event.sequence:>4}  {kind:<11} {detail}".rstrip()


class WatchView:
    """The live picture of a task being watched: state, agent, output so far."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.state: int = tasks_pb2.TASK_STATE_UNSPECIFIED
        self.agent = ""
        self.activity = ""
        self.error = ""
        self._output: list[str] = []
        self._attempt = 0

    def apply(self, event: tasks_pb2.TaskEvent) -> None:
        """Fold one event into the picture."""
        kind = event.WhichOneof("payload")
        if kind == "state_changed":
            self.state = event.state_changed.state
            if event.state_changed.HasField("error"):
                self.error = status_text(event.state_changed.error)
        elif kind == "agent_changed":
            self.agent = event.agent_changed.agent
        elif kind == "output_delta":
            delta = event.output_delta
            if delta.attempt > self._attempt:  # a retry starts the output over
                self._attempt = delta.attempt
                self._output.clear()
            self._output.append(delta.text)
        elif kind in ("tool_call", "tool_result", "log"):
            self.activity = event_line(event).split(None, 1)[1]

    def __rich__(self) -> RenderableType:
        state = state_text(self.state) if self.state else Text("connecting", style="dim")
        title = Text.assemble(("task ", "bold"), self.task_id, "  ", state, "  ", self.agent)
        parts: list[RenderableType] = [Text("".join(self._output))]
        if self.activity:
            parts.append(Text(self.activity, style="dim"))
        if self.error:
            parts.append(Text(self.error, style="red"))
        return Panel(Group(*parts), title=title, title_align="left")


def plain_console() -> Console:
    """The stdout console: no markup or highlighting guessed into our text.

    Off a terminal there is no screen width to respect: lines are not wrapped or
    cut at 80 columns, so ids and output reach pipes and files intact.
    """
    console = Console(highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console.width = _UNBOUNDED_WIDTH
    return console
