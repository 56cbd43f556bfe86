"""No authentication on a network address: refused unless explicitly allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchboard.server.auth import check_exposure
from switchboard.server.auth.exposure import is_loopback
from switchboard.server.config import Settings
from tests.auth.tokens import SECRET

LOOPBACK = [
    "127.0.0.1:50051",
    "127.0.0.2:0",
    "[::1]:50051",
    "localhost:50051",
    "LOCALHOST:1",
    "[::ffff:127.0.0.1]:50051",
    "unix:/run/switchboard.sock",
    "unix-abstract:switchboard",
]
EXPOSED = [
    "[::]:50051",
    "0.0.0.0:50051",
    ":50051",
    "10.1.2.3:50051",
    "[2001:db8::1]:50051",
    "[::ffff:10.0.0.1]:50051",
    "switchboard.example.com:50051",
]


def _settings(address: str, **overrides: Any) -> Settings:
    return Settings(address=address, **overrides)


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", EXPOSED)
def test_addresses_others_can_reach(address: str) -> None:
    assert not is_loopback(address)


@pytest.mark.parametrize("address", EXPOSED)
def test_no_auth_on_a_network_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"refusing to serve") as refused:
        check_exposure(_settings(address))
    message = str(refused.value)
    assert address in message
    assert "auth.mode" in message
    assert "auth.allow_unauthenticated" in message


@pytest.mark.parametrize("address", EXPOSED)
def test_it_is_allowed_when_said_explicitly_and_still_warned(address: str) -> None:
    (warning,) = check_exposure(_settings(address, auth={"allow_unauthenticated": True}))
    assert "AUTHENTICATION IS OFF" in warning


@pytest.mark.parametrize("address", LOOPBACK)
def test_no_auth_on_loopback_is_allowed_with_a_warning(address: str) -> None:
    (warning,) = check_exposure(_settings(address))
    assert "AUTHENTICATION IS OFF" in warning


def test_auth_on_a_network_address_warns_only_without_tls(tmp_path: Path) -> None:
    auth = {"mode": "jwt", "secret": SECRET}
    (warning,) = check_exposure(_settings("[::]:50051", auth=auth))
    assert "TLS is off" in warning
    assert check_exposure(_settings("127.0.0.1:50051", auth=auth)) == []
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    tls = {"cert_file": cert, "key_file": key}
    assert check_exposure(_settings("[::]:50051", auth=auth, tls=tls)) == []
    unverified = tls | {"client_ca_file": cert}
    (warning,) = check_exposure(_settings("[::]:50051", auth=auth, tls=unverified))
    assert "NOT verified" in warning
