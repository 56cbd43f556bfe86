"""Tools for SDK agents: built-ins, functions by import path, and the hosted kinds.

Importing this package loads the Agents SDK.
"""

from switchboard.server.agents.tools.catalog import build_tools
from switchboard.server.agents.tools.failures import FailedCalls

__all__ = ["FailedCalls", "build_tools"]
