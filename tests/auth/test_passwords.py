"""Password hashes: argon2id round trips, bcrypt hashes from elsewhere, refusals."""

from __future__ import annotations

import argon2
import bcrypt
import pytest

from switchboard.server.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    check_new_password,
    hash_password,
    needs_rehash,
    verify_password,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSWORD)


def test_a_password_matches_its_hash(stored: str) -> None:
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert verify_password(stored, PASSWORD)


@pytest.mark.parametrize(
    "attempt", ["", "correct horse battery stapl", "Correct horse battery staple", PASSWORD + " "]
)
def test_any_other_password_does_not(stored: str, attempt: str) -> None:
    assert not verify_password(stored, attempt)


def test_each_hash_has_its_own_salt(stored: str) -> None:
    again = hash_password(PASSWORD)
    assert again != stored
    assert verify_password(again, PASSWORD)


def test_no_password_matches_a_missing_user() -> None:
    assert not verify_password(None, PASSWORD)
    assert not verify_password(None, "")


def test_bcrypt_hashes_from_another_system_verify() -> None:
    for prefix in (b"2b", b"2a"):
        made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()
        assert verify_password(made, PASSWORD)
        assert not verify_password(made, "wrong password")


def test_bcrypt_reads_only_the_first_72_bytes_as_the_systems_that_made_them() -> None:
    long = "é" * 36 + "the rest is beyond 72 bytes"  # 72 bytes of UTF-8, then more
    made = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert verify_password(made, long)
    assert verify_password(made, "é" * 36)
    assert not verify_password(made, "é" * 35)


def test_old_hashes_need_a_rehash(stored: str) -> None:
    assert not needs_rehash(stored)
    assert needs_rehash(bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=4)).decode())
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert verify_password(weaker, PASSWORD)
    assert needs_rehash(weaker)


@pytest.mark.parametrize("garbage", ["plain text", "$1$md5crypt$abc", "$2b$04$short"])
def test_a_hash_of_no_known_format_is_an_error(garbage: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - whichever library refused it
        verify_password(garbage, PASSWORD)


def test_new_passwords_have_bounded_lengths() -> None:
    check_new_password("x" * MIN_PASSWORD_LENGTH)
    check_new_password("x" * MAX_PASSWORD_LENGTH)
    with pytest.raises(ValueError, match="at least 8 characters"):
        check_new_password("x" * (MIN_PASSWORD_LENGTH - 1))
    with pytest.raises(ValueError, match="at most 1024 characters"):
        check_new_password("x" * (MAX_PASSWORD_LENGTH + 1))
