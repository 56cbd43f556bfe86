"""Apply the store's Alembic migrations from inside a running event loop.

Alembic's own async entry point calls ``asyncio.run``, which cannot nest in a running
loop; instead the migration runs on a connection we open and hand to ``env.py``
(Alembic's connection-sharing recipe). The Alembic config is built here, so no
``alembic.ini`` is needed at run time and the migrations ship inside the package.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard.server.store.engine import create_engine, sqlite_file

_MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed number: replicas that start together take turns migrating on PostgreSQL.
_PG_MIGRATION_LOCK = 0x5377_6274_6368


def alembic_config() -> Config:
    """The Alembic configuration of the store (script location inside this package)."""
    config = Config()
    # configparser interpolation: a literal % in the path must be doubled.
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    return config


async def migrate(url: str) -> None:
    """Apply migrations to head (creating a SQLite file and its folder if missing)."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def upgrade(engine: AsyncEngine) -> None:
    """Apply migrations to head through ``engine``, in one transaction."""
    path = sqlite_file(engine.url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, alembic_config())


def _upgrade(connection: Connection, config: Config) -> None:
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends: concurrent migrators wait, then find head.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
