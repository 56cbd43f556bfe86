"""``switchboard user`` and ``switchboard token`` as an operator runs them.

The main paths run the real console script as a subprocess; refusals run ``main``
in-process (same code, no interpreter start each).
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from switchboard.server.auth import Caller, TokenVerifier
from switchboard.server.auth.login import Authenticator
from switchboard.server.cli import main
from switchboard.server.domain import Unauthenticated
from switchboard.server.store import UserStore
from tests.auth.tokens import AUDIENCE, ISSUER, SECRET, hs_config

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
PASSWORD = "a long enough password"
JWT_ENV = {
    "SWITCHBOARD_AUTH__MODE": "jwt",
    "SWITCHBOARD_AUTH__SECRET": SECRET,
    "SWITCHBOARD_AUTH__ISSUER": ISSUER,
    "SWITCHBOARD_AUTH__AUDIENCE": AUDIENCE,
}


@pytest.fixture(autouse=True)
def database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """No SWITCHBOARD_* setting but a fresh SQLite database; work in tmp_path."""
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", url)
    return url


def switchboard(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SWITCHBOARD, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        status = main(list(args))
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def _login(url: str, username: str, password: str) -> Caller:
    users = await UserStore.open(url)
    try:
        config = hs_config(login={"enabled": True})
        issued = await Authenticator(users, config).login(username, password)
        return await TokenVerifier(config).verify(issued.token)
    finally:
        await users.close()


async def test_add_list_disable_enable_then_log_in(database: str) -> None:
    added = switchboard("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added user 'alice' (tasks:read tasks:write agents:read)" in added.stdout
    admin = switchboard(
        "user", "add", "root", "--scope", "admin", "--owner", "acme", stdin=PASSWORD
    )
    assert admin.returncode == 0, admin.stderr
    # No tenant claim configured: the owner is stored but would not reach tokens.
    assert "auth.tenant_claim is not set" in admin.stderr
    assert switchboard("user", "disable", "alice").stdout == "switchboard: user 'alice' disabled\n"

    listed = switchboard("user", "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(row["username"], row["scopes"], row["owner"], row["disabled"]) for row in rows] == [
        ("alice", ["tasks:read", "tasks:write", "agents:read"], None, True),
        ("root", ["admin"], "acme", False),
    ]
    table = switchboard("user", "list").stdout.splitlines()
    assert table[0].split("\t") == ["USERNAME", "SCOPES", "OWNER", "CREATED", "STATE"]
    assert table[2].split("\t")[:3] == ["root", "admin", "acme"]
    assert table[2].endswith("\tenabled")

    with pytest.raises(Unauthenticated):
        await _login(database, "alice", PASSWORD)
    assert switchboard("user", "enable", "alice").returncode == 0
    caller = await _login(database, "alice", PASSWORD)
    assert caller == Caller(
        "alice", "alice", frozenset({"tasks:read", "tasks:write", "agents:read"})
    )
    assert PASSWORD not in (Path.cwd() / "switchboard.db").read_bytes().decode("latin-1")


def _add_on_a_terminal(username: str, *answers: str) -> tuple[int, str]:
    """Run ``switchboard user add`` on a pseudo-terminal, typing each answer at its prompt."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child, whose controlling terminal is the pty
        os.execv(SWITCHBOARD, [SWITCHBOARD, "user", "add", username])
    output = b""
    try:
        for answer, prompt in zip(answers, (b"Password: ", b"Repeat the password: "), strict=True):
            while prompt not in output:
                output += os.read(terminal, 1024)
            os.write(terminal, answer.encode() + b"\n")
        while chunk := _read(terminal):
            output += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    return os.waitstatus_to_exitcode(status), output.decode()


def _read(terminal: int) -> bytes:
    try:
        return os.read(terminal, 1024)
    except OSError:  # EIO: the child has closed the terminal
        return b""


def test_the_password_is_asked_twice_on_a_terminal() -> None:
    status, output = _add_on_a_terminal("carol", PASSWORD, "something else")
    assert status == 2
    assert "the passwords differ" in output
    assert PASSWORD not in output  # getpass does not echo

    status, output = _add_on_a_terminal("carol", PASSWORD, PASSWORD)
    assert status == 0, output
    assert "added user 'carol'" in output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["alice"], "short", "a password needs at least 8 characters"),
        (["alice"], "", "a password needs at least 8 characters"),
        (["alice"], "x" * 1025, "a password has at most 1024 characters"),
        (["two words"], PASSWORD, "invalid user name 'two words'"),
        (["alice", "--scope", "task:write"], PASSWORD, "unknown scope 'task:write'"),
    ],
)
def test_bad_users_are_refused_and_nothing_is_added(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    status, _, err = run_main(capsys, monkeypatch, "user", "add", *args, stdin=stdin)
    assert status == 2
    assert message in err
    status, out, _ = run_main(capsys, monkeypatch, "user", "list", "--json")
    assert (status, out) == (0, "")


def test_a_taken_name_and_a_missing_user_fail(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_main(capsys, monkeypatch, "user", "add", "alice", stdin=PASSWORD)[0] == 0
    status, _, err = run_main(capsys, monkeypatch, "user", "add", "alice", stdin=PASSWORD)
    assert (status, err) == (1, "switchboard: user 'alice' exists already\n")
    status, _, err = run_main(capsys, monkeypatch, "user", "disable", "bob")
    assert (status, err) == (1, "switchboard: no user named 'bob'\n")


def test_an_unreachable_or_unmigrated_database_fails_cleanly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    down = "postgresql+asyncpg://postgres@127.0.0.1:1/switchboard"
    status, _, err = run_main(capsys, monkeypatch, "user", "list", "--database-url", down)
    assert status == 1
    assert err.startswith("switchboard: the user store failed:")
    monkeypatch.setenv("SWITCHBOARD_STORE__AUTO_MIGRATE", "false")
    status, _, err = run_main(capsys, monkeypatch, "user", "list")
    assert status == 1
    assert "no such table: users" in err


async def test_an_operator_token_verifies() -> None:
    env = JWT_ENV | {"SWITCHBOARD_AUTH__TENANT_CLAIM": "org"}
    minted = switchboard(
        "token", "--sub", "ci-bot", "--scope", "tasks:write", "--ttl", "120", "--owner", "acme",
        env=env,
    )  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert minted.stdout == token + "\n"  # the token alone on stdout, for $(...)
    assert "the token expires at" in minted.stderr
    config = hs_config(tenant_claim="org")
    assert await TokenVerifier(config).verify(token) == Caller(
        "ci-bot", "acme", frozenset({"tasks:write"})
    )


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, [], "auth.secret: required to sign HS256 tokens"),
        ({"SWITCHBOARD_AUTH__SECRET": "short"}, [], "auth.secret: must be at least 32 bytes"),
        (JWT_ENV, ["--owner", "acme"], "--owner needs auth.tenant_claim"),
        (JWT_ENV, ["--scope", "everything"], "unknown scope 'everything'"),
    ],
)
def test_token_refusals(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    status, out, err = run_main(capsys, monkeypatch, "token", "--sub", "ops", *args)
    assert (status, out) == (2, "")
    assert message in err


def test_token_defaults_and_a_note_when_the_server_checks_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_AUTH__SECRET", SECRET)
    status, out, err = run_main(capsys, monkeypatch, "token", "--sub", "ops")
    assert status == 0
    assert "auth.mode is 'none'" in err
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    # The default lifetime (auth.login.token_ttl, 1 h) and every scope but admin.
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["scope"] == "tasks:read tasks:write agents:read"
