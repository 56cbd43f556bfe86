"""Functions that agents in the tests use as tools, by import path."""

from __future__ import annotations

import asyncio

NOT_CALLABLE = 42


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


def explode(reason: str) -> str:
    """Fail, always.

    Args:
        reason: What the failure says.
    """
    raise RuntimeError(reason)


class Letters:
    """Tools as static methods: found by ``module:Class.method``."""

    @staticmethod
    def count(text: str) -> int:
        """Count the letters in a text.

        Args:
            text: The text whose letters to count.
        """
        return sum(character.isalpha() for character in text)


def takes_a_loop(loop: asyncio.AbstractEventLoop) -> str:
    """Takes a parameter that has no JSON schema."""
    return repr(loop)
