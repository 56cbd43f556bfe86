"""An identity provider's signing keys (a JWKS), fetched in the background.

Calls never wait on the provider in the normal case: a background task fetches the
set at start and every ``auth.jwks_refresh``. A token naming a key id the set does
not hold (the provider rotated its keys) makes one early fetch, joined by every call
that arrives meanwhile and allowed at most once per ``EARLY_REFRESH_INTERVAL``, so
tokens with made-up key ids cannot turn the service into a flood of fetches.

A failed fetch keeps the keys already known; until the first fetch succeeds there
are none, and the verifier answers UNAVAILABLE (retry later) rather than calling
valid tokens invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx2
from jwt import PyJWK, PyJWTError

from switchboard.server.auth.keys import SigningKey, bind

_log = logging.getLogger(__name__)

EARLY_REFRESH_INTERVAL = 30.0
"""Seconds between fetches made early because a token named an unknown key id."""

_RETRY_AFTER_FAILURE = 5.0
_TIMEOUT = 10.0
_MAX_BYTES = 1 << 20  # a JWKS is a few KB; more is not one


class JwksKeys:
    """The signing keys of the JWKS at ``url``, by key id, kept fresh in the background."""

    def __init__(
        self,
        url: str,
        algorithms: Sequence[str],
        refresh: timedelta,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``algorithms`` are the configured ones; a key that fits none is left out."""
        try:
            scheme = httpx2.URL(url).scheme
        except httpx2.InvalidURL as exc:
            raise ValueError(f"auth.jwks_url: not a valid URL {url!r}: {exc}") from None
        if scheme not in ("http", "https"):
            raise ValueError(f"auth.jwks_url: must be an http(s) URL, not {url!r}")
        self._url = url
        self._algorithms = tuple(algorithms)
        self._interval = refresh.total_seconds()
        self._clock = clock
        self._keys: dict[str, SigningKey] | None = None
        self._last_fetch: float | None = None
        self._fetching: asyncio.Task[bool] | None = None
        self._background: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        """True once a fetch has succeeded."""
        return self._keys is not None

    def start(self) -> None:
        """Start fetching in the background: now, then every refresh interval."""
        if self._background is None:
            self._background = asyncio.create_task(self._run(), name="jwks-refresh")

    async def stop(self) -> None:
        """Stop the background fetching (and a fetch in flight)."""
        for task in (self._background, self._fetching):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._background = self._fetching = None

    async def refresh(self) -> bool:
        """Fetch the set now, or join the fetch in flight; True when it succeeded."""
        if self._fetching is None or self._fetching.done():
            self._last_fetch = self._clock()
            self._fetching = asyncio.create_task(self._fetch(), name="jwks-fetch")
        # Shielded: a caller that goes away does not cancel the fetch for the others.
        return await asyncio.shield(self._fetching)

    async def key(self, kid: str) -> SigningKey | None:
        """The key with id ``kid``, fetching the set early (rate-limited) if unknown."""
        known = (self._keys or {}).get(kid)
        if known is not None or not self._may_fetch_early():
            return known
        await self.refresh()
        return (self._keys or {}).get(kid)

    def _may_fetch_early(self) -> bool:
        if self._fetching is not None and not self._fetching.done():
            return True
        return (
            self._last_fetch is None or self._clock() - self._last_fetch >= EARLY_REFRESH_INTERVAL
        )

    async def _run(self) -> None:
        while True:
            try:
                fetched = await self.refresh()
            except Exception:  # a bug must not end the refreshing for good
                _log.exception("JWKS refresh from %s failed unexpectedly", self._url)
                fetched = False
            delay = self._interval if fetched else min(self._interval, _RETRY_AFTER_FAILURE)
            await asyncio.sleep(delay)

    async def _fetch(self) -> bool:
        try:
            document = await self._download()
            keys = _signing_keys(document, self._algorithms)
        except (httpx2.HTTPError, ValueError, TimeoutError) as exc:
            known = "keeping the keys fetched before" if self._keys else "no keys yet"
            _log.warning("JWKS fetch from %s failed (%s): %s", self._url, known, exc)
            return False
        if keys != self._keys:
            _log.info("JWKS from %s: key ids %s", self._url, sorted(keys))
        self._keys = keys
        return True

    async def _download(self) -> Any:
        async with (
            asyncio.timeout(_TIMEOUT),  # the whole fetch, not each read
            httpx2.AsyncClient(timeout=_TIMEOUT) as client,
            client.stream("GET", self._url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_BYTES:
                    raise ValueError(f"larger than {_MAX_BYTES} bytes")
        return json.loads(body)


def _signing_keys(document: Any, algorithms: Sequence[str]) -> dict[str, SigningKey]:
    """The usable signing keys of a JWKS document by key id (a ValueError if none)."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS: no 'keys' list")
    keys = {}
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        # Only asymmetric signing keys: a published symmetric key would be no secret.
        if (
            not isinstance(kid, str)
            or entry.get("use", "sig") != "sig"
            or entry.get("kty") not in ("RSA", "EC")
        ):
            continue
        try:
            key = PyJWK(entry).key
        except (PyJWTError, ValueError, TypeError):  # a malformed key, e.g. bad base64
            continue
        declared = entry.get("alg")
        bound = bind(key, algorithms, declared if isinstance(declared, str) else None)
        if bound is not None:
            keys[kid] = bound
    if not keys:
        raise ValueError(f"no signing key usable with {list(algorithms)}")
    return keys
