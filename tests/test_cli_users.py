"""`alerts users …` as an operator runs it: real child processes on a real database; the
password prompt driven through a pseudo-terminal."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.accounts import users
from alerts.core.errors import Unauthorized
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.models import AuditEntry, User
from tests.test_cli import CLI, Run


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> CLI:
    return CLI(db_url, tmp_path)


async def _user(db_url: str, name: str, password: str | None = None) -> User | None:
    """The user row; with ``password``, only if that password signs them in."""
    engine = create_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            if password is not None:
                try:
                    return await users.authenticate_password(session, name, password)
                except Unauthorized:
                    return None
            return await session.scalar(select(User).where(User.name == name))
    finally:
        await engine.dispose()


async def _prompted(cli: CLI, *args: str, answers: list[tuple[bytes, bytes]]) -> Run:
    """Run ``alerts ARGS`` with a pseudo-terminal as stdin, answering each prompt as it comes
    (not before: getpass flushes what was typed ahead)."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alerts",
        *args,
        cwd=cli.cwd,
        env=cli.env,
        stdin=slave,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # no controlling terminal: getpass reads the pty on stdin
    )
    os.close(slave)
    assert proc.stderr is not None
    err = b""
    try:
        for prompt, answer in answers:
            while prompt not in err:
                chunk = await asyncio.wait_for(proc.stderr.read(256), timeout=60)
                assert chunk, f"no prompt {prompt!r}; stderr: {err!r}"
                err += chunk
            os.write(master, answer + b"\n")
        out, rest = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        os.close(master)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), (err + rest).decode())


async def test_add_without_a_password_or_a_terminal_refuses_instead_of_a_user_who_cannot_sign_in(
    cli: CLI, db_url: str
) -> None:
    run = await cli("users", "add", "olga", "--role", "officer", stdin=b"")
    assert run.code == 2, run
    assert run.err.count("\n") == 1 and "--no-password" in run.err
    assert await _user(db_url, "olga") is None


async def test_add_asks_for_the_password_twice(cli: CLI, db_url: str) -> None:
    asked = [(b"Password for olga: ", b"olga password"), (b"Repeat the password: ", b"olga password")]
    run = await _prompted(cli, "users", "add", "olga", "--role", "officer", answers=asked)
    assert run.code == 0, run
    assert run.out == "" and "olga password" not in run.err
    assert await _user(db_url, "olga", "olga password") is not None
    asked = [(b"Password for omar: ", b"omar password"), (b"Repeat the password: ", b"omar passwort")]
    run = await _prompted(cli, "users", "add", "omar", "--role", "officer", answers=asked)
    assert (run.code, run.err.splitlines()[-1]) == (
        2,
        "alerts: password: the two entries do not match; nothing changed",
    )
    assert await _user(db_url, "omar") is None


async def test_passwd_disable_enable_token_and_list(cli: CLI, db_url: str) -> None:
    run = await cli(
        "users", "add", "olga", "--role", "officer", "--no-password", "--email", "olga@example.org"
    )
    assert run.code == 0, run
    assert run.err.splitlines() == [
        "user olga (officer) added",
        "user olga cannot sign in until a password is set: alerts users passwd olga",
    ]
    for args, stdin, message in [  # refusals: one line on stderr, exit 2
        (("disable", "nobody"), b"", "alerts: user 'nobody' does not exist"),
        (("passwd", "olga", "--password-stdin"), b"short\n", "alerts: password: shorter than 8 characters"),
        (("passwd", "olga"), b"", "alerts: no password given and no terminal to ask for one"),
    ]:
        run = await cli("users", *args, stdin=stdin)
        assert run.code == 2 and run.err.count("\n") == 1 and run.err.startswith(message), run
    run = await cli("users", "passwd", "olga", "--password-stdin", stdin=b"olga password\n")
    assert (run.code, run.err) == (0, "password of olga set; their sessions have ended\n"), run
    assert await _user(db_url, "olga", "olga password") is not None

    run = await cli("users", "token", "olga")
    assert run.code == 0, run
    token = run.out.strip()
    assert len(token) >= 43 and run.out == token + "\n"
    assert run.err == "new API token for olga (shown once)\n"
    run = await cli("users", "disable", "olga")
    assert (run.code, run.err) == (
        0,
        "user olga disabled: their sessions have ended and their API token is revoked\n",
    )
    assert (await cli("users", "disable", "olga")).err == "user olga was already disabled\n"
    assert (await cli("users", "enable", "olga")).err == "user olga enabled\n"
    run = await cli("users", "token", "olga", "--revoke")
    assert (run.code, run.out, run.err) == (0, "", "revoked 0 API token(s) of olga\n")  # disabling did

    run = await cli("users", "list", "--json")
    assert run.code == 0, run
    [olga] = json.loads(run.out)
    assert {k: olga[k] for k in ("name", "role", "email", "active", "has_password", "has_token")} == {
        "name": "olga",
        "role": "officer",
        "email": "olga@example.org",
        "active": True,
        "has_password": True,
        "has_token": False,
    }
    run = await cli("users", "list")
    assert run.out == f"{olga['id']}\tolga\tofficer\tactive\tpassword\t-\t-\n"
    assert (await cli("users", "token", "olga", "--read-only")).code == 0
    run = await cli("users", "list")
    assert run.out == f"{olga['id']}\tolga\tofficer\tactive\tpassword\tread-only-token\t-\n"

    engine = create_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    finally:
        await engine.dispose()
    assert [(e.user_id, e.action) for e in entries] == [
        (None, "user.create"),
        (None, "user.set_password"),
        (None, "user.new_token"),
        (None, "user.deactivate"),
        (None, "user.activate"),
        (None, "user.revoke_tokens"),
        (None, "user.new_token"),
    ]
    assert token not in str([e.details for e in entries])


async def test_commands_without_as_act_as_the_first_active_admin(cli: CLI, db_url: str) -> None:
    """Disabling the first admin must not leave every command without ``--as`` refused."""
    assert (await cli("init", "--password", "correct horse battery")).code == 0
    assert (await cli("users", "add", "ada", "--role", "admin", "--no-password")).code == 0
    assert (await cli("users", "disable", "admin")).code == 0
    example = Path(__file__).resolve().parent.parent / "templates" / "urgent-appeal" / "example.toml"
    made = await cli("alert", "create", "--template", "urgent-appeal", "--data", str(example), "--list", "x")
    assert made.code == 0 and made.out.strip().isdigit(), made.err  # acting as ada, not the disabled admin
    assert (await cli("users", "disable", "ada")).code == 2  # the last active admin stays


async def test_set_language(cli: CLI, db_url: str) -> None:
    assert (await cli("users", "add", "nina", "--role", "officer", "--no-password")).code == 0
    run = await cli("users", "set-language", "nina", "fr")
    assert run.code == 0, run.err
    assert "the pages of nina: the language is now fr" in run.err
    listed = json.loads((await cli("users", "list", "--json")).out)
    assert [u["language"] for u in listed if u["name"] == "nina"] == ["fr"]
    user = await _user(db_url, "nina")
    assert user is not None and user.language == "fr"
    run = await cli("users", "set-language", "nina", "fr")
    assert run.code == 0 and "the language was already fr" in run.err
    run = await cli("users", "set-language", "nina", "de")
    assert run.code == 2 and "invalid choice: 'de'" in run.err
    run = await cli("users", "set-language", "nina", "auto")
    assert run.code == 0 and "the language is now their browser's" in run.err
    user = await _user(db_url, "nina")
    assert user is not None and user.language is None
