"""Sessions, sign-in limits and account locks held in the database (issue 14 item 3): they
survive a restart and hold across two ``serve`` processes on one database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from yarl import URL

from alerts.accounts import signin_limits
from alerts.actions import accounts
from alerts.app import open_app
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.core.networks import network_of
from alerts.store.models import AuditEntry, SignInAttempt, SignInLock
from alerts.web import auth
from tests.web import PASSWORD, Client, make_staff, running, signed_in


def _move(client: Client, base: str, other_base: str) -> Client:
    """A client of ``other_base`` holding ``client``'s session cookie (a second process)."""
    cookie = client.http.cookie_jar.filter_cookies(URL(base))[auth.SESSION_COOKIE].value
    elsewhere = Client(other_base)
    elsewhere.http.cookie_jar.update_cookies({auth.SESSION_COOKIE: cookie}, URL(other_base))
    return elsewhere


async def test_a_signed_out_session_stays_out_in_another_process_and_after_a_restart(db_url: str) -> None:
    async with running(db_url) as (app, base), running(db_url) as (_other, other_base):
        await make_staff(app)
        client = await signed_in(base, "officer")
        elsewhere = _move(client, base, other_base)
        stolen = _move(client, base, base)  # a copy of the cookie, kept by a thief
        try:
            assert (await elsewhere.get("/"))[0] == 200
            r = await client.post("/logout", {})
            assert r.status == 303
            assert (await elsewhere.get("/"))[0] == 303  # the other process refuses it at once
            assert (await stolen.get("/"))[0] == 303
        finally:
            await client.close()
            await elsewhere.close()
    async with running(db_url) as (_app, new_base):  # a restart: the revocation is still there
        thief = _move(stolen, base, new_base)
        try:
            assert (await thief.get("/"))[0] == 303
            fresh = await signed_in(new_base, "officer")  # a new sign-in still works
            assert (await fresh.get("/"))[0] == 200
            await fresh.close()
        finally:
            await stolen.close()
            await thief.close()


async def test_sign_out_everywhere_ends_every_session_of_the_user(db_url: str) -> None:
    async with running(db_url) as (app, base), running(db_url) as (_other, other_base):
        await make_staff(app)
        laptop = await signed_in(base, "officer")
        phone = await signed_in(other_base, "officer")
        colleague = await signed_in(other_base, "reviewer")
        try:
            await laptop.get("/office/password")
            r = await laptop.post("/office/sessions/end", {})
            assert r.status == 303 and r.headers["Location"] == "/login"
            assert (await laptop.get("/"))[0] == 303
            assert (await phone.get("/"))[0] == 303
            assert (await colleague.get("/"))[0] == 200  # only the user's own sessions end
            async with app.sessions() as db:
                actions = list(await db.scalars(select(AuditEntry.action)))
            assert "user.sign_out_everywhere" in actions
        finally:
            for c in (laptop, phone, colleague):
                await c.close()


async def test_sign_in_limits_hold_across_two_processes(db_url: str) -> None:
    async with running(db_url) as (app, base), running(db_url) as (_other, other_base):
        await make_staff(app)
        first, second = Client(base), Client(other_base)
        try:
            await first.get("/login")
            await second.get("/login")
            for i in range(auth.LOGIN_LIMIT):  # the failures alternate between the processes
                r = await (first if i % 2 else second).post(
                    "/login", {"name": "officer", "password": "wrong"}
                )
                assert r.status == 401
            for client in (first, second):
                r = await client.post("/login", {"name": "officer", "password": PASSWORD}, html=False)
                assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        finally:
            await first.close()
            await second.close()
    async with running(db_url) as (_app, base):  # and after a restart
        client = Client(base)
        try:
            r = await client.sign_in("officer")
            assert r.status == 429
        finally:
            await client.close()


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("unknown", "unknown"),
    ],
)
def test_limits_group_addresses_by_network(address: str, network: str) -> None:
    assert network_of(address) == network


