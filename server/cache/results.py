"""What the result cache holds, the interface every cache offers, and its wire format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from switchboard.server.domain import EventPayload, StateChanged, UsageReported
from switchboard.server.domain.serialize import payload_from_json, payload_to_json

# Bumped whenever the encoding below changes: an entry of another version is a miss.
_FORMAT_VERSION = 1


def replayable(payload: EventPayload) -> bool:
    """True for the payloads a cached result replays.

    State changes belong to the task that is served from the cache, not to the run
    that filled it; usage is not replayed because a cached result costs no tokens.
    """
    return not isinstance(payload, StateChanged | UsageReported)


@dataclass(frozen=True, slots=True)
class CachedResult:
    """A finished run worth serving again: its output, its agent and its events.

    ``payloads`` are the run's replayable events in order (output deltas, tool
    calls and results, agent changes, logs); see :func:`replayable`.
    """

    output_text: str
    agent: str
    payloads: tuple[EventPayload, ...] = ()

    def __post_init__(self) -> None:
        refused = [type(p).__name__ for p in self.payloads if not replayable(p)]
        if refused:
            raise ValueError(f"a cached result replays no {', '.join(sorted(set(refused)))}")


@dataclass(slots=True)
class CacheStats:
    """Plain counters, for tests and (later) metrics."""

    hits: int = 0
    """Lookups that found a live entry."""
    misses: int = 0
    """Lookups that returned None: nothing there, expired, unreadable, or the backend failed."""
    errors: int = 0
    """Lookups and stores that failed (the backend did not answer, or sent garbage)."""


class ResultCache(Protocol):
    """A cache of task results by :func:`~switchboard.server.cache.cache_key`.

    A cache never fails the task that uses it: when its backend fails, ``get``
    misses and ``put`` drops the entry, and ``stats.errors`` counts it.
    """

    stats: CacheStats

    async def get(self, key: str) -> CachedResult | None:
        """The live entry under ``key``, or None."""
        ...

    async def put(self, key: str, result: CachedResult, ttl: timedelta) -> None:
        """Keep ``result`` under ``key`` for ``ttl``; a ttl of zero or less keeps nothing."""
        ...

    async def aclose(self) -> None:
        """Release the backend (connections); the cache is not used afterwards."""
        ...


def encode_result(result: CachedResult) -> bytes:
    """A cached result as UTF-8 JSON, with its payloads in the domain's JSON encoding."""
    events = []
    for payload in result.payloads:
        kind, body = payload_to_json(payload)
        events.append({"kind": kind, "body": body})
    document = {
        "version": _FORMAT_VERSION,
        "output_text": result.output_text,
        "agent": result.agent,
        "events": events,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_result(data: bytes | str) -> CachedResult:
    """The cached result :func:`encode_result` wrote; ValueError when it is not one."""
    try:
        document: Any = json.loads(data)
        if document["version"] != _FORMAT_VERSION:
            raise ValueError(f"format version {document['version']!r}")
        return CachedResult(
            output_text=_string(document["output_text"]),
            agent=_string(document["agent"]),
            payloads=tuple(
                payload_from_json(event["kind"], event["body"]) for event in document["events"]
            ),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a cached result: {error!r}") from error


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value
