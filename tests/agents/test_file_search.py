"""The local file_search over a directory: ranking, snippets, limits, no escape."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.server.agents.tools import file_search as module
from switchboard.server.agents.tools.file_search import Hit, file_search_tool, search


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A document directory beside an ``outside`` one that must never be read."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "weather").mkdir(parents=True)
    outside.mkdir()
    (docs / "rain.txt").write_text("Rain is expected tomorrow.\nBring an UMBRELLA for the rain.\n")
    (docs / "weather" / "forecast.md").write_text("Forecast: sunny, no rain.\nUmbrella not needed.")
    (docs / "other.txt").write_text("Nothing relevant here; rainy days are not rain.")
    (docs / ".hidden.txt").write_text("rain umbrella rain rain umbrella")
    (docs / "binary.bin").write_bytes(b"rain umbrella\0rain umbrella rain")
    (docs / "latin1.txt").write_bytes("rain umbrella rain café".encode("latin-1"))
    (outside / "secret.txt").write_text("rain umbrella rain umbrella rain umbrella secret")
    (docs / "link.txt").symlink_to(outside / "secret.txt")
    (docs / "linked-dir").symlink_to(outside, target_is_directory=True)
    return docs


def test_files_matching_more_terms_and_more_often_rank_first(docs: Path) -> None:
    hits = search(docs, "rain umbrella")

    assert hits == [
        Hit("rain.txt", distinct=2, score=3, line=2, snippet="Bring an UMBRELLA for the rain."),
        Hit(
            "weather/forecast.md", distinct=2, score=2, line=1, snippet="Forecast: sunny, no rain."
        ),
        Hit("other.txt", distinct=1, score=1, line=1, snippet=hits[2].snippet),
    ]


def test_matching_is_by_whole_words_ignoring_case(docs: Path) -> None:
    assert [hit.path for hit in search(docs, "RAINY")] == ["other.txt"]
    assert [hit.path for hit in search(docs, "sunny")] == ["weather/forecast.md"]


def test_the_number_of_results_is_bounded(docs: Path) -> None:
    assert [hit.path for hit in search(docs, "rain", limit=1)] == ["rain.txt"]


def test_nothing_outside_the_directory_is_read_through_links(docs: Path) -> None:
    found = {hit.path for hit in search(docs, "secret rain umbrella")}

    assert found == {"rain.txt", "weather/forecast.md", "other.txt"}


def test_a_link_that_stays_inside_is_followed(docs: Path) -> None:
    (docs / "alias.txt").symlink_to(docs / "weather" / "forecast.md")

    assert [hit.path for hit in search(docs, "sunny")] == ["alias.txt", "weather/forecast.md"]


def test_a_directory_given_with_dot_dot_is_searched_as_itself(docs: Path) -> None:
    roundabout = docs / "weather" / ".." / ".." / "docs"

    assert [hit.path for hit in search(roundabout, "sunny")] == ["weather/forecast.md"]
    assert search(docs / "weather", "secret expected") == []


def test_hidden_binary_non_utf8_and_large_files_are_skipped(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "MAX_FILE_BYTES", 40)

    # rain.txt is over the limit now; forecast.md and other.txt are not.
    assert [hit.path for hit in search(docs, "umbrella")] == []
    assert [hit.path for hit in search(docs, "sunny")] == []
    (docs / "small.txt").write_text("umbrella")
    assert [hit.path for hit in search(docs, "umbrella")] == ["small.txt"]


def test_a_query_without_words_is_refused(docs: Path) -> None:
    with pytest.raises(ValueError, match="the query has no words"):
        search(docs, " ?! ... ")


def test_the_tool_lists_ranked_hits_with_their_best_line(docs: Path) -> None:
    file_search = file_search_tool(docs)

    assert file_search.__name__ == "file_search"
    assert file_search("umbrella sunny").splitlines() == [
        "1. weather/forecast.md (line 1, score 2): Forecast: sunny, no rain.",
        "2. rain.txt (line 2, score 1): Bring an UMBRELLA for the rain.",
    ]
    assert file_search("zebra") == "No file matches 'zebra'."
