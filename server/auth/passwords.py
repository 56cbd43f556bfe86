"""Password hashes of the built-in users: argon2id for new ones, bcrypt read too.

New passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile).
bcrypt hashes (``$2a$``, ``$2b$``, ``$2y$``) made by another system are verified, so
users can be brought over with their hashes; :func:`needs_rehash` then says to
replace them with argon2id at the next successful login.

Hashing and verifying take tens of milliseconds of CPU on purpose: call them off
the event loop.
"""

from __future__ import annotations

import functools
import secrets

import argon2
import bcrypt
from argon2.exceptions import VerificationError

MIN_PASSWORD_LENGTH = 8
"""Shorter passwords are refused when a user is created."""
MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused everywhere (they only cost hashing time)."""

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt reads at most 72 bytes; the libraries that made such hashes cut the rest.
_BCRYPT_MAX_BYTES = 72
_ARGON2 = argon2.PasswordHasher()


def check_new_password(password: str) -> None:
    """Raise ValueError saying why ``password`` may not be a user's password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (with its own random salt)."""
    return _ARGON2.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``password_hash``.

    None stands for a user who does not exist: the password is still checked, against
    a hash nobody's password matches, so an unknown user takes as long to refuse as a
    wrong password (no user enumeration by timing). Raises ValueError for a hash of
    no format this module reads.
    """
    if password_hash is None:
        _verify_argon2(_unmatchable_hash(), password)
        return False
    if password_hash.startswith(_BCRYPT_PREFIXES):
        return bcrypt.checkpw(password.encode()[:_BCRYPT_MAX_BYTES], password_hash.encode())
    return _verify_argon2(password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True for a hash that is not argon2id with the current parameters."""
    if password_hash.startswith(_BCRYPT_PREFIXES):
        return True
    return _ARGON2.check_needs_rehash(password_hash)


def _verify_argon2(password_hash: str, password: str) -> bool:
    try:
        return _ARGON2.verify(password_hash, password)
    except VerificationError:  # a mismatch, or a hash argon2 itself refuses
        return False


@functools.cache
def _unmatchable_hash() -> str:
    # Made once, on first use: a random password's hash, same parameters as real ones.
    return _ARGON2.hash(secrets.token_urlsafe(32))
