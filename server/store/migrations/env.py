"""Alembic environment for the task store.

Three ways in: ``switchboard.server.store.migrate`` hands over an open connection
(``config.attributes["connection"]``), so migrations run inside the caller's event
loop; the ``alembic`` CLI runs it standalone against ``sqlalchemy.url`` or
``SWITCHBOARD_DATABASE_URL``; ``--sql`` renders offline scripts.
"""

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from switchboard.server.store.engine import create_engine
from switchboard.server.store.schema import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SWITCHBOARD_DATABASE_URL")
    if not url:
        raise SystemExit("set SWITCHBOARD_DATABASE_URL (or sqlalchemy.url) to the database")
    return url


def _run(connection: Connection) -> None:
    # Batch mode lets later migrations ALTER tables on SQLite (by copy and rename).
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    asyncio.run(_run_standalone(_url()))
