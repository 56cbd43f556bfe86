"""Minting tokens with the configured key: they verify with the server's own verifier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from switchboard.server.auth import Caller, TokenVerifier
from switchboard.server.auth.tokens import TokenMinter, mint_token
from switchboard.server.config import AuthConfig
from tests.auth.tokens import AUDIENCE, ISSUER, SECRET, hs_config

HOUR = timedelta(hours=1)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def write_private_key(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def decode(token: str, key: Any, config: AuthConfig) -> dict[str, Any]:
    """The claims, checked as a careful verifier checks them."""
    return jwt.decode(
        token,
        key,
        algorithms=[config.algorithms[0]],
        audience=config.audience,
        issuer=config.issuer,
        leeway=config.leeway,
        options={"require": ["sub", "iat", "nbf", "exp", "jti"]},
    )


def asymmetric_config(tmp_path: Path, private: PrivateKey, algorithm: str) -> AuthConfig:
    public = tmp_path / "public.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return AuthConfig(
        mode="jwt",
        algorithms=[algorithm],
        public_key_file=public,
        issuer=ISSUER,
        audience=AUDIENCE,
        login={"private_key_file": write_private_key(tmp_path / "private.pem", private)},
    )


async def test_an_hs256_token_carries_every_claim_and_verifies() -> None:
    config = hs_config()
    before = datetime.now(UTC).replace(microsecond=0)
    token, expires = mint_token(
        config, subject="alice", scopes=["tasks:read", "tasks:write"], ttl=HOUR
    )
    claims = decode(token, SECRET, config)
    assert claims["sub"] == "alice"
    assert claims["scope"] == "tasks:read tasks:write"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["nbf"] == claims["iat"] >= before.timestamp()
    assert claims["exp"] - claims["iat"] == 3600
    assert expires == datetime.fromtimestamp(claims["exp"], UTC)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    caller = await TokenVerifier(config).verify(token)
    assert caller == Caller("alice", "alice", frozenset({"tasks:read", "tasks:write"}))


def test_every_token_has_its_own_id() -> None:
    minter = TokenMinter(hs_config())
    tokens = [minter.mint(subject="alice", scopes=[], ttl=HOUR)[0] for _ in range(3)]
    assert len({decode(token, SECRET, hs_config())["jti"] for token in tokens}) == 3


def test_scopes_are_written_once_each_in_order() -> None:
    token, _ = mint_token(hs_config(), subject="a", scopes=["b", "a", "b"], ttl=HOUR)
    assert decode(token, SECRET, hs_config())["scope"] == "b a"


def test_issuer_and_audience_only_when_configured() -> None:
    config = hs_config(issuer=None, audience=None)
    token, _ = mint_token(config, subject="alice", scopes=[], ttl=HOUR)
    assert {"iss", "aud"}.isdisjoint(decode(token, SECRET, config))


def test_a_custom_scopes_claim() -> None:
    config = hs_config(scopes_claim="permissions")
    token, _ = mint_token(config, subject="alice", scopes=["admin"], ttl=HOUR)
    claims = decode(token, SECRET, config)
    assert claims["permissions"] == "admin"
    assert "scope" not in claims


async def test_the_tenant_claim_names_the_owner_or_else_the_subject() -> None:
    config = hs_config(tenant_claim="org")
    verifier = TokenVerifier(config)
    owned, _ = mint_token(config, subject="alice", scopes=["admin"], owner="acme", ttl=HOUR)
    assert decode(owned, SECRET, config)["org"] == "acme"
    assert await verifier.verify(owned) == Caller("alice", "acme", frozenset({"admin"}))
    own, _ = mint_token(config, subject="bob", scopes=[], ttl=HOUR)
    assert (await verifier.verify(own)).owner == "bob"


def test_without_a_tenant_claim_the_owner_is_left_out() -> None:
    token, _ = mint_token(hs_config(), subject="alice", scopes=[], owner="acme", ttl=HOUR)
    assert "acme" not in decode(token, SECRET, hs_config()).values()


@pytest.mark.parametrize(
    ("algorithm", "kind"), [("RS256", "rsa"), ("PS256", "rsa"), ("ES256", "ec")]
)
async def test_asymmetric_tokens_verify_with_the_public_key(
    tmp_path: Path,
    rsa_private: rsa.RSAPrivateKey,
    ec_private: ec.EllipticCurvePrivateKey,
    algorithm: str,
    kind: str,
) -> None:
    private = rsa_private if kind == "rsa" else ec_private
    config = asymmetric_config(tmp_path, private, algorithm)
    token, _ = mint_token(config, subject="alice", scopes=["agents:read"], ttl=HOUR)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert decode(token, private.public_key(), config)["sub"] == "alice"
    caller = await TokenVerifier(config).verify(token)
    assert caller == Caller("alice", "alice", frozenset({"agents:read"}))


def test_the_first_configured_algorithm_signs() -> None:
    token, _ = mint_token(
        hs_config(algorithms=["HS512", "HS256"], secret="s" * 64),
        subject="alice",
        scopes=[],
        ttl=HOUR,
    )
    assert jwt.get_unverified_header(token)["alg"] == "HS512"


def test_bad_arguments_are_refused() -> None:
    minter = TokenMinter(hs_config())
    with pytest.raises(ValueError, match="needs a subject"):
        minter.mint(subject="", scopes=[], ttl=HOUR)
    with pytest.raises(ValueError, match="at least 1 s"):
        minter.mint(subject="alice", scopes=[], ttl=timedelta(milliseconds=999))


def test_unusable_hs_keys_are_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"auth\.secret: required to sign HS256"):
        TokenMinter(AuthConfig())
    with pytest.raises(ValueError, match=r"auth\.secret: must be at least 32 bytes"):
        TokenMinter(AuthConfig(secret="short"))
    with pytest.raises(ValueError, match=r"auth\.secret: must be at least 64 bytes"):
        TokenMinter(AuthConfig(algorithms=["HS512"], secret=SECRET))


def _private_key_config(path: Path | None, algorithm: str = "RS256", **more: Any) -> AuthConfig:
    return AuthConfig(algorithms=[algorithm], login={"private_key_file": path}, **more)


def test_unusable_private_keys_are_refused_naming_the_setting(
    tmp_path: Path, rsa_private: rsa.RSAPrivateKey, other_rsa_private: rsa.RSAPrivateKey
) -> None:
    setting = r"auth\.login\.private_key_file"
    with pytest.raises(ValueError, match=f"{setting}: required to sign RS256"):
        TokenMinter(_private_key_config(None))
    with pytest.raises(ValueError, match=f"{setting}: cannot read"):
        TokenMinter(_private_key_config(tmp_path / "missing.pem"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ValueError, match=f"{setting}: .* holds no unencrypted PEM private key"):
        TokenMinter(_private_key_config(garbage))
    rsa_file = write_private_key(tmp_path / "rsa.pem", rsa_private)
    with pytest.raises(ValueError, match=f"{setting}: .* holds no ES256 key"):
        TokenMinter(_private_key_config(rsa_file, "ES256"))
    p384 = write_private_key(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match=f"{setting}: .* holds no ES256 key: .*curve"):
        TokenMinter(_private_key_config(p384, "ES256"))
    # The public half where the private key belongs: it cannot sign.
    public = tmp_path / "public.pem"
    public.write_bytes(
        rsa_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ValueError, match=f"{setting}: .* holds no unencrypted PEM private key"):
        TokenMinter(_private_key_config(public))
    # Someone else's key: the server could not verify its own tokens.
    other = write_private_key(tmp_path / "other.pem", other_rsa_private)
    with pytest.raises(ValueError, match=r"does not match auth\.public_key_file"):
        TokenMinter(_private_key_config(other, public_key_file=public))
    TokenMinter(_private_key_config(rsa_file, public_key_file=public))
