"""The ``http_fetch`` built-in: GET a web page from a host on the allow-list.

Only ``http``/``https`` URLs whose host is on ``tools.http_allow`` are fetched (an entry
is an exact host name, or ``*.example.com`` for any host under ``example.com``); with an
empty list every URL is refused. Redirects are followed by hand so that each target is
checked against the list too. The whole fetch is bounded by ``tools.http_timeout`` and
the body returned by ``tools.http_max_bytes`` (the rest is never read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import httpx2

from switchboard.server.config import ToolsConfig

MAX_REDIRECTS = 5

HttpFetch = Callable[[str], Awaitable[str]]


class AllowList:
    """Host names a fetch may reach: exact names, and ``*.suffix`` patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        names = [pattern.strip().lower().rstrip(".") for pattern in patterns]
        self._exact = frozenset(name for name in names if name and not name.startswith("*."))
        self._suffixes = tuple(name[1:] for name in names if name.startswith("*."))

    def __bool__(self) -> bool:
        return bool(self._exact or self._suffixes)

    def allows(self, host: str) -> bool:
        """True when ``host`` matches an entry (case-insensitively)."""
        host = host.lower().rstrip(".")
        return host in self._exact or host.endswith(self._suffixes)


def http_fetch_tool(config: ToolsConfig) -> HttpFetch:
    """The ``http_fetch`` function bound to the tools settings (to wrap as a tool)."""
    allow = AllowList(config.http_allow)
    timeout = config.http_timeout.total_seconds()
    max_bytes = config.http_max_bytes

    async def http_fetch(url: str) -> str:
        """Fetch a web page with HTTP GET and return its status, content type and text.

        Only hosts on the server's allow-list can be fetched; long bodies are cut short.

        Args:
            url: The http:// or https:// URL to fetch.

        """
        if not allow:
            raise ValueError(
                "http_fetch can fetch no URL: no host is allowed (tools.http_allow is empty)"
            )
        try:
            async with asyncio.timeout(timeout):
                return await _fetch(_checked(url, allow), allow, max_bytes)
        except TimeoutError:
            raise ValueError(f"no complete response from {url} within {timeout:g} s") from None

    return http_fetch


async def _fetch(url: httpx2.URL, allow: AllowList, max_bytes: int) -> str:
    # Redirects are not followed by the client: each target must pass the allow-list.
    async with httpx2.AsyncClient(follow_redirects=False, timeout=None) as client:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", url) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = _checked(str(url.join(location)), allow)
                    continue
                body, truncated = await _read(response, max_bytes)
                return _describe(response, body, truncated)
    raise ValueError(f"more than {MAX_REDIRECTS} redirects")


def _checked(url: str, allow: AllowList) -> httpx2.URL:
    try:
        parsed = httpx2.URL(url)
    except httpx2.InvalidURL as exc:
        raise ValueError(f"not a valid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs can be fetched, not {url!r}")
    if not allow.allows(parsed.host):
        raise ValueError(f"host {parsed.host!r} is not on the allow-list (tools.http_allow)")
    return parsed


async def _read(response: httpx2.Response, max_bytes: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


def _describe(response: httpx2.Response, body: bytes, truncated: bool) -> str:
    try:
        text = body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = body.decode("utf-8", errors="replace")
    lines = [
        f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
        f"Content-Type: {response.headers.get('content-type', 'unknown')}",
        "",
        text,
    ]
    if truncated:
        lines.append(f"[truncated after {len(body)} bytes]")
    return "\n".join(lines)
