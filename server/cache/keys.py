"""The result cache's key: what makes two tasks ask for the same answer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from switchboard.server.domain import ToolRef

# Bumped whenever the encoding below changes, so old entries are never matched.
_KEY_VERSION = 1


def cache_key(
    *, agent: str, model: str, instructions: str, input: str, tools: Sequence[ToolRef]
) -> str:
    """The hex SHA-256 of everything that decides a task's result.

    The fields are hashed as one JSON document with sorted keys, so no choice of
    field values can make two different requests encode alike (``("ab", "c")``
    and ``("a", "bc")`` differ). Tools are a set: their order and repeats do not
    change the key.
    """
    document = {
        "version": _KEY_VERSION,
        "agent": agent,
        "model": model,
        "instructions": instructions,
        "input": input,
        "tools": sorted({(tool.kind.value, tool.name) for tool in tools}),
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()
