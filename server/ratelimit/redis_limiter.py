"""GCRA budgets in Redis, shared by every replica; in process while Redis fails."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from switchboard.server.ratelimit.gcra import Decision, Limit, check_cost, to_micros
from switchboard.server.ratelimit.local import LocalLimiter
from switchboard.server.telemetry.throttle import ThrottledWarning

_log = logging.getLogger(__name__)

DEFAULT_PREFIX = "switchboard:"
# The limiter sits in front of every call: a Redis that hangs may cost a call this
# much (twice, with the retry) before the call is limited in process instead.
_SOCKET_TIMEOUT_S = 0.25
# One immediate retry: a pooled connection may have gone stale (e.g. Redis restarted).
_RETRY = Retry(NoBackoff(), 1)
# While Redis fails, one warning per this many seconds (each says how many it stands for).
_WARN_INTERVAL_S = 60.0

# gcra.step in Lua, atomic in Redis. ARGV: emission interval (us), burst, cost, and now
# (us), or "" to read the Redis server's clock. Values are whole microseconds, exact in
# Lua's doubles; the TAT is written with %.0f because tostring() would round it.
# The key expires when its TAT passes: a key with no entry has a full budget anyway.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local new_tat = tat + cost * interval
local allowed_at = new_tat - tolerance
if allowed_at > now then
  return {0, allowed_at - now, math.floor((now + tolerance - tat) / interval)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {1, 0, math.floor((now + tolerance - new_tat) / interval)}
"""


class RedisLimiter:
    """Per-key budgets in Redis under ``{prefix}rl:{key}``, one atomic script per call.

    Replicas on the same Redis and prefix share every budget. Time comes from the
    Redis server (``TIME`` inside the script) so replicas whose clocks disagree still
    agree; ``clock`` (seconds, the same timeline on every replica, e.g. ``time.time``)
    replaces it, which tests use to inject time.

    When Redis fails (down, timing out, refusing) calls are not failed: they are
    limited by an in-process ``LocalLimiter`` on ``local_clock``, so each replica
    enforces the whole budget on its own. ``degraded`` says so, ``fallbacks`` counts
    those calls, a warning is logged at most once a minute. Redis is tried again at
    most once per ``probe_interval``; its first answer ends the degraded state (an
    info line in the log).
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        local_clock: Callable[[], float] = time.monotonic,
        probe_interval: timedelta = timedelta(seconds=1),
    ) -> None:
        self._client = client
        self._script = client.register_script(_GCRA_LUA)
        self._prefix = prefix
        self._clock = clock
        self._local_clock = local_clock
        self._probe_interval = probe_interval.total_seconds()
        self._local = LocalLimiter(clock=local_clock)
        self._degraded = False
        self._fallbacks = 0
        self._next_probe = 0.0
        self._warning = ThrottledWarning(_log, _WARN_INTERVAL_S, local_clock)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> RedisLimiter:
        """A limiter on the Redis at ``url`` (``redis://HOST:PORT/DB``); connects lazily."""
        client = Redis.from_url(
            url,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_connect_timeout=_SOCKET_TIMEOUT_S,
            retry=_RETRY,
        )
        return cls(client, prefix=prefix)

    @property
    def degraded(self) -> bool:
        """True from a Redis failure until Redis answers again."""
        return self._degraded

    @property
    def fallbacks(self) -> int:
        """Calls limited in process because Redis failed, since this limiter was made."""
        return self._fallbacks

    def redis_key(self, key: str) -> str:
        """The Redis key holding ``key``'s TAT."""
        return f"{self._prefix}rl:{key}"

    async def acquire(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s shared budget (see ``Limiter.acquire``)."""
        refused = check_cost(limit, cost)
        if refused is not None:
            return refused
        now = self._local_clock()
        if self._degraded:
            if now < self._next_probe:
                return await self._fall_back(key, limit, cost)
            # This call probes Redis; the calls arriving meanwhile do not wait on it.
            self._next_probe = now + self._probe_interval
        try:
            reply = await self._script(
                keys=[self.redis_key(key)],
                args=[limit.interval_us, limit.burst, cost, self._now_arg()],
            )
        except (RedisError, OSError) as error:
            self._failed(error)
            return await self._fall_back(key, limit, cost)
        if self._degraded:
            self._degraded = False
            _log.info(
                "rate limiter: Redis answers again; budgets are shared by every replica again"
            )
        return _decision(reply)

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        await self._client.aclose()

    def _now_arg(self) -> int | str:
        return "" if self._clock is None else to_micros(self._clock())

    async def _fall_back(self, key: str, limit: Limit, cost: int) -> Decision:
        self._fallbacks += 1
        return await self._local.acquire(key, limit, cost)

    def _failed(self, error: Exception) -> None:
        now = self._local_clock()
        self._degraded = True
        self._next_probe = now + self._probe_interval
        self._warning.warn(
            "rate limiter: Redis failed, limiting in this process only (each replica "
            "allows the whole budget) until it answers again: %r",
            error,
        )


def _decision(reply: Sequence[int]) -> Decision:
    allowed, retry_us, remaining = (int(value) for value in reply)
    return Decision(bool(allowed), timedelta(microseconds=retry_us), remaining)
