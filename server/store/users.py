"""The built-in identity store: users, their password hashes and scopes.

Lives in the task store's database (table ``users``, migration 0003), so the
embedded default needs nothing more and replicas share one set of users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from switchboard.server.store.engine import create_engine
from switchboard.server.store.migrate import upgrade
from switchboard.server.store.schema import users

# Letters, digits and . _ @ + - (email addresses fit); the name becomes a token's `sub`.
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
# A scope is one word of the space-separated scopes claim.
_SCOPE = re.compile(r"[\x21-\x7e]{1,64}")


class UserExists(ValueError):
    """A user with this name exists already."""


@dataclass(frozen=True, slots=True)
class User:
    """A user who may log in; ``owner`` (when set) owns the user's tasks."""

    username: str
    # Never in a repr: reprs end up in logs.
    password_hash: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    owner: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    disabled: bool = False


def check_username(username: str) -> None:
    """Raise ValueError unless ``username`` is a valid user name."""
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            f"invalid user name {username[:140]!r}: 1 to 128 letters, digits or . _ @ + -"
        )


def check_scope(scope: str) -> None:
    """Raise ValueError unless ``scope`` can be one word of a scopes claim."""
    if not _SCOPE.fullmatch(scope):
        raise ValueError(f"invalid scope {scope[:80]!r}: 1 to 64 printable characters, no spaces")


class UserStore:
    """Reads and writes users; every write is one transaction.

    ``UserStore(engine)`` shares an engine (e.g. the task store's) and leaves it
    open on :meth:`close`; :meth:`open` makes one of its own, which ``close`` disposes.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._owns_engine = False

    @classmethod
    async def open(cls, url: str, *, migrate: bool = False) -> UserStore:
        """Open a store on ``url``; with ``migrate``, apply migrations to head first."""
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        store = cls(engine)
        store._owns_engine = True
        return store

    async def close(self) -> None:
        """Close the engine's connections when this store opened it."""
        if self._owns_engine:
            await self._engine.dispose()

    async def add_user(self, user: User) -> None:
        """Insert ``user``; UserExists when the name is taken, ValueError when invalid."""
        check_username(user.username)
        for scope in user.scopes:
            check_scope(scope)
        if not user.password_hash:
            raise ValueError("a user needs a password hash")
        try:
            async with self._engine.begin() as connection:
                await connection.execute(users.insert(), _to_row(user))
        except IntegrityError as exc:
            if await self.get_user(user.username) is None:
                raise
            raise UserExists(f"user {user.username!r} exists already") from exc

    async def get_user(self, username: str) -> User | None:
        """The user called ``username``, or None."""
        query = sa.select(users).where(users.c.username == username)
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).mappings().first()
        return None if row is None else _from_row(row)

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        async with self._engine.connect() as connection:
            rows = (
                await connection.execute(sa.select(users).order_by(users.c.username))
            ).mappings()
            return [_from_row(row) for row in rows]

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (or enable again) a user; False when there is no such user."""
        return await self._update(username, disabled=disabled)

    async def set_password_hash(self, username: str, password_hash: str) -> bool:
        """Replace a user's password hash; False when there is no such user."""
        if not password_hash:
            raise ValueError("a user needs a password hash")
        return await self._update(username, password_hash=password_hash)

    async def _update(self, username: str, **values: Any) -> bool:
        statement = users.update().where(users.c.username == username).values(**values)
        async with self._engine.begin() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)


def _to_row(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "password_hash": user.password_hash,
        "scopes": list(user.scopes),
        "owner": user.owner,
        "created_at": user.created_at,
        "disabled": user.disabled,
    }


def _from_row(row: RowMapping) -> User:
    return User(
        username=row["username"],
        password_hash=row["password_hash"],
        scopes=tuple(row["scopes"]),
        owner=row["owner"],
        created_at=row["created_at"],
        disabled=row["disabled"],
    )
