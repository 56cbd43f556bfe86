"""Queue, scheduling, running, cancelling and watching tasks. No gRPC, no SQL."""

from switchboard.server.orchestrator.observer import TaskObserver
from switchboard.server.orchestrator.service import NewTask, Orchestrator, TaskPage
from switchboard.server.orchestrator.status import AgentStatus, QueueStats

__all__ = ["AgentStatus", "NewTask", "Orchestrator", "QueueStats", "TaskObserver", "TaskPage"]
