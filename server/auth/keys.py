"""Verification keys, each bound to the configured algorithms it can check.

A key verifies only algorithms of its own kind: the shared secret HS*, an RSA key
RS*/PS*, an EC key the ES* of its curve. Handing PyJWT exactly those (a subset of
``auth.algorithms``) is what defeats algorithm confusion, e.g. a token "signed" with
HS256 using the RSA public key as the secret: HS256 is never allowed with that key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
VerificationKey = bytes | PublicKey

# RFC 7518 3.2: an HMAC key at least as long as the hash output.
_MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key that verifies tokens, and the only algorithms it may verify them with."""

    key: VerificationKey
    algorithms: tuple[str, ...]


def bind(
    key: VerificationKey, configured: Sequence[str], declared: str | None = None
) -> SigningKey | None:
    """``key`` with the configured algorithms that fit it (and its declared ``alg``).

    None when no configured algorithm can use the key.
    """
    fitting = tuple(
        name for name in configured if _fits(name, key) and (declared is None or name == declared)
    )
    return SigningKey(key, fitting) if fitting else None


def secret_key(secret: str, configured: Sequence[str]) -> SigningKey | None:
    """The HS* key from ``auth.secret``; a ValueError when it is too short for them."""
    key = secret.encode()
    needed = max((_MIN_SECRET_BYTES.get(name, 0) for name in configured), default=0)
    if len(key) < needed:
        raise ValueError(f"auth.secret: must be at least {needed} bytes for {list(configured)}")
    return bind(key, configured)


def load_public_key(path: Path) -> PublicKey:
    """An RSA or EC public key from a PEM file (a public key or a certificate)."""
    try:
        data = path.read_bytes()
        key: object = (
            x509.load_pem_x509_certificate(data).public_key()
            if b"-----BEGIN CERTIFICATE-----" in data
            else serialization.load_pem_public_key(data)
        )
    except (OSError, ValueError) as exc:
        raise ValueError(f"auth.public_key_file: cannot load {path}: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError(f"auth.public_key_file: {path} holds neither an RSA nor an EC key")
    return key


def _fits(algorithm: str, key: VerificationKey) -> bool:
    if algorithm.startswith("HS"):
        return isinstance(key, bytes)
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _CURVES[algorithm]
