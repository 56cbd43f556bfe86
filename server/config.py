"""Every setting of the server, in one pydantic-settings tree.

Sources, strongest first: command-line flags (passed as init values), environment
variables ``SWITCHBOARD_*`` (nested with ``__``, e.g. ``SWITCHBOARD_QUEUE__MAX_CONCURRENCY``),
the YAML file named by ``SWITCHBOARD_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV = "SWITCHBOARD_CONFIG"
_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LogLevel = Literal["debug", "info", "warning", "error"]


def _seconds(value: Any) -> Any:
    # A bare number is seconds, also as text (environment variables are text), as in YAML.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds)]
"""A duration: seconds as a number, or ISO 8601 (PT1M30S) or HH:MM:SS."""


_MODEL = re.compile(r"^(offline|echo|(openai|compat):[\w.:/@-]+)$")


class RetryConfig(BaseModel):
    """Attempts at a task whose provider failed transiently (429, 5xx, timeouts...)."""

    model_config = {"extra": "forbid"}

    attempts: int = Field(default=3, ge=1, le=10, description="Runs per task at most.")
    initial_backoff: Duration = Field(
        default=timedelta(milliseconds=500), description="Wait before the second attempt."
    )
    max_backoff: Duration = Field(
        default=timedelta(seconds=10), description="Longest wait between attempts."
    )


class BreakerConfig(BaseModel):
    """The agent's circuit breaker: fail fast while its provider keeps failing."""

    model_config = {"extra": "forbid"}

    failure_threshold: int = Field(
        default=5,
        ge=1,
        description="Consecutive tasks that failed on the provider (after their retries) "
        "that open the breaker.",
    )
    reset_timeout: Duration = Field(
        default=timedelta(seconds=60), description="How long it stays open before probing."
    )
    success_threshold: int = Field(
        default=3, ge=1, description="Successful probes (half-open) that close it again."
    )


class AgentConfig(BaseModel):
    """One agent: its model, what it may use, and how much of it may run at once."""

    model_config = {"extra": "forbid"}

    name: str = Field(description="Id clients name in TaskSpec.agent (lowercase, 1-63 chars).")
    description: str = ""
    model: str = Field(
        default="offline",
        description="'offline' (deterministic, no network, through the Agents SDK), 'echo' "
        "(returns the input, skips the model), 'openai:<model>' (OpenAI Responses API) or "
        "'compat:<model>' (an OpenAI-compatible chat completions server at base_url).",
    )
    base_url: str | None = Field(
        default=None,
        description="The provider's API root, e.g. http://localhost:11434/v1 (required for "
        "compat: models; for openai: models it replaces api.openai.com).",
    )
    api_key_env: str | None = Field(
        default=None,
        description="The environment variable holding the provider's API key "
        "(openai: models default to OPENAI_API_KEY; compat: servers may need none).",
    )
    instructions: str = Field(default="", description="System instructions for every task.")
    tools: list[str] = Field(
        default_factory=list,
        description="Tools it may use: built-ins (calculator, current_time, http_fetch), "
        "web_search, file_search, or function tools by import path 'package.module:function'.",
    )
    handoffs: list[str] = Field(
        default_factory=list, description="Agents (by name) it may hand a task off to."
    )
    max_concurrency: int = Field(default=10, ge=1, le=10_000)
    timeout: Duration = Field(
        default=timedelta(seconds=30), description="Default task timeout (1 s..300 s)."
    )
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    cache_ttl: Duration = Field(
        default=timedelta(hours=1),
        description="How long a result is reused for the same request; 0 turns caching off.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _AGENT_NAME.match(value):
            raise ValueError("must match ^[a-z][a-z0-9_-]{0,62}$")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if not _MODEL.match(value):
            raise ValueError("must be 'offline', 'echo', 'openai:<model>' or 'compat:<model>'")
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(seconds=300):
            raise ValueError("must be between 1 s and 300 s")
        return value

    @model_validator(mode="after")
    def _check_provider(self) -> AgentConfig:
        if self.model.startswith("compat:") and not self.base_url:
            raise ValueError("base_url is required for a compat: model")
        if self.name in self.handoffs:
            raise ValueError("handoffs: an agent cannot hand off to itself")
        return self

    @property
    def provider(self) -> str:
        """``offline``, ``echo``, ``openai`` or ``compat``."""
        return self.model.partition(":")[0]


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

    flush_interval: Duration = Field(
        default=timedelta(milliseconds=10),
        description="How long the event writer gathers events into one commit.",
    )
    max_batch: int = Field(default=500, ge=1, description="Events per commit at most.")
    shutdown_write_timeout: Duration = Field(
        default=timedelta(seconds=5),
        description="At shutdown, how long to keep retrying event writes the store refuses.",
    )
    auto_migrate: bool = Field(
        default=True,
        description="Apply migrations at start (off in production: run `switchboard migrate`).",
    )


class ToolsConfig(BaseModel):
    """Settings of the built-in tools, shared by every agent that uses them."""

    model_config = {"extra": "forbid"}

    file_search_dir: Path | None = Field(
        default=None,
        description="Directory that the local file_search tool searches (for providers "
        "that do not host file search).",
    )
    vector_store_ids: list[str] = Field(
        default_factory=list,
        description="OpenAI vector stores that the hosted file_search searches.",
    )
    http_allow: list[str] = Field(
        default_factory=list,
        description="Hosts http_fetch may fetch from (exact names, or '*.example.com').",
    )
    http_timeout: Duration = Field(default=timedelta(seconds=10))
    http_max_bytes: int = Field(default=200_000, ge=1, description="Largest body returned.")


class ServerConfig(BaseModel):
    """The gRPC listener and its shutdown."""

    model_config = {"extra": "forbid"}

    grace_period: Duration = Field(
        default=timedelta(seconds=20),
        description="On SIGTERM, how long in-flight calls and tasks may finish.",
    )
    drain_delay: Duration = Field(
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