async def test_one_ipv6_network_shares_one_allowance(db_url: str) -> None:
    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={}) as app:
        now = utcnow()
        for i in range(signin_limits.NETWORK_LIMIT):  # every guess from a new address of one /64
            held = await signin_limits.reserve(app.sessions, f"name{i}", f"2001:db8::{i:x}", now=now)
            await signin_limits.failed(app.sessions, held, now=now)
        with pytest.raises(signin_limits.TooManyAttempts):
            await signin_limits.reserve(app.sessions, "officer", "2001:db8::ffff", now=now)
        held = await signin_limits.reserve(app.sessions, "officer", "2001:db8:0:1::1", now=now)  # next /64
        await signin_limits.succeeded(app.sessions, held)


async def test_failures_from_many_networks_slow_then_lock_the_account(db_url: str) -> None:
    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={}) as app:
        await make_staff(app)
        now = utcnow()
        address = iter(f"198.51.{n}.1" for n in range(200))  # a new /24 for every guess
        for _ in range(signin_limits.ACCOUNT_FREE):
            held = await signin_limits.reserve(app.sessions, "officer", next(address), now=now)
            await signin_limits.failed(app.sessions, held, now=now)
        # from now on each guess waits longer: 2 s, 4 s, 8 s… after the latest failure
        waits = []
        while True:
            try:
                held = await signin_limits.reserve(app.sessions, "officer", next(address), now=now)
            except signin_limits.TooManyAttempts as exc:
                waits.append(exc.retry_after)
                now += timedelta(seconds=exc.retry_after)
                continue
            except signin_limits.AccountLocked:
                break
            await signin_limits.failed(app.sessions, held, now=now)
        assert waits[:4] == [3, 5, 9, 17]  # 2, 4, 8, 16 s (rounded up)
        assert max(waits) <= signin_limits.MAX_DELAY + 1
        assert len(waits) == signin_limits.ACCOUNT_LOCK - signin_limits.ACCOUNT_FREE
        # the lock holds whatever the password and the address, until an admin lifts it
        async with running(db_url) as (_app, base):
            client = Client(base, headers={})
            try:
                r = await client.sign_in("officer")
                assert r.status == 423
                assert signin_limits.LOCKED in await r.text()
                assert await accounts.locked_names(app, None) == {"officer"}
                admin = await signed_in(base, "admin")
                status, page = await admin.get("/office/users")
                assert status == 200 and "sign-in locked" in page and "Unlock officer" in page
                r = await admin.post("/office/users/officer/unlock", {})
                assert r.status == 303
                await admin.close()
                r = await client.sign_in("officer")
                assert r.status == 303
            finally:
                await client.close()
        async with app.sessions() as db:
            left = await db.scalar(
                select(func.count())
                .select_from(SignInAttempt)
                .where(SignInAttempt.key == signin_limits.account_key("officer"))
            )
            assert left == 0
            assert "user.unlock" in list(await db.scalars(select(AuditEntry.action)))


async def test_the_console_unlocks_a_locked_account(db_url: str, tmp_path: Path) -> None:
    from tests.test_cli import CLI

    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={}) as app:
        await make_staff(app)
        async with app.sessions.begin() as session:
            session.add(SignInLock(key=signin_limits.account_key("officer"), locked_at=utcnow()))
        with pytest.raises(signin_limits.AccountLocked):
            await signin_limits.reserve(app.sessions, "officer", "192.0.2.1", now=utcnow())
    cli = CLI(db_url, tmp_path)
    run = await cli("users", "unlock", "officer")
    assert (run.code, run.err) == (0, "user officer unlocked\n")
    assert (await cli("users", "unlock", "officer")).err == "user officer was not locked\n"
    async with open_app(settings, channels={}) as app:
        held = await signin_limits.reserve(app.sessions, "officer", "192.0.2.1", now=utcnow())
        await signin_limits.succeeded(app.sessions, held)
