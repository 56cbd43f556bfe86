"""Domain values as the contract's messages: tasks, their events, agents."""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from google.protobuf import timestamp_pb2
from google.rpc import status_pb2

from switchboard.server.api.enums import (
    CIRCUIT_STATE_NUMBERS,
    PRIORITY_NUMBERS,
    STATE_NUMBERS,
    TOOL_TYPE_NUMBERS,
)
from switchboard.server.api.status import rich_status
from switchboard.server.domain import (
    AgentChanged,
    LogRecord,
    OutputDelta,
    StateChanged,
    Task,
    TaskError,
    TaskEvent,
    TaskSpec,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)
from switchboard.server.orchestrator.status import AgentStatus
from switchboard.v1 import agents_pb2, tasks_pb2


def spec_to_proto(spec: TaskSpec) -> tasks_pb2.TaskSpec:
    """A task spec as the contract carries it."""
    message = tasks_pb2.TaskSpec(
        input=spec.input,
        instructions=spec.instructions,
        agent=spec.agent,
        tools=[
            tasks_pb2.Tool(type=TOOL_TYPE_NUMBERS[tool.kind], name=tool.name) for tool in spec.tools
        ],
        metadata=spec.metadata,
        priority=PRIORITY_NUMBERS[spec.priority],
        no_cache=spec.no_cache,
    )
    if spec.timeout is not None:
        message.timeout.FromTimedelta(spec.timeout)
    return message


def error_to_status(error: TaskError) -> status_pb2.Status:
    """Why a task did not succeed, as a status with its ErrorInfo."""
    return rich_status(error.code, error.message, error.reason)


def task_to_proto(task: Task) -> tasks_pb2.Task:
    """A task and its outcome as the contract carries it."""
    return tasks_pb2.Task(
        id=task.id,
        spec=spec_to_proto(task.spec),
        state=STATE_NUMBERS[task.state],
        output_text=task.output_text,
        agent=task.agent,
        attempts=task.attempts,
        usage=_usage(task.usage),
        create_time=_timestamp(task.create_time),
        start_time=_timestamp(task.start_time),
        end_time=_timestamp(task.end_time),
        last_sequence=task.last_sequence,
        request_id=task.request_id,
        cached=task.cached,
        error=error_to_status(task.error) if task.error is not None else None,
    )


def event_to_proto(event: TaskEvent) -> tasks_pb2.TaskEvent:
    """One task event with its payload in the oneof."""
    message = tasks_pb2.TaskEvent(
        task_id=event.task_id, sequence=event.sequence, time=_timestamp(event.time)
    )
    payload = event.payload
    match payload:
        case StateChanged():
            message.state_changed.CopyFrom(
                tasks_pb2.StateChanged(
                    previous_state=STATE_NUMBERS[payload.previous]
                    if payload.previous is not None
                    else None,
                    state=STATE_NUMBERS[payload.state],
                    reason=payload.reason,
                    error=error_to_status(payload.error) if payload.error is not None else None,
                )
            )
        case AgentChanged():
            message.agent_changed.CopyFrom(
                tasks_pb2.AgentChanged(
                    agent=payload.agent, previous_agent=payload.previous, handoff=payload.handoff
                )
            )
        case OutputDelta():
            message.output_delta.CopyFrom(
                tasks_pb2.OutputDelta(text=payload.text, attempt=payload.attempt)
            )
        case ToolCalled():
            message.tool_call.CopyFrom(
                tasks_pb2.ToolCall(
                    call_id=payload.call_id,
                    name=payload.name,
                    arguments_json=payload.arguments_json,
                )
            )
        case ToolReturned():
            message.tool_result.CopyFrom(
                tasks_pb2.ToolResult(
                    call_id=payload.call_id, output=payload.output, is_error=payload.is_error
                )
            )
        case UsageReported():
            message.usage.CopyFrom(tasks_pb2.UsageReported(usage=_usage(payload.usage)))
        case LogRecord():
            message.log.CopyFrom(tasks_pb2.LogRecord(level=payload.level, message=payload.message))
        case _:
            assert_never(payload)
    return message


def agent_to_proto(agent: AgentStatus) -> agents_pb2.Agent:
    """An agent's configuration and live status."""
    return agents_pb2.Agent(
        id=agent.name,
        description=agent.description,
        model=agent.model,
        tools=agent.tools,
        handoffs=agent.handoffs,
        health=agents_pb2.AGENT_HEALTH_HEALTHY
        if agent.healthy
        else agents_pb2.AGENT_HEALTH_UNHEALTHY,
        circuit_state=CIRCUIT_STATE_NUMBERS.get(
            agent.circuit_state, agents_pb2.CIRCUIT_STATE_UNSPECIFIED
        ),
        in_flight=agent.in_flight,
        queued=agent.queued,
        max_concurrency=agent.max_concurrency,
        default=agent.default,
        outcomes=[
            agents_pb2.OutcomeCount(state=STATE_NUMBERS[state], count=count)
            for state, count in sorted(
                agent.outcomes.items(), key=lambda item: STATE_NUMBERS[item[0]]
            )
        ],
        usage=_usage(agent.usage),
        last_error=agent.last_error,
        last_error_time=_timestamp(agent.last_error_time),
    )


def _usage(usage: TokenUsage) -> tasks_pb2.TokenUsage:
    return tasks_pb2.TokenUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def _timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    # None leaves the field unset, which is how the contract says "has not happened".
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
