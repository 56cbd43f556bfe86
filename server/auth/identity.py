"""The verified caller of the current RPC.

The auth interceptor sets ``current_caller`` for the duration of each call (the
handler runs in the same context); the API reads it. None means authentication is
off: every caller is the same anonymous owner.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

ADMIN_SCOPE = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller whose credentials were verified.

    ``owner`` owns the tasks the caller creates (the token's subject, or its tenant
    claim); ``scopes`` are its permissions.
    """

    subject: str
    owner: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def admin(self) -> bool:
        """True for callers that may see and cancel every owner's tasks."""
        return ADMIN_SCOPE in self.scopes


current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)
