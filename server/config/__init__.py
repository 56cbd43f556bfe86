"""Every setting of the server, in one pydantic-settings tree.

Sources, strongest first: command-line flags (passed as init values), environment
variables ``SWITCHBOARD_*`` (nested with ``__``, e.g. ``SWITCHBOARD_QUEUE__MAX_CONCURRENCY``),
the YAML file named by ``SWITCHBOARD_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from switchboard.server.config.agents import (
    AgentConfig,
    BreakerConfig,
    RetryConfig,
    ToolsConfig,
    default_agents,
)
from switchboard.server.config.security import (
    AuthConfig,
    LoginConfig,
    RateClass,
    RateLimitConfig,
    TlsConfig,
)
from switchboard.server.config.service import QueueConfig, ServerConfig, StoreConfig
from switchboard.server.config.types import Duration, LogLevel

__all__ = [
    "CONFIG_ENV",
    "AgentConfig",
    "AuthConfig",
    "BreakerConfig",
    "Duration",
    "LogLevel",
    "LoginConfig",
    "QueueConfig",
    "RateClass",
    "RateLimitConfig",
    "RetryConfig",
    "ServerConfig",
    "Settings",
    "StoreConfig",
    "TlsConfig",
    "ToolsConfig",
    "load_settings",
]

CONFIG_ENV = "SWITCHBOARD_CONFIG"


class Settings(BaseSettings):
    """The root of the configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    address: str = Field(default="[::]:50051", description="gRPC listen address.")
    database_url: str = Field(
        default="sqlite+aiosqlite:///switchboard.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///FILE or "
        "postgresql+asyncpg://USER@HOST/DB.",
    )
    config: Path | None = Field(default=None, description="Optional YAML file of settings.")
    log_level: LogLevel = "info"
    log_payloads: bool = Field(
        default=False,
        description="Log task inputs and outputs at debug level (off: they never reach logs).",
    )
    metrics_address: str = Field(
        default="[::]:9464",
        description="HTTP listener for /metrics, /healthz and /readyz; empty turns it off.",
    )
    default_agent: str = Field(default="assistant", description="Runs tasks that name none.")
    agents: list[AgentConfig] = Field(default_factory=default_agents)
    redis_url: str | None = Field(
        default=None,
        description="redis://HOST:PORT/DB: share the result cache (and, with replicas, more) "
        "through Redis. Unset: everything stays in this process.",
    )
    redis_prefix: str = Field(
        default="switchboard:",
        description="Prefix of every Redis key this deployment writes (to share one Redis).",
    )
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @model_validator(mode="after")
    def _check_agents(self) -> Settings:
        names = [agent.name for agent in self.agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"agents: duplicate names {duplicates}")
        if self.default_agent not in names:
            raise ValueError(f"default_agent: {self.default_agent!r} is not one of {names}")
        for index, agent in enumerate(self.agents):
            for position, target in enumerate(agent.handoffs):
                if target not in names:
                    raise ValueError(
                        f"agents[{index}].handoffs[{position}]: no agent named {target!r}"
                    )
        return self

    def agent(self, name: str) -> AgentConfig | None:
        """The configuration of agent ``name``, if there is one."""
        return next((agent for agent in self.agents if agent.name == name), None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, then environment, then the YAML file (``SWITCHBOARD_CONFIG``)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path(init_settings())
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def _config_path(init_values: dict[str, Any]) -> Path | None:
    raw = init_values.get("config") or os.environ.get(CONFIG_ENV)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise FileNotFoundError(f"{CONFIG_ENV}: no such file: {path}")
    return path


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (e.g. from flags) win over every other source."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
