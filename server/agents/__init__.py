"""Agent runtimes: the seam the orchestrator runs tasks through, and what implements it.

The names backed by the Agents SDK (``OfflineModel``, ``ProviderHandle``, ``SdkRuntime``,
``bridge_sdk_tracing``, ``model_provider``) load on first use: importing the SDK takes
over a second, and the seam and the ``echo`` runtime must stay cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from switchboard.server.agents.echo import ECHO_MODEL, EchoRuntime
from switchboard.server.agents.registry import build_runtimes
from switchboard.server.agents.runtime import (
    AgentError,
    AgentOutcome,
    AgentRun,
    AgentRuntime,
    Emit,
    tool_name,
)

if TYPE_CHECKING:
    from switchboard.server.agents.offline import OfflineModel
    from switchboard.server.agents.providers import ProviderHandle, model_provider
    from switchboard.server.agents.sdk import SdkRuntime, bridge_sdk_tracing

_SDK_MODULES = {
    "OfflineModel": "offline",
    "ProviderHandle": "providers",
    "SdkRuntime": "sdk",
    "bridge_sdk_tracing": "sdk",
    "model_provider": "providers",
}

__all__ = [
    "ECHO_MODEL",
    "AgentError",
    "AgentOutcome",
    "AgentRun",
    "AgentRuntime",
    "EchoRuntime",
    "Emit",
    "OfflineModel",
    "ProviderHandle",
    "SdkRuntime",
    "bridge_sdk_tracing",
    "build_runtimes",
    "model_provider",
    "tool_name",
]


def __getattr__(name: str) -> object:
    """Import an SDK-backed name from its module on first use."""
    module = _SDK_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
