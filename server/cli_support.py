"""What every ``switchboard`` command shares: settings from flags, and failing clearly."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from switchboard.server.config import Settings, load_settings

USAGE_ERROR = 2


def database_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a command that opens the database."""
    parser.add_argument("--database-url", help="SQLAlchemy async URL of the task store")
    parser.add_argument("--config", help="YAML settings file (or SWITCHBOARD_CONFIG)")


def settings_from(**flags: Any) -> Settings:
    """The settings with ``flags`` on top; a bad setting exits 2 with a clear message."""
    try:
        return load_settings(**flags)
    except ValidationError as exc:
        problems = "; ".join(_problem(error["loc"], error["msg"]) for error in exc.errors())
        fail(f"invalid settings: {problems}")
    except FileNotFoundError as exc:
        fail(str(exc))
    except yaml.YAMLError as exc:
        fail(f"the settings file is not valid YAML: {exc}")


def _problem(location: tuple[int | str, ...], message: str) -> str:
    """One settings error as ``agents[0].model: must be ...``."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    message = message.removeprefix("Value error, ")
    # Checks across fields name their own field path in the message.
    return f"{path.lstrip('.')}: {message}" if path else message


def fail(message: str) -> NoReturn:
    """Print a settings problem and exit 2."""
    print(
        f"switchboard: {message}. Settings come from flags, SWITCHBOARD_* environment "
        "variables and the YAML file named by --config or SWITCHBOARD_CONFIG.",
        file=sys.stderr,
    )
    raise SystemExit(USAGE_ERROR)
