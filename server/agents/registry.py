"""One runtime per configured agent, chosen by the agent's model string."""

from __future__ import annotations

from typing import TYPE_CHECKING

from switchboard.server.agents.echo import ECHO_MODEL, EchoRuntime
from switchboard.server.agents.runtime import AgentRuntime
from switchboard.server.config import Settings

if TYPE_CHECKING:
    from switchboard.server.agents.models import ModelRegistry


def build_runtimes(settings: Settings) -> dict[str, AgentRuntime]:
    """Map each configured agent's name to its runtime.

    ``echo`` gets an ``EchoRuntime``; every other model string must resolve in the
    Agents SDK's ``ModelRegistry`` (``offline`` for now), shared by all SDK agents.
    Raises ``ValueError`` naming the agent's field for a model string nothing runs.
    """
    runtimes: dict[str, AgentRuntime] = {}
    models: ModelRegistry | None = None
    for index, agent in enumerate(settings.agents):
        if agent.model == ECHO_MODEL:
            runtimes[agent.name] = EchoRuntime()
            continue
        # Importing the Agents SDK takes over a second: only SDK-backed agents pay for it.
        from switchboard.server.agents.models import ModelRegistry  # noqa: PLC0415
        from switchboard.server.agents.sdk import SdkRuntime  # noqa: PLC0415

        if models is None:
            models = ModelRegistry()
        if not models.supports(agent.model):
            expected = _one_of([*models.names, ECHO_MODEL])
            raise ValueError(
                f"agents[{index}].model: unknown model {agent.model!r} (expected {expected})"
            )
        runtimes[agent.name] = SdkRuntime(agent, models)
    return runtimes


def _one_of(names: list[str]) -> str:
    quoted = [repr(name) for name in names]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
