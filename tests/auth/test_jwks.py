"""Keys from an identity provider's JWKS, served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.rpc import error_details_pb2

from switchboard.server.auth import TokenVerifier
from switchboard.server.auth.jwks import EARLY_REFRESH_INTERVAL
from switchboard.server.config import AuthConfig
from switchboard.server.domain import Unauthenticated, Unavailable
from tests.api.statuses import detail, failure
from tests.auth.conftest import ProbeFactory
from tests.auth.jwks_server import JwksServer, jwk
from tests.auth.tokens import AUDIENCE, ISSUER, bearer, mint


def _config(server: JwksServer, **overrides: Any) -> AuthConfig:
    values: dict[str, Any] = {
        "mode": "jwt",
        "algorithms": ["RS256", "PS256", "ES256"],
        "jwks_url": server.url,
        "issuer": ISSUER,
        "audience": AUDIENCE,
    }
    return AuthConfig(**(values | overrides))


def _signed(key: Any, kid: str, algorithm: str = "RS256", **claims: Any) -> str:
    return mint(key, algorithm, headers={"kid": kid}, **claims)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def idp(rsa_private: rsa.RSAPrivateKey) -> AsyncIterator[JwksServer]:
    async with JwksServer(jwk(rsa_private, "k1")) as server:
        yield server


@pytest.fixture
async def verifiers() -> AsyncIterator[list[TokenVerifier]]:
    """Verifiers to stop after the test."""
    made: list[TokenVerifier] = []
    yield made
    for verifier in made:
        await verifier.stop()


async def test_the_first_fetch_runs_in_the_background(
    idp: JwksServer, rsa_private: rsa.RSAPrivateKey, verifiers: list[TokenVerifier]
) -> None:
    verifier = TokenVerifier(_config(idp))
    verifiers.append(verifier)
    assert not verifier.ready
    verifier.start()
    # A call arriving meanwhile waits for that fetch (joins it) instead of failing.
    caller = await verifier.verify(_signed(rsa_private, "k1"))
    assert caller.subject == "alice"
    assert verifier.ready
    assert idp.requests == 1


async def test_rotated_keys_are_picked_up_by_the_background_refresh(
    idp: JwksServer,
    rsa_private: rsa.RSAPrivateKey,
    other_rsa_private: rsa.RSAPrivateKey,
    verifiers: list[TokenVerifier],
) -> None:
    verifier = TokenVerifier(_config(idp, jwks_refresh=timedelta(milliseconds=10)))
    verifiers.append(verifier)
    verifier.start()
    await idp.wait_for_requests(1)
    idp.document = {"keys": [jwk(other_rsa_private, "k2")]}
    # The fetch after the change is applied before the loop asks again.
    await idp.wait_for_requests(idp.requests + 2)
    assert (await verifier.verify(_signed(other_rsa_private, "k2"))).subject == "alice"
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(_signed(rsa_private, "k1"))
    assert refused.value.reason == "UNKNOWN_KEY"


async def test_an_unknown_key_id_fetches_early_at_most_once_per_interval(
    idp: JwksServer,
    rsa_private: rsa.RSAPrivateKey,
    other_rsa_private: rsa.RSAPrivateKey,
) -> None:
    clock = Clock()
    verifier = TokenVerifier(_config(idp), clock=clock)
    assert await verifier.refresh()
    idp.document = {"keys": [jwk(rsa_private, "k1"), jwk(other_rsa_private, "k2")]}
    rotated = _signed(other_rsa_private, "k2")

    async def reason(token: str) -> str:
        with pytest.raises(Unauthenticated) as refused:
            await verifier.verify(token)
        return refused.value.reason

    assert await reason(rotated) == "UNKNOWN_KEY"  # just fetched: no early fetch yet
    assert idp.requests == 1
    clock.now += EARLY_REFRESH_INTERVAL
    assert (await verifier.verify(rotated)).subject == "alice"
    assert idp.requests == 2
    made_up = _signed(other_rsa_private, "made-up")
    assert await reason(made_up) == "UNKNOWN_KEY"
    assert await reason(made_up) == "UNKNOWN_KEY"
    assert idp.requests == 2
    clock.now += EARLY_REFRESH_INTERVAL
    assert await reason(made_up) == "UNKNOWN_KEY"
    assert idp.requests == 3


async def test_concurrent_calls_share_one_fetch(
    idp: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(_config(idp))
    idp.gate = asyncio.Event()
    token = _signed(rsa_private, "k1")
    calls = [asyncio.create_task(verifier.verify(token)) for _ in range(5)]
    await idp.wait_for_requests(1)
    idp.gate.set()
    assert {(await call).subject for call in calls} == {"alice"}
    assert idp.requests == 1


async def test_no_keys_yet_is_unavailable_not_unauthenticated(
    idp: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> None:
    idp.status = 503
    verifier = TokenVerifier(_config(idp))
    with pytest.raises(Unavailable) as unavailable:
        await verifier.verify(_signed(rsa_private, "k1"))
    assert unavailable.value.reason == "AUTH_KEYS_UNAVAILABLE"
    assert unavailable.value.retry_after is not None
    assert not verifier.ready


async def test_no_keys_yet_reaches_the_client_as_unavailable_with_a_retry_delay(
    idp: JwksServer, rsa_private: rsa.RSAPrivateKey, probe_server: ProbeFactory
) -> None:
    idp.status = 500
    probe = await probe_server(_config(idp))
    call = probe.call("Unary", metadata=bearer(_signed(rsa_private, "k1", scope="admin")))
    _, status = await failure(call)
    assert await call.code() == grpc.StatusCode.UNAVAILABLE
    assert detail(status, error_details_pb2.ErrorInfo).reason == "AUTH_KEYS_UNAVAILABLE"
    assert detail(status, error_details_pb2.RetryInfo).retry_delay.seconds > 0
    # Without a token, the caller is told so first.
    call = probe.call("Unary")
    await failure(call)
    assert await call.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "breakage",
    [{"status": 500}, {"body": b"<html>oops</html>"}, {"body": b'{"keys": 3}'}, {"big": True}],
    ids=["500", "html", "not-a-jwks", "too-big"],
)
async def test_a_failed_refresh_keeps_the_keys_known(
    idp: JwksServer, rsa_private: rsa.RSAPrivateKey, breakage: dict[str, Any]
) -> None:
    verifier = TokenVerifier(_config(idp))
    assert await verifier.refresh()
    idp.status = breakage.get("status", 200)
    idp.body = breakage.get("body")
    if breakage.get("big"):
        idp.body = json.dumps({"keys": [], "padding": "x" * (2 << 20)}).encode()
    assert not await verifier.refresh()
    assert (await verifier.verify(_signed(rsa_private, "k1"))).subject == "alice"


async def test_only_asymmetric_signing_keys_that_fit_are_used(
    idp: JwksServer,
    rsa_private: rsa.RSAPrivateKey,
    ec_private: ec.EllipticCurvePrivateKey,
) -> None:
    idp.document = {
        "keys": [
            jwk(rsa_private, "enc", use="enc"),
            {"kty": "oct", "kid": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
            jwk(rsa_private, "rs512", alg="RS512"),
            jwk(rsa_private, "rs256", alg="RS256"),
            jwk(rsa_private, "any-rsa"),
            jwk(ec_private, "ec"),
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not even an object",
        ]
    }
    verifier = TokenVerifier(_config(idp))
    assert await verifier.refresh()
    accepted = [
        ("rs256", "RS256", rsa_private),
        ("any-rsa", "RS256", rsa_private),
        ("any-rsa", "PS256", rsa_private),
        ("ec", "ES256", ec_private),
    ]
    for kid, algorithm, key in accepted:
        assert (await verifier.verify(_signed(key, kid, algorithm))).subject == "alice"
    refused = [
        ("enc", "RS256", rsa_private),
        ("rs512", "RS256", rsa_private),
        ("rs256", "PS256", rsa_private),  # the key declares RS256 only
        ("ec", "RS256", rsa_private),
    ]
    for kid, algorithm, key in refused:
        with pytest.raises(Unauthenticated):
            await verifier.verify(_signed(key, kid, algorithm))


async def test_a_jwks_without_usable_keys_is_a_failed_fetch(idp: JwksServer) -> None:
    idp.document = {"keys": [{"kty": "oct", "kid": "oct", "k": "c2VjcmV0"}]}
    verifier = TokenVerifier(_config(idp))
    assert not await verifier.refresh()
    assert not verifier.ready


async def test_a_token_without_a_key_id_is_refused(
    idp: JwksServer, rsa_private: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(_config(idp))
    assert await verifier.refresh()
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(mint(rsa_private, "RS256"))
    assert refused.value.reason == "TOKEN_INVALID"
