"""One of every kind of event payload, with the awkward values worth round-tripping."""

from __future__ import annotations

from switchboard.server.domain import (
    AgentChanged,
    EventPayload,
    LogRecord,
    OutputDelta,
    StateChanged,
    TaskError,
    TaskState,
    TokenUsage,
    ToolCalled,
    ToolReturned,
    UsageReported,
)

EVERY_PAYLOAD: list[EventPayload] = [
    StateChanged(TaskState.QUEUED),
    StateChanged(TaskState.RUNNING, previous=TaskState.QUEUED, reason="picked up"),
    StateChanged(
        TaskState.FAILED,
        previous=TaskState.RUNNING,
        reason="agent failed",
        error=TaskError(code="UNAVAILABLE", message="model down", reason="AGENT_UNAVAILABLE"),
    ),
    AgentChanged(agent="offline"),
    AgentChanged(agent="writer", previous="triage", handoff=True),
    OutputDelta(text='héllo, wörld 👋\nsecond line\t"quoted"'),
    OutputDelta(text=""),
    ToolCalled(call_id="call-1", name="get_weather", arguments_json='{"city": "Zürich"}'),
    ToolReturned(call_id="call-1", output="sunny"),
    ToolReturned(call_id="call-2", output="boom", is_error=True),
    UsageReported(TokenUsage(input_tokens=12, output_tokens=34, total_tokens=46)),
    LogRecord(level="WARNING", message="retrying"),
]
