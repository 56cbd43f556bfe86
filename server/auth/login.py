"""Built-in login: check a user's password, hand out a short-lived token.

Every refusal looks the same to the caller (UNAUTHENTICATED, reason
INVALID_CREDENTIALS, one message) and takes about as long: a password is checked
even for a user who does not exist, so neither the answer nor its timing tells
whether a user name is taken (a user still on an imported bcrypt hash answers at
bcrypt's pace until the first login upgrades the hash). The log says which refusal
it was, for the operator.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from switchboard.server.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    verify_password,
)
from switchboard.server.auth.tokens import TokenMinter
from switchboard.server.config import AuthConfig
from switchboard.server.domain import FieldViolation, InvalidArgument, Unauthenticated
from switchboard.server.store import User, UserStore

_log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
"""The ErrorInfo reason of every refused login."""
_REFUSED = "invalid username or password"
_MAX_USERNAME_LENGTH = 256
# Each check holds ~64 MiB for ~0.1 s: a burst of logins queues here instead of
# taking the process's memory (and every core) at once.
_CONCURRENT_CHECKS = 2


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token handed out by a login, and what it grants."""

    token: str
    expire_time: datetime
    ttl: timedelta
    scopes: tuple[str, ...]


class Authenticator:
    """Logs users of a :class:`UserStore` in, with tokens signed as ``auth`` says.

    Raises ValueError (naming the setting) when ``auth`` gives no usable signing key.
    """

    def __init__(self, users: UserStore, auth: AuthConfig) -> None:
        self._users = users
        self._minter = TokenMinter(auth)
        # Whole seconds, as in the token: expires_in then matches its exp exactly.
        self._ttl = timedelta(seconds=int(auth.login.token_ttl.total_seconds()))
        if self._ttl < timedelta(seconds=1):
            raise ValueError("auth.login.token_ttl: at least 1 s")
        self._checks = asyncio.Semaphore(_CONCURRENT_CHECKS)

    async def login(self, username: str, password: str) -> IssuedToken:
        """A token for ``username``; Unauthenticated unless the password is right.

        Disabled users are refused like wrong passwords. INVALID_ARGUMENT for an
        empty or oversized user name or password (which says nothing about users).
        """
        _check_lengths(username, password)
        user = await self._users.get_user(username)
        matches = await self._verify(
            username, None if user is None else user.password_hash, password
        )
        if user is None or not matches or user.disabled:
            why = "no such user" if user is None else "disabled" if matches else "wrong password"
            _log.info("login refused for %r: %s", username, why)
            raise Unauthenticated(_REFUSED, reason=INVALID_CREDENTIALS)
        await self._upgrade_hash(user, password)
        token, expire_time = self._minter.mint(
            subject=user.username, scopes=user.scopes, owner=user.owner, ttl=self._ttl
        )
        _log.info("login of %r: token valid until %s", username, expire_time.isoformat())
        return IssuedToken(token, expire_time, self._ttl, user.scopes)

    async def _verify(self, username: str, stored: str | None, password: str) -> bool:
        async with self._checks:
            try:
                return await asyncio.to_thread(verify_password, stored, password)
            except ValueError:
                _log.warning("user %r has a password hash of no known format", username)
                return False

    async def _upgrade_hash(self, user: User, password: str) -> None:
        # The password is known right now: the only moment an old hash can be replaced.
        if not needs_rehash(user.password_hash):
            return
        async with self._checks:
            new_hash = await asyncio.to_thread(hash_password, password)
        await self._users.set_password_hash(user.username, new_hash)
        _log.info("password hash of %r upgraded to argon2id", user.username)


def _check_lengths(username: str, password: str) -> None:
    violations = []
    for name, value, limit in (
        ("username", username, _MAX_USERNAME_LENGTH),
        ("password", password, MAX_PASSWORD_LENGTH),
    ):
        if not value:
            violations.append(FieldViolation(name, "is required"))
        elif len(value) > limit:
            violations.append(FieldViolation(name, f"at most {limit} characters"))
    if violations:
        raise InvalidArgument(violations)
