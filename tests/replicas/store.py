"""What the store holds, read with plain SQL, and the checks every replica test makes.

The tests judge the replicas by the database (``tasks`` and ``task_events``), not by
what a client was told: the rows are read here with asyncpg, independently of the
server's own repository code. Events from a WatchTask stream and rows of
``task_events`` both become :class:`Step` values, so the two can be compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from switchboard.v1 import tasks_pb2
from tests.conftest import asyncpg_dsn

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})

# The WatchTask payload fields and the kinds the store writes for them.
_WIRE_KINDS = {
    "state_changed": "state_changed",
    "agent_changed": "agent_changed",
    "output_delta": "output_delta",
    "tool_call": "tool_called",
    "tool_result": "tool_returned",
    "usage": "usage_reported",
    "log": "log",
}


@dataclass(frozen=True)
class Step:
    """One event as both sides can tell it: sequence, kind, and what it says."""

    sequence: int
    kind: str
    detail: tuple[Any, ...]

    @property
    def state(self) -> str | None:
        """The state a state change moved to (``succeeded``...), else None."""
        return str(self.detail[0]) if self.kind == "state_changed" else None

    @property
    def terminal(self) -> bool:
        """True for the change to a terminal state."""
        return self.state in TERMINAL


def _state_name(state: int) -> str:
    return tasks_pb2.TaskState.Name(state).removeprefix("TASK_STATE_").lower()


def wire_step(event: tasks_pb2.TaskEvent) -> Step:
    """A WatchTask event as a :class:`Step`."""
    field = event.WhichOneof("payload")
    assert field is not None, f"event {event.sequence} has no payload"
    detail: tuple[Any, ...]
    if field == "state_changed":
        detail = (_state_name(event.state_changed.state),)
    elif field == "output_delta":
        detail = (event.output_delta.text, event.output_delta.attempt)
    elif field == "agent_changed":
        detail = (event.agent_changed.agent,)
    elif field == "tool_call":
        detail = (event.tool_call.name, event.tool_call.arguments_json)
    elif field == "tool_result":
        detail = (event.tool_result.output,)
    elif field == "usage":
        detail = (event.usage.usage.input_tokens, event.usage.usage.output_tokens)
    else:
        detail = (event.log.level, event.log.message)
    return Step(event.sequence, _WIRE_KINDS[field], detail)


def stored_step(sequence: int, kind: str, body: dict[str, Any]) -> Step:
    """A ``task_events`` row as a :class:`Step`."""
    detail: tuple[Any, ...]
    if kind == "state_changed":
        detail = (body["state"],)
    elif kind == "output_delta":
        detail = (body["text"], body.get("attempt", 1))
    elif kind == "agent_changed":
        detail = (body["agent"],)
    elif kind == "tool_called":
        detail = (body["name"], body["arguments_json"])
    elif kind == "tool_returned":
        detail = (body["output"],)
    elif kind == "usage_reported":
        detail = (body["input_tokens"], body["output_tokens"])
    elif kind == "log":
        detail = (body["level"], body["message"])
    else:
        raise AssertionError(f"unknown stored event kind {kind!r}")
    return Step(sequence, kind, detail)


@dataclass(frozen=True)
class TaskRow:
    """The columns of a ``tasks`` row the tests judge."""

    id: str
    state: str
    attempts: int
    output_text: str
    last_sequence: int
    request_id: str | None
    agent: str


class Store:
    """Reads a replica cluster's database (``postgresql+asyncpg://`` URL)."""

    def __init__(self, url: str) -> None:
        self._dsn = asyncpg_dsn(url)

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        try:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows
        finally:
            await connection.close()

    async def task(self, task_id: str) -> TaskRow:
        """The task's row; AssertionError when there is none."""
        rows = await self.tasks([task_id])
        assert rows, f"task {task_id} is not in the store"
        return rows[0]

    _TASKS = (
        "SELECT id, state, attempts, output_text, last_sequence, request_id, agent "
        "FROM tasks {} ORDER BY create_time, id"
    )

    async def tasks(self, ids: Iterable[str]) -> list[TaskRow]:
        """The rows of ``ids`` (those that exist), oldest first."""
        rows = await self._fetch(self._TASKS.format("WHERE id = ANY($1::text[])"), list(ids))
        return [TaskRow(**dict(row)) for row in rows]

    async def tasks_with_request_id(self, request_id: str) -> list[TaskRow]:
        """Every task created with ``request_id`` (any owner)."""
        rows = await self._fetch(self._TASKS.format("WHERE request_id = $1"), request_id)
        return [TaskRow(**dict(row)) for row in rows]

    async def tasks_with_input_prefix(self, prefix: str) -> list[TaskRow]:
        """Every task whose input starts with ``prefix``."""
        rows = await self._fetch(self._TASKS.format("WHERE starts_with(input, $1)"), prefix)
        return [TaskRow(**dict(row)) for row in rows]

    async def steps(self, task_id: str) -> list[Step]:
        """The task's stored events, in sequence order."""
        rows = await self._fetch(
            "SELECT sequence, kind, body FROM task_events WHERE task_id = $1 ORDER BY sequence",
            task_id,
        )
        return [stored_step(row["sequence"], row["kind"], _json(row["body"])) for row in rows]

    async def steps_of(self, ids: Iterable[str]) -> dict[str, list[Step]]:
        """The stored events of every task in ``ids``, each in sequence order."""
        rows = await self._fetch(
            "SELECT task_id, sequence, kind, body FROM task_events "
            "WHERE task_id = ANY($1::text[]) ORDER BY task_id, sequence",
            list(ids),
        )
        found: dict[str, list[Step]] = {}
        for row in rows:
            step = stored_step(row["sequence"], row["kind"], _json(row["body"]))
            found.setdefault(row["task_id"], []).append(step)
        return found


def _json(value: Any) -> dict[str, Any]:
    # sa.JSON is a ``json`` column on PostgreSQL: asyncpg hands it over as text.
    decoded = json.loads(value) if isinstance(value, str) else value
    assert isinstance(decoded, dict), f"an event body is not an object: {value!r}"
    return decoded


def assert_one_life(steps: Sequence[Step], final: str) -> None:
    """Sequences 1..n with no hole or repeat; QUEUED first; one terminal state, ``final``, last."""
    sequences = [step.sequence for step in steps]
    assert sequences == list(range(1, len(steps) + 1)), f"sequences are not 1..n: {sequences}"
    assert steps[0].state == "queued", steps[0]
    terminal = [step for step in steps if step.terminal]
    assert len(terminal) == 1, f"terminal states: {terminal}"
    assert steps[-1] is terminal[0], f"events after the terminal one: {steps}"
    assert terminal[0].state == final, terminal[0]


def output_of_last_attempt(steps: Sequence[Step]) -> str:
    """The text the last attempt's output deltas add up to."""
    deltas = [step.detail for step in steps if step.kind == "output_delta"]
    if not deltas:
        return ""
    last = max(attempt for _, attempt in deltas)
    return "".join(text for text, attempt in deltas if attempt == last)


def states(steps: Sequence[Step]) -> list[str]:
    """The states the task went through, in order."""
    return [step.state for step in steps if step.state is not None]
