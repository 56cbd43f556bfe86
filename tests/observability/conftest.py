"""Give the observability tests time to install promtool & co. when a machine lacks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.observability.tools import missing_tools

_HERE = Path(__file__).parent
# apt-get update + install of two packages, on a slow mirror.
_INSTALL_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Raise the timeout of this folder's tests when the tools must be installed first."""
    if not missing_tools():
        return
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.timeout(_INSTALL_TIMEOUT))
