"""TLS server credentials from the ``tls`` settings, optionally verifying clients (mTLS).

The files are read and checked at start (a certificate chain, its private key, and
that they belong together), so a bad file stops the server with the setting's name
instead of failing every handshake later. Certificates are read once: a rotated
certificate takes effect at the next restart (a rolling one on Kubernetes).
"""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from switchboard.server.config import TlsConfig


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``; None when TLS is off (no ``tls.cert_file``).

    With ``tls.require_client_cert``, a client without a certificate chaining to
    ``tls.client_ca_file`` is refused in the handshake (mTLS). Without it, gRPC Python
    asks for a client certificate but does not verify it: only the former is mTLS.
    """
    if tls.cert_file is None or tls.key_file is None:
        return None
    chain = _read(tls.cert_file, "tls.cert_file")
    key = _read(tls.key_file, "tls.key_file")
    _check_pair(chain, key)
    client_ca = None
    if tls.client_ca_file is not None:
        client_ca = _read(tls.client_ca_file, "tls.client_ca_file")
        _certificates(client_ca, "tls.client_ca_file")
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=tls.require_client_cert,
    )


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


def _certificates(data: bytes, setting: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{setting}: no PEM certificate in the file") from None


def _check_pair(chain: bytes, key: bytes) -> None:
    leaf = _certificates(chain, "tls.cert_file")[0]
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):  # TypeError: the key is encrypted
        raise ValueError("tls.key_file: not an unencrypted PEM private key") from None
    if private.public_key() != leaf.public_key():
        raise ValueError("tls.key_file: the key does not belong to tls.cert_file's certificate")
