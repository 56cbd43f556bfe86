"""Fakes of the outside world that tests talk to over real sockets."""

from tests.fakes.openai_server import FakeOpenAI, RecordedRequest
from tests.fakes.openai_wire import Reply, ToolCall, failure, handoff, text, tool_call

__all__ = [
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "failure",
    "handoff",
    "text",
    "tool_call",
]
