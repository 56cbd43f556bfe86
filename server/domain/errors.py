"""The service's error model: domain errors that map to one gRPC status each.

Raised anywhere below the API; the errors interceptor turns them into
``google.rpc.Status`` with details. Nothing here knows gRPC: ``code`` is the
status code's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

ERROR_DOMAIN = "switchboard.dev"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request (``field`` is a path like ``task.input``)."""

    field: str
    description: str


class SwitchboardError(Exception):
    """Base of every error that reaches clients with a specific status."""

    code = "INTERNAL"
    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    @property
    def metadata(self) -> dict[str, str]:
        """Extra key/values for the ErrorInfo detail."""
        return {}


class InvalidArgument(SwitchboardError):
    """The request is malformed; ``violations`` names every bad field."""

    code = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], message: str = "") -> None:
        first = violations[0] if violations else None
        summary = f"{first.field}: {first.description}" if first else "invalid request"
        if len(violations) > 1:
            summary += f" (and {len(violations) - 1} more)"
        super().__init__(message or summary)
        self.violations = violations


class NotFound(SwitchboardError):
    """The named resource does not exist (or is not the caller's)."""

    code = "NOT_FOUND"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found", reason=f"{kind.upper()}_NOT_FOUND")
        self.kind = kind
        self.name = name

    @property
    def metadata(self) -> dict[str, str]:
        """The kind and name of what was not found."""
        return {"kind": self.kind, "name": self.name[:128]}


class FailedPrecondition(SwitchboardError):
    """The request is valid but the system is not in a state to do it."""

    code = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class Unauthenticated(SwitchboardError):
    """The call carries no valid credentials."""

    code = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"


class PermissionDenied(SwitchboardError):
    """The caller is known but may not do this."""

    code = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class Unavailable(SwitchboardError):
    """The service (or a part of it) cannot take the request right now; retry later."""

    code = "UNAVAILABLE"
    reason = "UNAVAILABLE"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class ResourceExhausted(Unavailable):
    """A limit was hit (queue full, rate limit); ``retry_after`` says when to retry."""

    code = "RESOURCE_EXHAUSTED"
    reason = "RESOURCE_EXHAUSTED"
