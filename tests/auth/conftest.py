"""Fixtures of the auth tests: keys, and real gRPC servers behind the auth interceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from switchboard.server.config import AuthConfig
from tests.auth.probe import ProbeServer, serve_probe
from tests.auth.tokens import ec_key, rsa_key, write_public_key


@pytest.fixture(scope="session")
def rsa_private() -> rsa.RSAPrivateKey:
    """An RSA key (made once: generating one takes a while)."""
    return rsa_key()


@pytest.fixture(scope="session")
def other_rsa_private() -> rsa.RSAPrivateKey:
    """A second RSA key, e.g. an attacker's or a rotated one."""
    return rsa_key()


@pytest.fixture(scope="session")
def ec_private() -> ec.EllipticCurvePrivateKey:
    return ec_key()


@pytest.fixture
def rsa_public_file(tmp_path: Path, rsa_private: rsa.RSAPrivateKey) -> Path:
    return write_public_key(tmp_path / "rsa.pub.pem", rsa_private)


@pytest.fixture
def ec_public_file(tmp_path: Path, ec_private: ec.EllipticCurvePrivateKey) -> Path:
    return write_public_key(tmp_path / "ec.pub.pem", ec_private)


ProbeFactory = Callable[[AuthConfig], Awaitable[ProbeServer]]


@pytest.fixture
async def probe_server() -> AsyncIterator[ProbeFactory]:
    """Start probe servers behind the auth interceptor; stop them after the test."""
    started: list[ProbeServer] = []

    async def start(config: AuthConfig) -> ProbeServer:
        server = await serve_probe(config)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()
