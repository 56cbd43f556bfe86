"""The gRPC edge: servicers that turn messages into orchestrator calls and back."""

from switchboard.server.api.agents import AgentServicer
from switchboard.server.api.auth import AuthServicer
from switchboard.server.api.tasks import TaskServicer

__all__ = ["AgentServicer", "AuthServicer", "TaskServicer"]
