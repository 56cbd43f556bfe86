"""The ``current_time`` built-in: the time now, in UTC or an IANA time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def current_time(timezone: str | None = None) -> str:
    """The current date and time as ISO-8601, e.g. 2025-01-31T14:05:09+00:00.

    Args:
        timezone: An IANA time zone such as "Europe/Paris"; UTC when omitted.

    """
    if not timezone:
        return datetime.now(UTC).isoformat(timespec="seconds")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not even a key ("../x")
        raise ValueError(f"unknown time zone {timezone!r}") from None
    return datetime.now(zone).isoformat(timespec="seconds")
