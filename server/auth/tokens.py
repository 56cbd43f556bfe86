"""Minting JWTs with the configured key: for built-in login and for operators.

Tokens are signed with the first of ``auth.algorithms``: HS* with ``auth.secret``,
RS*/PS*/ES* with ``auth.login.private_key_file``. They carry what the verifier
requires: ``sub``, the scopes claim, ``iat``, ``nbf``, ``exp``, a ``jti``, and
``iss``/``aud`` and the tenant claim when those are configured.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.exceptions import InvalidKeyError, PyJWTError

from switchboard.server.auth.keys import load_public_key, secret_key
from switchboard.server.config import AuthConfig

_KEY_TYPES = {"RS": rsa.RSAPrivateKey, "PS": rsa.RSAPrivateKey, "ES": ec.EllipticCurvePrivateKey}


class TokenMinter:
    """Signs tokens with the key the settings name, loaded (and checked) once.

    Raises ValueError naming the setting at fault when there is no usable key: no
    secret, a short secret, no private key file, a key that cannot sign with the
    algorithm, or one that does not match ``auth.public_key_file``.
    """

    def __init__(self, auth: AuthConfig) -> None:
        self._auth = auth
        self._algorithm = auth.algorithms[0]
        self._key = _signing_key(auth, self._algorithm)
        self._check_key()

    def mint(
        self,
        *,
        subject: str,
        scopes: Iterable[str],
        owner: str | None = None,
        ttl: timedelta,
    ) -> tuple[str, datetime]:
        """A signed token and the moment it expires.

        When ``auth.tenant_claim`` is set, that claim says who owns the caller's tasks:
        ``owner``, or else the subject; otherwise ``owner`` is left out. ``ttl`` counts
        in whole seconds, at least one.
        """
        if not subject:
            raise ValueError("a token needs a subject")
        seconds = int(ttl.total_seconds())
        if seconds < 1:
            raise ValueError(f"a token's lifetime is at least 1 s, got {ttl}")
        # JWT times are whole seconds: expire_time then equals the token's exp exactly.
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + timedelta(seconds=seconds)
        claims: dict[str, Any] = {
            "sub": subject,
            self._auth.scopes_claim: " ".join(dict.fromkeys(scopes)),
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        if self._auth.issuer:
            claims["iss"] = self._auth.issuer
        if self._auth.audience:
            claims["aud"] = self._auth.audience
        if self._auth.tenant_claim:
            # The verifier requires the claim once it is configured.
            claims[self._auth.tenant_claim] = owner or subject
        return jwt.encode(claims, self._key, algorithm=self._algorithm), expires

    def _check_key(self) -> None:
        # A private key that is not the public key's pair would sign tokens this very
        # server refuses: fail at start rather than at every login.
        if self._algorithm.startswith("HS") or self._auth.public_key_file is None:
            return
        public_key = load_public_key(self._auth.public_key_file)
        probe = jwt.encode({"probe": True}, self._key, algorithm=self._algorithm)
        try:
            jwt.decode(probe, public_key, algorithms=[self._algorithm])
        except PyJWTError as exc:
            raise ValueError(
                "auth.login.private_key_file does not match auth.public_key_file "
                "(the server could not verify its own tokens)"
            ) from exc


def mint_token(
    auth: AuthConfig,
    *,
    subject: str,
    scopes: Iterable[str],
    owner: str | None = None,
    ttl: timedelta,
) -> tuple[str, datetime]:
    """One token signed with the configured key (see :meth:`TokenMinter.mint`)."""
    return TokenMinter(auth).mint(subject=subject, scopes=scopes, owner=owner, ttl=ttl)


def _signing_key(auth: AuthConfig, algorithm: str) -> Any:
    if algorithm.startswith("HS"):
        if auth.secret is None:
            raise ValueError(f"auth.secret: required to sign {algorithm} tokens")
        secret = auth.secret.get_secret_value()
        secret_key(secret, [algorithm])  # refuses a secret too short, as the verifier does
        return secret.encode()
    path = auth.login.private_key_file
    if path is None:
        raise ValueError(f"auth.login.private_key_file: required to sign {algorithm} tokens")
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"auth.login.private_key_file: cannot read {path}: {exc}") from exc
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError) as exc:  # TypeError: a key encrypted with a password
        raise ValueError(
            f"auth.login.private_key_file: {path} holds no unencrypted PEM private key: {exc}"
        ) from exc
    if not isinstance(private, _KEY_TYPES[algorithm[:2]]):
        raise ValueError(
            f"auth.login.private_key_file: {path} holds no {algorithm} key "
            "(RS*/PS* sign with an RSA key, ES* with an EC key)"
        )
    try:
        return jwt.get_algorithm_by_name(algorithm).prepare_key(private)
    except InvalidKeyError as exc:  # e.g. an EC key on another curve
        raise ValueError(
            f"auth.login.private_key_file: {path} holds no {algorithm} key: {exc}"
        ) from exc
