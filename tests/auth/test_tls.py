"""TLS and mTLS server credentials, with real handshakes on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchboard.server.auth import server_credentials
from switchboard.server.cli import main
from switchboard.server.config import TlsConfig
from tests.auth.certs import Authority, Issued


@dataclass
class Pki:
    """Files of a CA, a server certificate, and clients signed by it and by a stranger."""

    ca: Path
    cert: Path
    key: Path
    ca_pem: bytes
    client: Issued
    stranger: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    authority, stranger = Authority("test CA"), Authority("someone else's CA")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(authority.pem)
    cert, key = authority.issue("switchboard", server=True).write(tmp_path, "server")
    return Pki(
        ca,
        cert,
        key,
        authority.pem,
        authority.issue("client", server=False),
        stranger.issue("client", server=False),
    )


Serve = Callable[[TlsConfig], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve health over TLS as configured; return the address."""
    servers: list[grpc.aio.Server] = []

    async def start(tls: TlsConfig) -> str:
        credentials = server_credentials(tls)
        assert credentials is not None
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(None)


async def _check(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = (
        grpc.aio.secure_channel(address, credentials)
        if credentials
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _client(pki: Pki, issued: Issued | None = None) -> grpc.ChannelCredentials:
    if issued is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
    return grpc.ssl_channel_credentials(pki.ca_pem, issued.key, issued.cert)


async def test_tls_clients_connect_and_plaintext_ones_do_not(pki: Pki, serve: Serve) -> None:
    address = await serve(TlsConfig(cert_file=pki.cert, key_file=pki.key))
    assert await _check(address, _client(pki)) == grpc.StatusCode.OK
    assert await _check(address, None) == grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the server's CA refuses it.
    assert await _check(address, grpc.ssl_channel_credentials()) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_clients_without_a_trusted_certificate(pki: Pki, serve: Serve) -> None:
    address = await serve(
        TlsConfig(
            cert_file=pki.cert, key_file=pki.key, client_ca_file=pki.ca, require_client_cert=True
        )
    )
    assert await _check(address, _client(pki)) == grpc.StatusCode.UNAVAILABLE
    assert await _check(address, _client(pki, pki.stranger)) == grpc.StatusCode.UNAVAILABLE
    assert await _check(address, _client(pki, pki.client)) == grpc.StatusCode.OK


async def test_without_require_client_cert_client_certificates_are_not_verified(
    pki: Pki, serve: Serve
) -> None:
    # gRPC Python requests them but does not check them: only require_client_cert is mTLS.
    address = await serve(TlsConfig(cert_file=pki.cert, key_file=pki.key, client_ca_file=pki.ca))
    assert await _check(address, _client(pki)) == grpc.StatusCode.OK
    assert await _check(address, _client(pki, pki.client)) == grpc.StatusCode.OK
    assert await _check(address, _client(pki, pki.stranger)) == grpc.StatusCode.OK


def test_no_certificate_means_no_tls() -> None:
    assert server_credentials(TlsConfig()) is None


def test_unusable_files_are_refused_at_start(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pki.client.key)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        )
    )
    cases = [
        (TlsConfig(cert_file=missing, key_file=pki.key), r"tls\.cert_file: cannot read"),
        (TlsConfig(cert_file=pki.cert, key_file=missing), r"tls\.key_file: cannot read"),
        (TlsConfig(cert_file=not_pem, key_file=pki.key), r"tls\.cert_file: no PEM certificate"),
        (TlsConfig(cert_file=pki.cert, key_file=not_pem), r"tls\.key_file: not an unencrypted"),
        (TlsConfig(cert_file=pki.cert, key_file=encrypted), r"tls\.key_file: not an unencrypted"),
        (TlsConfig(cert_file=pki.cert, key_file=other_key), r"does not belong to tls\.cert_file"),
        (
            TlsConfig(cert_file=pki.cert, key_file=pki.key, client_ca_file=not_pem),
            r"tls\.client_ca_file: no PEM certificate",
        ),
    ]
    for tls, message in cases:
        with pytest.raises(ValueError, match=message):
            server_credentials(tls)


async def test_the_health_command_speaks_tls_and_mtls(
    pki: Pki, serve: Serve, tmp_path: Path
) -> None:
    tls_only = await serve(TlsConfig(cert_file=pki.cert, key_file=pki.key))
    mtls = await serve(
        TlsConfig(
            cert_file=pki.cert, key_file=pki.key, client_ca_file=pki.ca, require_client_cert=True
        )
    )
    cert, key = pki.client.write(tmp_path, "probe")

    async def health(address: str, *flags: str) -> int:
        # The command is synchronous: off the loop that serves the health service.
        return await asyncio.to_thread(main, ["health", "--address", address, *flags])

    assert await health(tls_only) == 1  # plaintext to a TLS server
    assert await health(tls_only, "--ca", str(pki.ca)) == 0
    assert await health(tls_only, "--tls") == 1  # the system's CAs do not know ours
    assert await health(mtls, "--ca", str(pki.ca)) == 1  # no client certificate
    assert await health(mtls, "--ca", str(pki.ca), "--cert", str(cert), "--key", str(key)) == 0
    missing = tmp_path / "missing.pem"
    assert await health(tls_only, "--ca", str(missing)) == 2
