"""AgentService: the configured agents and their live status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from switchboard.server.api.resources import agent_to_proto
from switchboard.server.orchestrator import Orchestrator
from switchboard.v1 import agents_pb2, agents_pb2_grpc

if TYPE_CHECKING:
    import grpc

    Context = grpc.aio.ServicerContext[Any, Any]


class AgentServicer(agents_pb2_grpc.AgentServiceServicer):
    """``switchboard.v1.AgentService`` on top of an orchestrator."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator

    async def ListAgents(  # noqa: N802 - the RPC's name
        self, request: agents_pb2.ListAgentsRequest, context: Context
    ) -> agents_pb2.ListAgentsResponse:
        """Every agent, the default first."""
        agents = self._orchestrator.agents()
        return agents_pb2.ListAgentsResponse(agents=[agent_to_proto(agent) for agent in agents])

    async def GetAgent(  # noqa: N802 - the RPC's name
        self, request: agents_pb2.GetAgentRequest, context: Context
    ) -> agents_pb2.GetAgentResponse:
        """One agent by id."""
        agent = self._orchestrator.agent(request.agent_id)
        return agents_pb2.GetAgentResponse(agent=agent_to_proto(agent))
