"""Keys and tokens for the auth tests, made the way an identity provider makes them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from switchboard.server.config import AuthConfig

SECRET = "a shared secret of more than 32 bytes"
ISSUER = "https://idp.example.test"
AUDIENCE = "switchboard"
EVERY_SCOPE = "tasks:read tasks:write agents:read"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_public_key(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(public_pem(key))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for now; an override of None leaves the claim out."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "scope": EVERY_SCOPE,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
    }
    merged = base | overrides
    return {name: value for name, value in merged.items() if value is not None}


def mint(
    key: Any = SECRET,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A token for ``claims(**overrides)`` signed with ``key``."""
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], **overrides: Any) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims(**overrides)).encode())}"


def unsigned(**overrides: Any) -> str:
    """An ``alg: none`` token: no signature at all."""
    return _segments({"alg": "none", "typ": "JWT"}, **overrides) + "."


def hmac_signed(secret: bytes, **overrides: Any) -> str:
    """An HS256 token signed with ``secret`` by hand (PyJWT refuses a PEM as a secret)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT"}, **overrides)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def hs_config(**overrides: Any) -> AuthConfig:
    """JWT auth with the shared secret, issuer and audience of these tests."""
    values: dict[str, Any] = {
        "mode": "jwt",
        "secret": SECRET,
        "issuer": ISSUER,
        "audience": AUDIENCE,
    }
    return AuthConfig(**(values | overrides))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)
