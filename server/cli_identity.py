"""``switchboard user`` and ``switchboard token``: the built-in identity's commands."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from switchboard.server.cli_support import USAGE_ERROR, database_flags, fail, settings_from

if TYPE_CHECKING:
    from switchboard.server.config import Settings
    from switchboard.server.store import UserStore

_T = TypeVar("_T")


def add_user_commands(commands: Any) -> None:
    """``switchboard user add|list|disable|enable``."""
    user = commands.add_parser(
        "user",
        help="manage the users of built-in login (AuthService.Login)",
        description="Users live in the server's database; auth.login.enabled lets them log in.",
    )
    actions = user.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="add a user (asks for the password)",
        description="Add a user. The password is asked for on a terminal, otherwise (or "
        "with --password-stdin) read from standard input; 8 characters at least.",
    )
    add.add_argument("username", metavar="USERNAME")
    _scope_flags(add)
    add.add_argument("--owner", help="tenant owning the user's tasks (needs auth.tenant_claim)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    database_flags(add)
    add.set_defaults(command=_user_add)

    listing = actions.add_parser("list", help="list the users")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    database_flags(listing)
    listing.set_defaults(command=_user_list)

    for name, disabled, text in (
        ("disable", True, "refuse the user's logins (tokens already issued run out)"),
        ("enable", False, "let a disabled user log in again"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("username", metavar="USERNAME")
        database_flags(action)
        action.set_defaults(command=_set_disabled, disabled=disabled)


def add_token_command(commands: Any) -> None:
    """``switchboard token``."""
    token = commands.add_parser(
        "token",
        help="print a token signed with the configured key (for operators)",
        description="Mint a JWT with the server's signing key (auth.algorithms[0]: auth.secret "
        "for HS*, auth.login.private_key_file for RS/PS/ES) and print it.",
    )
    token.add_argument(
        "--sub", required=True, type=_non_empty, metavar="SUBJECT", help="the token's subject"
    )
    _scope_flags(token)
    token.add_argument(
        "--ttl",
        type=_positive_int,
        metavar="SECONDS",
        help="lifetime (default: auth.login.token_ttl)",
    )
    token.add_argument("--owner", help="tenant owning the caller's tasks (needs auth.tenant_claim)")
    token.add_argument("--config", help="YAML settings file (or SWITCHBOARD_CONFIG)")
    token.set_defaults(command=_token)


def _scope_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        metavar="SCOPE",
        help="grant this scope (repeatable): tasks:read, tasks:write, agents:read or admin; "
        "default: the first three",
    )


def _non_empty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _user_add(args: argparse.Namespace) -> int:
    from switchboard.server.auth.passwords import (  # noqa: PLC0415 - see _serve
        check_new_password,
        hash_password,
    )
    from switchboard.server.store import User, UserExists  # noqa: PLC0415 - see _serve
    from switchboard.server.store.users import check_username  # noqa: PLC0415 - see _serve

    settings = settings_from(database_url=args.database_url, config=args.config)
    scopes = _scopes(args.scopes)
    try:
        check_username(args.username)
        password = _read_password(from_stdin=args.password_stdin)
        check_new_password(password)
    except ValueError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.owner and settings.auth.tenant_claim is None:
        print(
            "switchboard: warning: auth.tenant_claim is not set, so the owner is not in this "
            "user's tokens: their tasks belong to the user name until it is set",
            file=sys.stderr,
        )
    user = User(
        username=args.username,
        password_hash=hash_password(password),
        scopes=scopes,
        owner=args.owner or None,
    )
    try:
        _on_users(settings, lambda users: users.add_user(user))
    except UserExists as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    print(f"switchboard: added user {user.username!r} ({' '.join(user.scopes)})")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    settings = settings_from(database_url=args.database_url, config=args.config)
    users = _on_users(settings, lambda store: store.list_users())
    if not args.json:
        print("USERNAME\tSCOPES\tOWNER\tCREATED\tSTATE")
    for user in users:
        if args.json:
            row = {
                "username": user.username,
                "scopes": list(user.scopes),
                "owner": user.owner,
                "created_at": user.created_at.isoformat(),
                "disabled": user.disabled,
            }
            print(json.dumps(row))
        else:
            state = "disabled" if user.disabled else "enabled"
            print(
                f"{user.username}\t{' '.join(user.scopes)}\t{user.owner or '-'}\t"
                f"{user.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}"
            )
    return 0


def _set_disabled(args: argparse.Namespace) -> int:
    settings = settings_from(database_url=args.database_url, config=args.config)
    found = _on_users(settings, lambda users: users.set_disabled(args.username, args.disabled))
    if not found:
        print(f"switchboard: no user named {args.username!r}", file=sys.stderr)
        return 1
    print(f"switchboard: user {args.username!r} {'disabled' if args.disabled else 'enabled'}")
    return 0


def _on_users(settings: Settings, work: Callable[[UserStore], Awaitable[_T]]) -> _T:
    """Run ``work`` on the user store; exit 1 when the database fails."""
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - see _serve

    from switchboard.server.store import UserStore  # noqa: PLC0415 - see _serve

    async def run() -> _T:
        users = await UserStore.open(settings.database_url, migrate=settings.store.auto_migrate)
        try:
            return await work(users)
        finally:
            await users.close()

    try:
        return asyncio.run(run())
    except (OSError, SQLAlchemyError) as exc:
        print(f"switchboard: the user store failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc


def _scopes(chosen: list[str] | None) -> tuple[str, ...]:
    """The scopes asked for (default: every one but admin); exit 2 on an unknown one."""
    from switchboard.server.auth.identity import ADMIN_SCOPE  # noqa: PLC0415 - see _serve
    from switchboard.server.auth.permissions import (  # noqa: PLC0415 - see _serve
        AGENTS_READ,
        TASKS_READ,
        TASKS_WRITE,
    )

    default = (TASKS_READ, TASKS_WRITE, AGENTS_READ)
    known = (*default, ADMIN_SCOPE)
    unknown = [scope for scope in chosen or () if scope not in known]
    if unknown:
        print(f"switchboard: unknown scope {unknown[0]!r}: use {', '.join(known)}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR)
    return tuple(dict.fromkeys(chosen or default))


def _read_password(*, from_stdin: bool) -> str:
    """The new user's password: asked twice on a terminal, else standard input's text."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.read().rstrip("\r\n")
    password: str = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise ValueError("the passwords differ")
    return password


def _token(args: argparse.Namespace) -> int:
    from switchboard.server.auth.tokens import mint_token  # noqa: PLC0415 - see _serve

    auth = settings_from(config=args.config).auth
    scopes = _scopes(args.scopes)
    if args.owner and auth.tenant_claim is None:
        fail("--owner needs auth.tenant_claim (the claim naming the owner)")
    ttl = timedelta(seconds=args.ttl) if args.ttl else auth.login.token_ttl
    try:
        token, expires = mint_token(
            auth,
            subject=args.sub,
            scopes=scopes,
            owner=args.owner,
            ttl=ttl,
        )
    except ValueError as exc:
        fail(f"invalid settings: {exc}")
    print(token)
    print(f"switchboard: the token expires at {expires.isoformat()}", file=sys.stderr)
    if auth.mode == "none":
        print("switchboard: note: auth.mode is 'none': the server checks no token", file=sys.stderr)
    return 0
