"""Who is calling: verified identities and what they may do."""

from switchboard.server.auth.identity import Caller, current_caller

__all__ = ["Caller", "current_caller"]
