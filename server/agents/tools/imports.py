"""Function tools named by import path: ``package.module:function``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def load_function(path: str) -> Callable[..., Any]:
    """The callable at ``path`` (``package.module:function``, or ``module:Class.method``).

    Raises ``ValueError`` saying what is wrong: no colon, a module that does not import,
    a missing attribute, or something that cannot be called.
    """
    module_name, colon, attribute = path.partition(":")
    if not (colon and module_name and attribute):
        raise ValueError(f"{path!r} is not an import path 'package.module:function'")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the module itself is broken: report it, not a traceback
        raise ValueError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, name)
    if not callable(target):
        raise ValueError(f"{path!r} is not callable")
    return target
