"""Warnings about a failing dependency, logged at most once per interval.

A Redis that is down fails every call; logging each failure would bury the log.
The first failure is logged at once, later ones at most once per ``interval``,
each line saying how many failures it stands for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ThrottledWarning:
    """One kind of failure warning of one component."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._warned_at: float | None = None
        self._unwarned = 0

    def warn(self, message: str, *args: object) -> None:
        """Log ``message % args`` now, or count it if a warning went out recently."""
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < self._interval:
            self._unwarned += 1
            return
        self._logger.warning(
            f"{message} (%d more failures since the last warning)", *args, self._unwarned
        )
        self._warned_at = now
        self._unwarned = 0
