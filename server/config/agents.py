"""Settings of the agents and of the tools they share."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from switchboard.server.config.types import Duration

_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
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


def default_agents() -> list[AgentConfig]:
    """The agents of a server whose settings name none: offline and echo."""
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
