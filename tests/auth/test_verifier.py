"""TokenVerifier on its own: keys from every source, claims into callers, bad settings."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from switchboard.server.auth import Caller, TokenVerifier
from switchboard.server.auth.tokens import TokenMinter
from switchboard.server.config import AuthConfig, LoginConfig
from switchboard.server.domain import Unauthenticated
from tests.auth.tokens import AUDIENCE, ISSUER, SECRET, hs_config, mint


async def _refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(token)
    return refused.value.reason


async def test_scopes_as_a_string_or_a_list() -> None:
    verifier = TokenVerifier(hs_config())
    spaced = await verifier.verify(mint(scope="tasks:read  agents:read"))
    listed = await verifier.verify(mint(scope=["tasks:read", "agents:read"]))
    assert spaced == listed == Caller("alice", "alice", frozenset({"tasks:read", "agents:read"}))
    assert (await verifier.verify(mint(scope=None))).scopes == frozenset()
    assert await _refused(verifier, mint(scope=["tasks:read", 3])) == "TOKEN_INVALID"
    assert await _refused(verifier, mint(scope={"tasks:read": True})) == "TOKEN_INVALID"


async def test_a_custom_scopes_claim() -> None:
    verifier = TokenVerifier(hs_config(scopes_claim="permissions"))
    caller = await verifier.verify(mint(scope="admin", permissions=["tasks:read"]))
    assert caller.scopes == frozenset({"tasks:read"})
    assert not caller.admin


async def test_the_tenant_claim_owns_the_tasks() -> None:
    verifier = TokenVerifier(hs_config(tenant_claim="org"))
    caller = await verifier.verify(mint(sub="alice", org="acme"))
    assert (caller.subject, caller.owner) == ("alice", "acme")
    for org in (None, "", 42, ["acme"], "x" * 300):
        assert await _refused(verifier, mint(org=org)) == "TOKEN_INVALID"


async def test_required_claims_come_from_the_settings() -> None:
    verifier = TokenVerifier(hs_config(required_claims=["exp", "iat", "sub", "jti"]))
    assert await _refused(verifier, mint()) == "TOKEN_INVALID"
    assert (await verifier.verify(mint(jti="once"))).subject == "alice"


async def test_issuer_and_audience_are_checked_only_when_set() -> None:
    verifier = TokenVerifier(AuthConfig(mode="jwt", secret=SECRET))
    assert (await verifier.verify(mint(iss="anyone", aud=None))).subject == "alice"
    # An audience the server was not told to accept is still refused.
    assert await _refused(verifier, mint(aud=AUDIENCE)) == "TOKEN_INVALID"


async def test_an_ec_public_key_file(
    ec_public_file: Path, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    config = AuthConfig(
        mode="jwt",
        algorithms=["ES256"],
        public_key_file=ec_public_file,
        issuer=ISSUER,
        audience=AUDIENCE,
    )
    verifier = TokenVerifier(config)
    assert (await verifier.verify(mint(ec_private, "ES256"))).subject == "alice"
    other = ec.generate_private_key(ec.SECP256R1())
    assert await _refused(verifier, mint(other, "ES256")) == "TOKEN_INVALID"


async def test_a_certificate_as_the_public_key_file(
    tmp_path: Path, rsa_private: rsa.RSAPrivateKey
) -> None:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "idp")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(rsa_private, hashes.SHA256())
    )
    path = tmp_path / "idp.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    config = AuthConfig(mode="jwt", algorithms=["RS256", "PS256"], public_key_file=path)
    verifier = TokenVerifier(config)
    for algorithm in ("RS256", "PS256"):
        assert (await verifier.verify(mint(rsa_private, algorithm, aud=None))).owner == "alice"


async def test_tokens_minted_by_the_built_in_login_verify(
    tmp_path: Path, ec_public_file: Path, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    key_file = tmp_path / "ec.key.pem"
    key_file.write_bytes(
        ec_private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    configs = [
        hs_config(tenant_claim="org"),
        AuthConfig(
            mode="jwt",
            algorithms=["ES256"],
            public_key_file=ec_public_file,
            issuer=ISSUER,
            audience=AUDIENCE,
            login=LoginConfig(enabled=True, private_key_file=key_file),
        ),
    ]
    for config in configs:
        token, _ = TokenMinter(config).mint(
            subject="ops", scopes=["admin"], owner="acme", ttl=datetime.timedelta(minutes=5)
        )
        caller = await TokenVerifier(config).verify(token)
        assert caller.subject == "ops"
        assert caller.owner == ("acme" if config.tenant_claim else "ops")
        assert caller.admin


async def test_a_huge_token_is_refused_by_its_size() -> None:
    verifier = TokenVerifier(hs_config())
    assert await _refused(verifier, "x" * 9000) == "TOKEN_TOO_LARGE"
    assert await _refused(verifier, mint(padding="é" * 4000)) == "TOKEN_TOO_LARGE"


def test_a_short_secret_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"auth\.secret: must be at least 32 bytes"):
        TokenVerifier(hs_config(secret="short"))
    with pytest.raises(ValueError, match="at least 64 bytes"):
        TokenVerifier(hs_config(algorithms=["HS256", "HS512"]))


def test_unusable_public_key_files_are_refused_at_start(
    tmp_path: Path, ec_public_file: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    for path in (tmp_path / "missing.pem", garbage):
        config = AuthConfig(mode="jwt", algorithms=["RS256"], public_key_file=path)
        with pytest.raises(ValueError, match=r"auth\.public_key_file: cannot load"):
            TokenVerifier(config)
    config = AuthConfig(mode="jwt", algorithms=["RS256"], public_key_file=ec_public_file)
    with pytest.raises(ValueError, match=r"fits none of auth\.algorithms"):
        TokenVerifier(config)


@pytest.mark.parametrize("url", ["ftp://idp.test/keys", "not a url", "file:///etc/passwd"])
def test_a_jwks_url_must_be_http(url: str) -> None:
    config = AuthConfig(mode="jwt", algorithms=["RS256"], jwks_url=url)
    with pytest.raises(ValueError, match=r"auth\.jwks_url"):
        TokenVerifier(config)
