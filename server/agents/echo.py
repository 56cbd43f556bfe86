"""The ``echo`` runtime: returns the input unchanged and never touches a model.

It exists to measure the service's own overhead per task, so it does the least a
runtime can: one ``OutputDelta`` with the whole input, and no ``UsageReported`` (no
model was called, so there is no usage to report). It serves no tools and ignores
instructions. It must stay cheap to import: nothing here loads the Agents SDK.
"""

from __future__ import annotations

from switchboard.server.agents.runtime import AgentOutcome, AgentRun, Emit
from switchboard.server.domain import OutputDelta

ECHO_MODEL = "echo"


class EchoRuntime:
    """Answers every task with its input."""

    @property
    def tools(self) -> frozenset[str]:
        """None: the echo model calls no tools."""
        return frozenset()

    async def run(self, run: AgentRun, emit: Emit) -> AgentOutcome:
        """Emit the input as one delta and return it as the output."""
        await emit(OutputDelta(run.input))
        return AgentOutcome(output_text=run.input, agent=run.agent)

    async def aclose(self) -> None:
        """Nothing to release."""
