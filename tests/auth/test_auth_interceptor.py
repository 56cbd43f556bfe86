"""The auth interceptor on a real grpc.aio server: who gets in, and what they see."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchboard.server.config import AuthConfig
from switchboard.server.domain import ERROR_DOMAIN
from switchboard.server.interceptors import AuthInterceptor
from tests.api.statuses import detail, failure
from tests.auth.conftest import ProbeFactory
from tests.auth.probe import LOGIN, SERVICE, STYLES
from tests.auth.tokens import (
    AUDIENCE,
    SECRET,
    bearer,
    hmac_signed,
    hs_config,
    mint,
    public_pem,
    unsigned,
)

ADMIN = "admin"
HOUR = 3600


async def _refusal(call: Any, streaming: bool = False) -> tuple[grpc.StatusCode, str, str]:
    """The code, ErrorInfo reason and message of a refused call."""
    _, status = await failure(call, streaming=streaming)
    info = detail(status, error_details_pb2.ErrorInfo)
    assert info.domain == ERROR_DOMAIN
    return await call.code(), info.reason, status.message


# Each attack: the token (or header value) made from the time now, and the reason.
ATTACKS: dict[str, tuple[Any, str]] = {
    "alg none": (lambda: unsigned(scope=ADMIN), "TOKEN_INVALID"),
    "expired": (lambda: mint(scope=ADMIN, exp=int(time.time()) - HOUR), "TOKEN_EXPIRED"),
    "not yet valid (nbf)": (
        lambda: mint(scope=ADMIN, nbf=int(time.time()) + HOUR),
        "TOKEN_NOT_YET_VALID",
    ),
    "issued in the future": (
        lambda: mint(scope=ADMIN, iat=int(time.time()) + HOUR),
        "TOKEN_NOT_YET_VALID",
    ),
    "wrong issuer": (lambda: mint(scope=ADMIN, iss="https://evil.test"), "TOKEN_INVALID"),
    "no issuer": (lambda: mint(scope=ADMIN, iss=None), "TOKEN_INVALID"),
    "wrong audience": (lambda: mint(scope=ADMIN, aud="someone-else"), "TOKEN_INVALID"),
    "no audience": (lambda: mint(scope=ADMIN, aud=None), "TOKEN_INVALID"),
    "missing sub": (lambda: mint(scope=ADMIN, sub=None), "TOKEN_INVALID"),
    "empty sub": (lambda: mint(scope=ADMIN, sub=""), "TOKEN_INVALID"),
    "missing exp": (lambda: mint(scope=ADMIN, exp=None), "TOKEN_INVALID"),
    "bad signature": (
        lambda: mint("another secret of more than 32 bytes", scope=ADMIN),
        "TOKEN_INVALID",
    ),
    "tampered payload": (
        lambda: _tampered(mint(scope="tasks:read"), mint(scope=ADMIN)),
        "TOKEN_INVALID",
    ),
    "HS512 not configured": (lambda: mint(SECRET * 2, "HS512", scope=ADMIN), "TOKEN_INVALID"),
    "garbage": (lambda: "not-a-jwt", "TOKEN_MALFORMED"),
    "three garbage segments": (lambda: "a.b.c", "TOKEN_MALFORMED"),
    "scopes of the wrong type": (lambda: mint(scope=7), "TOKEN_INVALID"),
    "huge subject": (lambda: mint(scope=ADMIN, sub="x" * 300), "TOKEN_INVALID"),
}


def _tampered(honest: str, wanted: str) -> str:
    """``honest``'s header and signature around ``wanted``'s payload."""
    header, _, signature = honest.split(".")
    return f"{header}.{wanted.split('.')[1]}.{signature}"


@pytest.mark.parametrize("attack", ATTACKS)
async def test_each_attack_is_unauthenticated(probe_server: ProbeFactory, attack: str) -> None:
    probe = await probe_server(hs_config())
    make, reason = ATTACKS[attack]
    code, got, message = await _refusal(probe.call("Unary", metadata=bearer(make())))
    assert (code, got) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    assert "Traceback" not in message
    assert len(message) < 60  # short: says what kind of problem, not how the check failed


async def test_the_rsa_public_key_as_an_hmac_secret_is_refused(
    probe_server: ProbeFactory, rsa_public_file: Path, rsa_private: rsa.RSAPrivateKey
) -> None:
    forged = hmac_signed(public_pem(rsa_private), scope=ADMIN)
    pinned = AuthConfig(
        mode="jwt", algorithms=["RS256"], public_key_file=rsa_public_file, audience=AUDIENCE
    )
    # Even with a secret and HS256 configured too: HS256 is checked with the secret only.
    mixed = hs_config(algorithms=["HS256", "RS256"], public_key_file=rsa_public_file)
    for config in (pinned, mixed):
        probe = await probe_server(config)
        code, reason, _ = await _refusal(probe.call("Unary", metadata=bearer(forged)))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
        honest = mint(rsa_private, "RS256", scope=ADMIN)
        assert await probe.call("Unary", metadata=bearer(honest)) == b"alice|alice|admin"


async def test_an_es256_token_is_not_checked_with_an_rsa_key(
    probe_server: ProbeFactory, rsa_public_file: Path, ec_private: ec.EllipticCurvePrivateKey
) -> None:
    config = AuthConfig(
        mode="jwt",
        algorithms=["RS256", "ES256"],
        public_key_file=rsa_public_file,
        audience=AUDIENCE,
    )
    probe = await probe_server(config)
    token = mint(ec_private, "ES256", scope=ADMIN)
    code, reason, _ = await _refusal(probe.call("Unary", metadata=bearer(token)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_an_oversized_token_is_refused_before_parsing(probe_server: ProbeFactory) -> None:
    probe = await probe_server(hs_config(max_token_bytes=1024))
    token = mint(scope=ADMIN, padding="x" * 1200)
    code, reason, _ = await _refusal(probe.call("Unary", metadata=bearer(token)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_TOO_LARGE")
    assert await probe.call("Unary", metadata=bearer(mint(scope=ADMIN, padding="x" * 100)))


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic YWxpY2U6c2VjcmV0"),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer"),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer "),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer one two"),), "TOKEN_MALFORMED"),
        ((("authorization", "TOKEN"),), "TOKEN_MALFORMED"),
        ((("x-authorization", "Bearer TOKEN"),), "TOKEN_MISSING"),
        ((("authorization", "Bearer TOKEN"), ("authorization", "Bearer TOKEN")), "TOKEN_MALFORMED"),
    ],
    ids=["missing", "basic", "no-token", "empty-token", "two-words", "no-scheme", "other", "two"],
)
async def test_the_header_must_be_exactly_one_bearer_token(
    probe_server: ProbeFactory, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    probe = await probe_server(hs_config())
    token = mint(scope=ADMIN)
    filled = tuple((key, value.replace("TOKEN", token)) for key, value in metadata)
    code, got, _ = await _refusal(probe.call("Unary", metadata=filled))
    assert (code, got) == (grpc.StatusCode.UNAUTHENTICATED, reason)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_scheme_is_case_insensitive(probe_server: ProbeFactory, scheme: str) -> None:
    probe = await probe_server(hs_config())
    metadata = (("authorization", f"{scheme} {mint(scope=ADMIN)}"),)
    assert await probe.call("Unary", metadata=metadata) == b"alice|alice|admin"


async def test_a_token_just_past_its_expiry_passes_within_the_leeway(
    probe_server: ProbeFactory,
) -> None:
    probe = await probe_server(hs_config())  # 30 s leeway by default
    token = mint(scope=ADMIN, exp=int(time.time()) - 5)
    assert await probe.call("Unary", metadata=bearer(token)) == b"alice|alice|admin"


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_every_handler_style_sees_the_caller_and_so_does_the_access_log(
    probe_server: ProbeFactory, method: str, streaming: bool
) -> None:
    probe = await probe_server(hs_config())
    token = mint(scope=["admin", "tasks:read"], sub="bob")
    answer = await probe.answer(method, streaming, bearer(token))
    assert answer[0] == b"bob|bob|admin tasks:read"
    seen = probe.spy.seen[f"/{SERVICE}/{method}"]
    assert seen is not None
    assert seen.subject == "bob"


@pytest.mark.parametrize(("method", "streaming"), STYLES)
async def test_every_handler_style_is_refused_without_credentials(
    probe_server: ProbeFactory, method: str, streaming: bool
) -> None:
    probe = await probe_server(hs_config())
    call = probe.call(method, streaming)
    code, reason, _ = await _refusal(call, streaming)
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")
    assert probe.spy.seen[f"/{SERVICE}/{method}"] is None


async def test_a_method_missing_from_the_scope_table_needs_admin(
    probe_server: ProbeFactory,
) -> None:
    probe = await probe_server(hs_config())
    token = mint(scope="tasks:read tasks:write agents:read")
    call = probe.call("Unary", metadata=bearer(token))
    _, status = await failure(call)
    assert await call.code() == grpc.StatusCode.PERMISSION_DENIED
    info = detail(status, error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == ("MISSING_SCOPE", {"scope": "admin"})
    denied = probe.spy.seen[f"/{SERVICE}/Unary"]  # the access log names who was denied
    assert denied is not None
    assert denied.subject == "alice"


async def test_a_synchronous_handler_is_not_served_unchecked(probe_server: ProbeFactory) -> None:
    probe = await probe_server(hs_config())
    for metadata in ((), bearer(mint(scope=ADMIN))):
        call = probe.call("Blocking", metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        assert await call.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_with_auth_off_everyone_is_the_anonymous_caller(probe_server: ProbeFactory) -> None:
    probe = await probe_server(AuthConfig())
    for method, streaming in STYLES:
        assert (await probe.answer(method, streaming, ()))[0] == b"anonymous"
        # A token, even a bad one, changes nothing.
        assert (await probe.answer(method, streaming, bearer("junk")))[0] == b"anonymous"
    assert await probe.call("Blocking") == b"served without a check"


def test_jwt_mode_needs_a_verifier() -> None:
    with pytest.raises(ValueError, match="verifier"):
        AuthInterceptor(None, hs_config())


@pytest.mark.parametrize(
    "method",
    ["/test.Probe/Nope", "/switchboard.v1.TaskService/Nope", "/no.such.Service/Method"],
)
async def test_unknown_methods_stay_unimplemented(probe_server: ProbeFactory, method: str) -> None:
    probe = await probe_server(hs_config())
    call = probe.call(method)
    with pytest.raises(grpc.aio.AioRpcError):
        await call
    assert await call.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_needs_no_credentials_and_watch_streams(probe_server: ProbeFactory) -> None:
    probe = await probe_server(hs_config())
    stub = health_pb2_grpc.HealthStub(probe.channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    checked = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert checked.status == serving
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
    assert (await watch.read()).status == serving
    await probe.health.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()
    # A bad token on a public method is not looked at.
    checked = await stub.Check(health_pb2.HealthCheckRequest(), metadata=bearer("junk"))
    assert checked.status == serving


async def test_reflection_needs_no_credentials(probe_server: ProbeFactory) -> None:
    probe = await probe_server(hs_config())
    stub = reflection_pb2_grpc.ServerReflectionStub(probe.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    responses = [response async for response in call]
    names = {service.name for service in responses[0].list_services_response.service}
    assert SERVICE in names
    # grpcurl asks v1 first and falls back to v1alpha only on UNIMPLEMENTED.
    v1 = probe.channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    call = v1(iter([b""]))
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in call:
            pass
    assert await call.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_login_needs_no_credentials(probe_server: ProbeFactory) -> None:
    probe = await probe_server(hs_config())
    assert await probe.call(LOGIN) == b"anonymous"
    assert await probe.call(LOGIN, metadata=bearer("junk")) == b"anonymous"
