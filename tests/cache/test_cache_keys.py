"""The cache key: stable, sensitive to every field, blind to tool order, never ambiguous."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.cache import cache_key
from switchboard.server.domain import ToolKind, ToolRef

LOOKUP = ToolRef(ToolKind.FUNCTION, "lookup")
SEARCH = ToolRef(ToolKind.WEB_SEARCH)
BASE: dict[str, Any] = {
    "agent": "assistant",
    "model": "openai:gpt-4o-mini",
    "instructions": "Be brief.",
    "input": "What is 2 + 2?",
    "tools": (LOOKUP, SEARCH),
}


def _key(**changes: Any) -> str:
    return cache_key(**(BASE | changes))


def test_the_same_request_always_has_the_same_key() -> None:
    key = _key()
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert _key() == key
    # Pinned: a change of encoding orphans every entry in a shared Redis, so it must
    # be deliberate (and come with a new version number in the key).
    assert key == "29f30b2e88baa3e2de466537f02f6e9b80f3094855cde0b092c2c3335bb8f593"


@pytest.mark.parametrize(
    "change",
    [
        {"agent": "writer"},
        {"model": "openai:gpt-4o"},
        {"instructions": "Be thorough."},
        {"instructions": ""},
        {"input": "What is 2 + 3?"},
        {"input": "what is 2 + 2?"},
        {"tools": (LOOKUP,)},
        {"tools": ()},
        {"tools": (ToolRef(ToolKind.FUNCTION, "lookup2"), SEARCH)},
        {"tools": (LOOKUP, ToolRef(ToolKind.FILE_SEARCH))},
    ],
    ids=lambda change: ",".join(f"{k}={v!r}" for k, v in change.items()),
)
def test_every_field_changes_the_key(change: dict[str, Any]) -> None:
    assert _key(**change) != _key()


def test_tool_order_and_repeats_do_not_change_the_key() -> None:
    assert _key(tools=[SEARCH, LOOKUP]) == _key()
    assert _key(tools=(LOOKUP, SEARCH, LOOKUP)) == _key()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"agent": "ab", "model": "c"}, {"agent": "a", "model": "bc"}),
        ({"instructions": "ab", "input": "c"}, {"instructions": "a", "input": "bc"}),
        ({"instructions": "a\x00", "input": "b"}, {"instructions": "a", "input": "\x00b"}),
        ({"input": 'x","tools":[]'}, {"input": "x", "tools": ()}),
        ({"tools": (ToolRef(ToolKind.FUNCTION, "web_search"),)}, {"tools": (SEARCH,)}),
        (
            {"tools": (ToolRef(ToolKind.FUNCTION, "a,b"),)},
            {"tools": (ToolRef(ToolKind.FUNCTION, "a"), ToolRef(ToolKind.FUNCTION, "b"))},
        ),
    ],
)
def test_no_two_requests_share_an_encoding(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert _key(**one) != _key(**other)


def test_text_beyond_ascii_is_hashed_as_given() -> None:
    assert _key(input="Grüße 🌍") != _key(input="Grusse 🌍")
    assert _key(input="é") != _key(input="e\u0301")  # no normalisation: the model sees bytes
