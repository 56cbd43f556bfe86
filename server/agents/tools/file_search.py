"""The local ``file_search``: rank the text files under a directory by query terms.

It serves agents whose provider does not host file search. A file scores one point per
occurrence of a query word (whole words, case-insensitively); files matching more of
the query's distinct words rank first, then higher scores, then paths in order. Each
hit shows the file's path (relative to the directory) and its best line.

Only regular UTF-8 text files are read, at most ``MAX_FILE_BYTES`` each and
``MAX_FILES`` in all; hidden files and directories are skipped. Nothing outside the
directory is ever read: symbolic links are followed only when they resolve inside it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_RESULTS = 5
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 5_000
SNIPPET_CHARS = 300

_WORD = re.compile(r"\w+")

FileSearch = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching file: its path under the directory, score and best line."""

    path: str
    distinct: int
    score: int
    line: int
    snippet: str


def search(directory: Path, query: str, limit: int = MAX_RESULTS) -> list[Hit]:
    """The ``limit`` best files under ``directory`` for ``query`` (see the module doc)."""
    terms = _terms(query)
    if not terms:
        raise ValueError("the query has no words to search for")
    root = directory.resolve()
    hits = [hit for path in _text_files(root) if (hit := _score(root, path, terms)) is not None]
    hits.sort(key=lambda hit: (-hit.distinct, -hit.score, hit.path))
    return hits[:limit]


def file_search_tool(directory: Path) -> FileSearch:
    """The local ``file_search`` function over ``directory`` (to wrap as a tool)."""

    def file_search(query: str) -> str:
        """Search the local document collection for files about a query.

        Returns the best matching files with their most relevant line.

        Args:
            query: Words to look for, e.g. "refund policy".

        """
        # Synchronous on purpose: the SDK runs synchronous tools in a worker thread.
        hits = search(directory, query)
        if not hits:
            return f"No file matches {query!r}."
        return "\n".join(
            f"{rank}. {hit.path} (line {hit.line}, score {hit.score}): {hit.snippet}"
            for rank, hit in enumerate(hits, start=1)
        )

    return file_search


def _terms(text: str) -> frozenset[str]:
    return frozenset(word.lower() for word in _WORD.findall(text))


def _text_files(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` that resolve inside it, in a stable order."""
    count = 0
    # os.walk does not descend into linked directories (followlinks=False).
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(files):
            path = Path(folder, name)
            if name.startswith(".") or not path.resolve().is_relative_to(root):
                continue
            if not path.is_file():
                continue
            yield path
            count += 1
            if count >= MAX_FILES:
                return


def _score(root: Path, path: Path, terms: frozenset[str]) -> Hit | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
        if b"\0" in data:  # binary
            return None
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):  # unreadable, or not text
        return None
    counts = Counter(word for word in _WORD.findall(text.lower()) if word in terms)
    if not counts:
        return None
    line, snippet = _best_line(text, terms)
    return Hit(
        path=path.relative_to(root).as_posix(),
        distinct=len(counts),
        score=sum(counts.values()),
        line=line,
        snippet=snippet,
    )


def _best_line(text: str, terms: frozenset[str]) -> tuple[int, str]:
    best, best_key = (0, ""), (0, 0)
    for number, line in enumerate(text.splitlines(), start=1):
        words = [word for word in _WORD.findall(line.lower()) if word in terms]
        key = (len(set(words)), len(words))
        if key > best_key:
            best, best_key = (number, line.strip()[:SNIPPET_CHARS]), key
    return best
