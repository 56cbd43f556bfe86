"""Verifying bearer tokens (JWT) into callers.

Every rule is the configuration's, never the token's: the algorithms a key may verify
are pinned (``keys.bind``), and issuer, audience, leeway and required claims are
always enforced. Refusals are ``Unauthenticated`` with a short message that tells a
client what kind of problem it has (reason ``TOKEN_MISSING``, ``TOKEN_MALFORMED``,
``TOKEN_TOO_LARGE``, ``TOKEN_EXPIRED``, ``TOKEN_NOT_YET_VALID``, ``TOKEN_INVALID``,
``UNKNOWN_KEY``) and nothing about how the check failed; the detail goes to the
debug log. While the JWKS has never been fetched, ``Unavailable`` (reason
``AUTH_KEYS_UNAVAILABLE``): the token may well be valid, so the client should retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt

from switchboard.server.auth.identity import Caller
from switchboard.server.auth.jwks import JwksKeys
from switchboard.server.auth.keys import SigningKey, bind, load_public_key, secret_key
from switchboard.server.config import AuthConfig
from switchboard.server.domain import Unauthenticated, Unavailable

_log = logging.getLogger(__name__)

# Owners are stored and indexed: an unbounded claim would fail PostgreSQL's index.
_MAX_IDENTITY = 256
_KEYS_RETRY_AFTER = timedelta(seconds=5)


class TokenVerifier:
    """Checks bearer tokens against ``auth``: keys, algorithms, issuer, audience, claims.

    Key files are read here, once; a JWKS is fetched by ``start`` in the background.
    """

    def __init__(self, config: AuthConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        """A ValueError naming the setting when a key cannot be used."""
        self._config = config
        self._secret: SigningKey | None = None
        if config.secret is not None:
            self._secret = secret_key(config.secret.get_secret_value(), config.algorithms)
        self._public: SigningKey | None = None
        if config.public_key_file is not None:
            self._public = bind(load_public_key(config.public_key_file), config.algorithms)
            if self._public is None:
                raise ValueError(
                    f"auth.public_key_file: its key fits none of auth.algorithms "
                    f"{config.algorithms}"
                )
        self._jwks: JwksKeys | None = None
        if config.jwks_url is not None:
            self._jwks = JwksKeys(
                config.jwks_url, config.algorithms, config.jwks_refresh, clock=clock
            )

    @property
    def ready(self) -> bool:
        """True when tokens can be checked (the JWKS, if any, has been fetched)."""
        return self._jwks is None or self._jwks.loaded

    def start(self) -> None:
        """Start fetching the JWKS in the background (nothing to do without one)."""
        if self._jwks is not None:
            self._jwks.start()

    async def stop(self) -> None:
        """Stop the background fetching."""
        if self._jwks is not None:
            await self._jwks.stop()

    async def refresh(self) -> bool:
        """Fetch the JWKS now; True when it succeeded (or there is none to fetch)."""
        return self._jwks is None or await self._jwks.refresh()

    async def verify(self, token: str) -> Caller:
        """The caller ``token`` proves, or ``Unauthenticated`` (see the module doc)."""
        if len(token.encode()) > self._config.max_token_bytes:
            raise Unauthenticated("token too large", reason="TOKEN_TOO_LARGE")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _refused("malformed token", "TOKEN_MALFORMED", exc) from None
        key = await self._key(header)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(key.algorithms),
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway,
                options={"require": list(self._config.required_claims)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _refused("token expired", "TOKEN_EXPIRED", exc) from None
        except jwt.ImmatureSignatureError as exc:
            raise _refused("token not yet valid", "TOKEN_NOT_YET_VALID", exc) from None
        except jwt.PyJWTError as exc:
            raise _refused("invalid token", "TOKEN_INVALID", exc) from None
        return self._caller(claims)

    async def _key(self, header: dict[str, Any]) -> SigningKey:
        algorithm = header.get("alg")
        # Only a pre-filter (e.g. "none"): the key decides what actually verifies.
        if algorithm not in self._config.algorithms:
            raise _refused("invalid token", "TOKEN_INVALID", f"algorithm {algorithm!r}")
        if algorithm.startswith("HS"):
            key = self._secret
        elif self._jwks is not None and ("kid" in header or self._public is None):
            key = await _jwks_key(self._jwks, header.get("kid"))
        else:
            key = self._public
        if key is None:
            raise _refused("invalid token", "TOKEN_INVALID", f"no key for {algorithm}")
        return key

    def _caller(self, claims: dict[str, Any]) -> Caller:
        subject = _identity(claims, "sub")
        tenant = self._config.tenant_claim
        owner = subject if tenant is None else _identity(claims, tenant)
        scopes = claims.get(self._config.scopes_claim, "")
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise _refused("invalid token", "TOKEN_INVALID", "scopes claim of the wrong type")
        return Caller(subject=subject, owner=owner, scopes=frozenset(scopes))


async def _jwks_key(jwks: JwksKeys, kid: str | None) -> SigningKey:
    if kid is None:
        raise _refused("invalid token", "TOKEN_INVALID", "no key id (kid)")
    key = await jwks.key(kid)
    if key is not None:
        return key
    if not jwks.loaded:
        raise Unavailable(
            "signing keys not loaded yet",
            reason="AUTH_KEYS_UNAVAILABLE",
            retry_after=_KEYS_RETRY_AFTER,
        )
    raise _refused("unknown signing key", "UNKNOWN_KEY", f"kid {kid[:64]!r}")


def _identity(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_IDENTITY:
        raise _refused("invalid token", "TOKEN_INVALID", f"no usable {name!r} claim")
    return value


def _refused(message: str, reason: str, detail: object) -> Unauthenticated:
    _log.debug("token refused (%s): %s", reason, detail)
    return Unauthenticated(message, reason=reason)
