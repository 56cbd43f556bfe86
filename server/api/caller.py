"""Who is calling: the one place the API derives a caller's identity from a call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc


def owner_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The identity that owns the tasks this call creates and may see.

    Empty while the service runs without authentication: every caller is the same
    owner. The auth interceptor will put the verified subject where this reads it.
    """
    del context  # read once authentication exists
    return ""
