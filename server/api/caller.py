"""Who is calling: the one place the API derives task ownership from a call."""

from __future__ import annotations

from switchboard.server.auth import current_caller


def owner() -> str:
    """The owner of the tasks this call creates (empty when authentication is off)."""
    caller = current_caller.get()
    return caller.owner if caller is not None else ""


def visible_owner() -> str | None:
    """Whose tasks this call may see: its own, or everyone's (None) for an admin."""
    caller = current_caller.get()
    if caller is None:
        return ""
    return None if caller.admin else caller.owner
