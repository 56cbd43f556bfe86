"""Read one value off a server's Prometheus /metrics page (tests and the bench)."""

from __future__ import annotations

import asyncio
import urllib.request


async def metric_value(url: str, name: str) -> float | None:
    """The value of the unlabelled sample ``name`` at ``url``; None when absent or unreachable."""

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    try:
        text = await asyncio.to_thread(scrape)
    except OSError:
        return None
    for line in text.splitlines():
        sample, _, value = line.partition(" ")
        if sample == name:
            return float(value)
    return None
