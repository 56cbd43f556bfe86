"""Value types shared by the settings sections."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

LogLevel = Literal["debug", "info", "warning", "error"]


def _seconds(value: Any) -> Any:
    # A bare number is seconds, also as text (environment variables are text), as in YAML.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds)]
"""A duration: seconds as a number, or ISO 8601 (PT1M30S) or HH:MM:SS."""
