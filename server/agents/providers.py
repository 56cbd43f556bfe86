"""The model provider of each configured agent, and the HTTP client it owns.

``model_provider(agent, index)`` turns an agent's model string into a ``ProviderHandle``:
the ``ModelProvider`` handed to the Agents SDK with every run of that agent
(``RunConfig(model_provider=handle, model_settings=handle.model_settings)``), never
installed process-wide. Agents may point at different servers, so each gets its own
handle, and each handle its own ``AsyncOpenAI`` client:

- ``offline``: the ``OfflineModel``; no client, no network.
- ``openai:<model>``: the Responses API (``OpenAIResponsesModel``) at ``base_url``
  (default ``https://api.openai.com/v1``), key from the variable named by ``api_key_env``
  (default ``OPENAI_API_KEY``). The Responses API hosts ``web_search`` and ``file_search``.
- ``compat:<model>``: an OpenAI-compatible chat completions server at ``base_url``
  (``OpenAIChatCompletionsModel``), usage requested with every streamed call; key from
  ``api_key_env`` when set (servers that need none get a placeholder).

Clients never retry (``max_retries=0``): the orchestrator retries, within the task's
deadline. The deadline, enforced by cancelling the run (which closes the HTTP stream),
bounds a call; the client's own timeouts only catch a connection that cannot be opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import openai
from agents import (
    Model,
    ModelProvider,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    UserError,
)
from typing_extensions import override

from switchboard.server.agents.offline import OfflineModel
from switchboard.server.config import AgentConfig

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "no-key"
HOSTED_TOOLS = frozenset({"web_search", "file_search"})

# Reads and writes may stall as long as the longest task may run (the deadline cuts them
# first); a server that does not accept a connection soon is down: fail, so a retry fits.
DEFAULT_TIMEOUT = openai.Timeout(300.0, connect=10.0)

Timeout = float | openai.Timeout


class ProviderHandle(ModelProvider):
    """The models of one agent's provider, what runs on them need, and their client.

    ``get_model`` resolves ``None`` (the agent's own model), a model string of this
    provider (``openai:gpt-4o``) or a bare model name on it (``gpt-4o``), building each
    model once. ``aclose`` closes the HTTP client (its connection pool); it is idempotent.
    """

    def __init__(
        self,
        model: str,
        build: Callable[[str], Model],
        *,
        model_settings: ModelSettings | None = None,
        hosted_tools: frozenset[str] = frozenset(),
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.model = model
        self.model_settings = model_settings or ModelSettings()
        self.hosted_tools = hosted_tools
        self._build = build
        self._client = client
        self._prefix, self._colon, _name = model.partition(":")
        self._models: dict[str, Model] = {}

    @override
    def get_model(self, model_name: str | None) -> Model:
        """The model named ``model_name`` (this agent's when None), built on first use."""
        name = self._name_of(model_name or self.model)
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = self._build(name)
        return model

    @override
    async def aclose(self) -> None:
        """Close the HTTP client and its pooled connections (a no-op when closed)."""
        if self._client is not None and not self._client.is_closed():
            await self._client.close()

    def _name_of(self, model: str) -> str:
        prefix, colon, name = model.partition(":")
        if not colon:
            return model
        if not self._colon or prefix != self._prefix:
            raise UserError(
                f"model {model!r} is not served by this agent's provider {self.model!r}"
            )
        return name


def model_provider(
    agent: AgentConfig, index: int, *, timeout: Timeout = DEFAULT_TIMEOUT
) -> ProviderHandle:
    """The provider that runs ``agent`` (``agents[index]`` of the configuration).

    Raises ``ValueError`` naming the field (e.g. ``agents[2].api_key_env: OPENAI_API_KEY
    is not set``) when the agent cannot run: its key variable is unset or empty, or its
    model is not run by a model provider (``echo``). ``timeout`` bounds each phase of an
    HTTP call (connect, each read, each write).
    """
    provider = agent.provider
    if provider == "offline":
        return ProviderHandle(agent.model, lambda _name: OfflineModel())
    if provider == "openai":
        client = _client(
            agent.base_url or OPENAI_BASE_URL,
            _api_key(index, agent.api_key_env or OPENAI_KEY_ENV),
            timeout,
        )
        return ProviderHandle(
            agent.model,
            lambda name: OpenAIResponsesModel(model=name, openai_client=client),
            hosted_tools=HOSTED_TOOLS,
            client=client,
        )
    if provider == "compat":
        if not agent.base_url:
            raise ValueError(f"agents[{index}].base_url: required for a compat: model")
        key_env = agent.api_key_env
        client = _client(agent.base_url, _api_key(index, key_env) if key_env else None, timeout)
        return ProviderHandle(
            agent.model,
            lambda name: OpenAIChatCompletionsModel(model=name, openai_client=client),
            # Chat completions servers stream no usage unless asked to.
            model_settings=ModelSettings(include_usage=True),
            client=client,
        )
    raise ValueError(f"agents[{index}].model: {agent.model!r} is not run by a model provider")


def _api_key(index: int, env: str) -> str:
    key = os.environ.get(env, "")
    if not key:
        raise ValueError(f"agents[{index}].api_key_env: {env} is not set")
    return key


def _client(base_url: str, api_key: str | None, timeout: Timeout) -> openai.AsyncOpenAI:
    # The client insists on a key (or reads OPENAI_API_KEY, which belongs to OpenAI, not to
    # a local server): a server that needs none gets a placeholder.
    return openai.AsyncOpenAI(
        api_key=api_key or NO_KEY, base_url=base_url, max_retries=0, timeout=timeout
    )
