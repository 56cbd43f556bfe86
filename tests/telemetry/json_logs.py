"""Capturing log records as the server writes them: JSON lines, through ``JsonFormatter``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from switchboard.server.telemetry import JsonFormatter

JsonLines = Callable[[], list[dict[str, Any]]]


@contextlib.contextmanager
def json_lines() -> Iterator[JsonLines]:
    """Every record logged at INFO or above, inside; call the result to read them so far."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
