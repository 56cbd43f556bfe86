"""Which SDK ``Model`` runs an agent's model string.

A ``ModelRegistry`` is the ``ModelProvider`` handed to the Agents SDK with every run
(``RunConfig(model_provider=...)``), never installed process-wide. It resolves a model
string through a table of factories keyed by the string's prefix: a bare name
(``offline``) names itself; a name with a colon (``openai:gpt-4o``) is looked up by its
prefix (``openai:``) and the factory gets the rest (``gpt-4o``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agents import Model, ModelProvider, UserError
from typing_extensions import override

from switchboard.server.agents.offline import OfflineModel

ModelFactory = Callable[[str], Model]

DEFAULT_MODELS: Mapping[str, ModelFactory] = {"offline": lambda _name: OfflineModel()}


class ModelRegistry(ModelProvider):
    """Resolves model strings to SDK models, building each one once."""

    def __init__(self, factories: Mapping[str, ModelFactory] = DEFAULT_MODELS) -> None:
        self._factories = dict(factories)
        self._models: dict[str, Model] = {}

    @property
    def names(self) -> list[str]:
        """The accepted model strings, or their prefixes (ending in a colon)."""
        return list(self._factories)

    def supports(self, model: str) -> bool:
        """True when ``model`` resolves to a factory."""
        return _key(model) in self._factories

    @override
    def get_model(self, model_name: str | None) -> Model:
        """The model named ``model_name`` (built on first use, then reused)."""
        name = model_name or ""
        model = self._models.get(name)
        if model is None:
            factory = self._factories.get(_key(name))
            if factory is None:
                raise UserError(f"unknown model {name!r} (expected one of {self.names})")
            model = self._models[name] = factory(name.partition(":")[2])
        return model


def _key(model: str) -> str:
    prefix, colon, _rest = model.partition(":")
    return prefix + colon
