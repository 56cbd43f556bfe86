"""Settings of who may call the service, how much, and over what transport."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from switchboard.server.config.types import Duration

Algorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "ES256", "ES384"
]


def _hs256() -> list[Algorithm]:
    return ["HS256"]


class LoginConfig(BaseModel):
    """Built-in identity: users with password hashes, AuthService.Login, short-lived tokens."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(default=False, description="Serve AuthService.Login.")
    token_ttl: Duration = Field(default=timedelta(hours=1), description="Lifetime of a token.")
    private_key_file: Path | None = Field(
        default=None,
        description="PEM private key signing tokens with an RS*/PS*/ES* algorithm "
        "(HS* tokens are signed with auth.secret).",
    )


class AuthConfig(BaseModel):
    """JWT bearer authentication and the scopes that authorize each method."""

    model_config = {"extra": "forbid"}

    mode: Literal["none", "jwt"] = Field(
        default="none", description="'jwt' requires a bearer token on every call."
    )
    algorithms: list[Algorithm] = Field(
        default_factory=_hs256,
        description="Accepted signing algorithms, pinned here; the token's header never "
        "chooses one.",
    )
    secret: SecretStr | None = Field(
        default=None, description="HS* shared secret (SWITCHBOARD_AUTH__SECRET)."
    )
    public_key_file: Path | None = Field(
        default=None, description="PEM public key verifying RS*/PS*/ES* tokens."
    )
    jwks_url: str | None = Field(
        default=None, description="JWKS endpoint of an identity provider (keys by kid)."
    )
    jwks_refresh: Duration = Field(
        default=timedelta(minutes=10), description="How often the JWKS is fetched again."
    )
    issuer: str | None = Field(default=None, description="Required `iss`.")
    audience: str | None = Field(default=None, description="Required `aud`.")
    leeway: Duration = Field(default=timedelta(seconds=30), description="Clock skew allowed.")
    required_claims: list[str] = Field(
        default_factory=lambda: ["exp", "iat", "sub"], description="Claims a token must carry."
    )
    scopes_claim: str = Field(
        default="scope",
        description="Claim with the caller's permissions: a space-separated string or a list "
        "(tasks:write, tasks:read, agents:read, admin).",
    )
    tenant_claim: str | None = Field(
        default=None, description="Claim whose value owns the caller's tasks (default: sub)."
    )
    max_token_bytes: int = Field(default=8192, ge=256, description="Longer tokens are refused.")
    allow_unauthenticated: bool = Field(
        default=False,
        description="Allow mode 'none' on an address other than loopback (otherwise the "
        "server refuses to start).",
    )
    login: LoginConfig = Field(default_factory=LoginConfig)

    @model_validator(mode="after")
    def _check_keys(self) -> AuthConfig:
        if self.mode != "jwt":
            return self
        symmetric = any(name.startswith("HS") for name in self.algorithms)
        if symmetric and self.secret is None:
            raise ValueError("auth.secret is required for HS* algorithms")
        if not all(name.startswith("HS") for name in self.algorithms) and not (
            self.public_key_file or self.jwks_url
        ):
            raise ValueError("auth.public_key_file or auth.jwks_url is required for RS/PS/ES")
        return self


class TlsConfig(BaseModel):
    """Server TLS, and optionally client certificates (mTLS)."""

    model_config = {"extra": "forbid"}

    cert_file: Path | None = Field(default=None, description="PEM certificate chain.")
    key_file: Path | None = Field(default=None, description="PEM private key.")
    client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle that client certificates must chain to."
    )
    require_client_cert: bool = Field(
        default=False, description="Refuse clients without a valid certificate (mTLS)."
    )

    @property
    def enabled(self) -> bool:
        """True when the server speaks TLS."""
        return self.cert_file is not None

    @model_validator(mode="after")
    def _check_pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        if self.require_client_cert and self.client_ca_file is None:
            raise ValueError("tls.require_client_cert needs tls.client_ca_file")
        return self


class RateClass(BaseModel):
    """A budget: ``rate`` units per second on average, bursts up to ``burst`` units."""

    model_config = {"extra": "forbid"}

    rate: float = Field(gt=0, description="Sustained units per second.")
    burst: int = Field(ge=1, description="Units that may be spent at once.")


class RateLimitConfig(BaseModel):
    """Per-caller limits (the subject, or the peer address without auth), per method class.

    Classes: ``write`` (Execute, SubmitTask, CancelTask; BatchExecute costs one unit per
    task), ``read`` (GetTask, ListTasks, WatchTask), ``agents`` (ListAgents, GetAgent),
    ``login`` (AuthService.Login). Health and reflection are never limited.
    """

    model_config = {"extra": "forbid"}

    enabled: bool = True
    write: RateClass = Field(default_factory=lambda: RateClass(rate=50, burst=500))
    read: RateClass = Field(default_factory=lambda: RateClass(rate=200, burst=1000))
    agents: RateClass = Field(default_factory=lambda: RateClass(rate=50, burst=200))
    login: RateClass = Field(default_factory=lambda: RateClass(rate=0.2, burst=10))
