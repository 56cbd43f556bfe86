"""Async engines set up for each supported database (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

# How long a SQLite writer waits for another's lock before failing (ms).
_SQLITE_BUSY_TIMEOUT_MS = 5000
# PostgreSQL: enough connections for the event writer, the workers' reads and API
# reads at once; a dead connection is noticed at checkout, not mid-request.
_PG_POOL_SIZE = 10
_PG_MAX_OVERFLOW = 10
_PG_CONNECT_TIMEOUT_S = 10


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url``, with this service's pool and connection settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_async_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=_PG_POOL_SIZE,
        max_overflow=_PG_MAX_OVERFLOW,
        connect_args={"timeout": _PG_CONNECT_TIMEOUT_S},
    )


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names, or None (in-memory or not SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or _in_memory(parsed):
        return None
    return Path(parsed.database or "")


def _in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_engine(url: URL) -> AsyncEngine:
    options: dict[str, Any] = {}
    if _in_memory(url):
        # One connection for the engine's life: each new one would be a new, empty database.
        options["poolclass"] = StaticPool
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while one writer writes; SQLite enforces foreign keys only
    # when asked, per connection; busy_timeout makes a second writer wait, not fail.
    # synchronous=NORMAL is safe with WAL against a process crash and saves an fsync
    # per commit (a power cut may lose the last commits, never corrupt the file).
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
