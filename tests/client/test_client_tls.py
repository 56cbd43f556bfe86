"""TLS channels: the clients and ``swb`` verify the server with given root certificates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from switchboard.client import UnavailableError
from tests.e2e.programs import run_process

from .conftest import SWB, ConnectCalls
from .services import ErrorService, serving


@pytest.fixture
async def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    (
        await run_process(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        )
    ).check()
    return cert, key


@pytest.fixture
async def tls_address(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    cert, key = certificate
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    async with serving(ErrorService(), credentials) as address:
        yield address


async def test_clients_verify_the_server_with_root_certificates(
    connect: ConnectCalls, tls_address: str, certificate: tuple[Path, Path]
) -> None:
    calls = connect(
        tls_address,
        root_certificates=certificate[0].read_bytes(),
        metadata=[("authorization", "Bearer over-tls")],
    )
    assert (await calls("get", "echo")).output_text == "Bearer over-tls"


async def test_an_untrusted_server_is_refused(connect: ConnectCalls, tls_address: str) -> None:
    with pytest.raises(UnavailableError):
        await connect(tls_address, tls=True)("get", "echo")
    with pytest.raises(UnavailableError):
        await connect(tls_address)("get", "echo")  # plaintext to a TLS port


async def test_swb_with_a_ca_certificate(tls_address: str, certificate: tuple[Path, Path]) -> None:
    done = await run_process(
        SWB, "--address", tls_address, "--ca-cert", certificate[0], "--json", "get", "echo"
    )
    assert '"id": "echo"' in done.check().stdout
    missing = await run_process(SWB, "--ca-cert", "/nonexistent.pem", "get", "echo")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ")
    assert "/nonexistent.pem" in missing.stderr
