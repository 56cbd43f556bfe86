"""Which scope each RPC needs, and the methods anyone may call.

Scopes come from the token (``auth.scopes_claim``). ``admin`` grants every scope and
lets its holder see and cancel every owner's tasks. A served method missing from the
table needs ``admin``: a new RPC is closed until someone decides who may call it.
"""

from __future__ import annotations

from switchboard.server.auth.identity import ADMIN_SCOPE, Caller
from switchboard.server.domain import PermissionDenied

TASKS_READ = "tasks:read"
TASKS_WRITE = "tasks:write"
AGENTS_READ = "agents:read"

_TASKS = "/switchboard.v1.TaskService/"
_AGENTS = "/switchboard.v1.AgentService/"

SCOPES: dict[str, str] = {
    f"{_TASKS}Execute": TASKS_WRITE,
    f"{_TASKS}BatchExecute": TASKS_WRITE,
    f"{_TASKS}SubmitTask": TASKS_WRITE,
    f"{_TASKS}CancelTask": TASKS_WRITE,
    f"{_TASKS}GetTask": TASKS_READ,
    f"{_TASKS}ListTasks": TASKS_READ,
    f"{_TASKS}WatchTask": TASKS_READ,
    f"{_AGENTS}ListAgents": AGENTS_READ,
    f"{_AGENTS}GetAgent": AGENTS_READ,
}
"""The scope each method of the service needs."""

# Kubernetes probes carry no credentials, grpcurl must list and describe before it
# has any, and a user logs in to get a token in the first place.
_PUBLIC_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_PUBLIC_METHODS = frozenset({"/switchboard.v1.AuthService/Login"})


class MissingScope(PermissionDenied):
    """The caller's token lacks the scope a method needs."""

    reason = "MISSING_SCOPE"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this call needs the scope {scope!r}")
        self.scope = scope

    @property
    def metadata(self) -> dict[str, str]:
        """The scope the call needs."""
        return {"scope": self.scope}


def is_public(method: str) -> bool:
    """True for methods reachable without credentials (health, reflection, login)."""
    return method in _PUBLIC_METHODS or method.startswith(_PUBLIC_SERVICES)


def required_scope(method: str) -> str:
    """The scope ``method`` (``/package.Service/Method``) needs; ``admin`` if unlisted."""
    return SCOPES.get(method, ADMIN_SCOPE)


def authorize(caller: Caller, method: str) -> None:
    """Raise ``MissingScope`` unless ``caller`` may call ``method``."""
    scope = required_scope(method)
    if not (caller.admin or scope in caller.scopes):
        raise MissingScope(scope)
