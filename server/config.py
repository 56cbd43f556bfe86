"""Every setting of the server, in one pydantic-settings tree.

Sources, strongest first: command-line flags (passed as init values), environment
variables ``SWITCHBOARD_*`` (nested with ``__``, e.g. ``SWITCHBOARD_QUEUE__MAX_CONCURRENCY``),
the YAML file named by ``SWITCHBOARD_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV = "SWITCHBOARD_CONFIG"
_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LogLevel = Literal["debug", "info", "warning", "error"]


class AgentConfig(BaseModel):
    """One agent: what it runs on and how much of it may run at once."""

    model_config = {"extra": "forbid"}

    name: str = Field(description="Id clients name in TaskSpec.agent (lowercase, 1-63 chars).")
    description: str = ""
    model: str = Field(
        default="offline",
        description="'offline' (deterministic, no network, through the Agents SDK) or 'echo' "
        "(returns the input, skips the model).",
    )
    instructions: str = Field(default="", description="System instructions for every task.")
    max_concurrency: int = Field(default=10, ge=1, le=10_000)
    timeout: timedelta = Field(
        default=timedelta(seconds=30), description="Default task timeout (1 s..300 s)."
    )
    retry_attempts: int = Field(default=3, ge=1, le=10, description="Runs per task at most.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _AGENT_NAME.match(value):
            raise ValueError("must match ^[a-z][a-z0-9_-]{0,62}$")
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(seconds=300):
            raise ValueError("must be between 1 s and 300 s")
        return value


def _default_agents() -> list[AgentConfig]:
    return [
        AgentConfig(
            name="assistant",
            description="General assistant on the offline model (no network needed).",
            model="offline",
        ),
        AgentConfig(
            name="echo",
            description="Returns its input unchanged; skips the model (measures overhead).",
            model="echo",
        ),
    ]


class QueueConfig(BaseModel):
    """Scheduling: how many tasks run at once and how many may wait."""

    model_config = {"extra": "forbid"}

    max_concurrency: int = Field(default=10, ge=1, le=10_000, description="Global cap.")
    max_queued: int = Field(
        default=10_000, ge=1, description="Queued tasks beyond this are refused."
    )


class StoreConfig(BaseModel):
    """How events reach the database."""

    model_config = {"extra": "forbid"}

    flush_interval: timedelta = Field(
        default=timedelta(milliseconds=10),
        description="How long the event writer gathers events into one commit.",
    )
    max_batch: int = Field(default=500, ge=1, description="Events per commit at most.")
    shutdown_write_timeout: timedelta = Field(
        default=timedelta(seconds=5),
        description="At shutdown, how long to keep retrying event writes the store refuses.",
    )
    auto_migrate: bool = Field(
        default=True,
        description="Apply migrations at start (off in production: run `switchboard migrate`).",
    )


class ServerConfig(BaseModel):
    """The gRPC listener and its shutdown."""

    model_config = {"extra": "forbid"}

    grace_period: timedelta = Field(
        default=timedelta(seconds=20),
        description="On SIGTERM, how long in-flight calls and tasks may finish.",
    )
    drain_delay: timedelta = Field(
        default=timedelta(0),
        description="On SIGTERM, how long to keep serving after readiness goes NOT_SERVING, "
        "so load balancers stop sending calls first (e.g. 5 s on Kubernetes).",
    )
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request or response."
    )


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
    default_agent: str = Field(default="assistant", description="Runs tasks that name none.")
    agents: list[AgentConfig] = Field(default_factory=_default_agents)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _check_agents(self) -> Settings:
        names = [agent.name for agent in self.agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"agents: duplicate names {duplicates}")
        if self.default_agent not in names:
            raise ValueError(f"default_agent: {self.default_agent!r} is not one of {names}")
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
