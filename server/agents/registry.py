"""One runtime per configured agent: the whole agent configuration checked and built.

``echo`` agents get an ``EchoRuntime``. Every other agent becomes an SDK ``Agent`` on
its own provider (``model_provider``), with its tools (``build_tools``) and its
handoffs, wired once every agent exists so handoffs may form cycles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from switchboard.server.agents.echo import ECHO_MODEL, EchoRuntime
from switchboard.server.agents.runtime import AgentRuntime
from switchboard.server.config import AgentConfig, Settings

if TYPE_CHECKING:
    from switchboard.server.agents.sdk import SdkRuntime


def build_runtimes(settings: Settings) -> dict[str, AgentRuntime]:
    """Map each configured agent's name to its runtime, in configuration order.

    Raises ``ValueError`` whose message starts with the path of the field at fault
    (``agents[2].tools[1]: ...``) when an agent cannot run as configured: an unknown
    tool or import path, a hosted tool its provider does not host, ``file_search`` with
    nothing to search, a missing API key, or ``echo`` with tools or handoffs (or as a
    handoff target).
    """
    echoes = {agent.name for agent in settings.agents if agent.model == ECHO_MODEL}
    for index, agent in enumerate(settings.agents):
        _check_echo(index, agent, echoes)
    others = [(i, agent) for i, agent in enumerate(settings.agents) if agent.name not in echoes]
    # Importing the Agents SDK takes over a second: only SDK-backed agents pay for it.
    built = _sdk_runtimes(settings, others) if others else {}
    return {agent.name: built.get(agent.name) or EchoRuntime() for agent in settings.agents}


def _check_echo(index: int, agent: AgentConfig, echoes: set[str]) -> None:
    if agent.name in echoes and agent.tools:
        raise ValueError(f"agents[{index}].tools: the echo model calls no tools")
    if agent.name in echoes and agent.handoffs:
        raise ValueError(f"agents[{index}].handoffs: the echo model hands nothing off")
    for position, target in enumerate(agent.handoffs):
        if target in echoes:
            raise ValueError(
                f"agents[{index}].handoffs[{position}]: agent {target!r} runs the echo "
                "model, which cannot take a handoff"
            )


def _sdk_runtimes(
    settings: Settings, configs: Sequence[tuple[int, AgentConfig]]
) -> dict[str, SdkRuntime]:
    from agents import Agent  # noqa: PLC0415

    from switchboard.server.agents.providers import ProviderHandle, model_provider  # noqa: PLC0415
    from switchboard.server.agents.sdk import SdkRuntime  # noqa: PLC0415
    from switchboard.server.agents.tools import build_tools  # noqa: PLC0415

    providers: dict[str, ProviderHandle] = {}
    agents: dict[str, Agent[Any]] = {}
    for index, config in configs:
        provider = providers[config.name] = model_provider(config, index)
        tools = build_tools(
            config.tools, settings.tools, provider.hosted_tools, field=f"agents[{index}].tools"
        )
        agents[config.name] = Agent[Any](
            name=config.name,
            handoff_description=config.description or None,
            instructions=config.instructions or None,
            # A Model object, not a name: a handoff target runs on its own provider,
            # whatever provider the run started with.
            model=provider.get_model(None),
            model_settings=provider.model_settings,
            tools=list(tools.values()),
        )
    for _index, config in configs:
        agents[config.name].handoffs = [agents[target] for target in config.handoffs]
    return {name: SdkRuntime(agent, providers[name]) for name, agent in agents.items()}
