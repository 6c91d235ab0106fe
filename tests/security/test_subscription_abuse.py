"""Subscription abuse (issue 14 item 1): limits per source network (IPv4 /24, IPv6 /64) and per
recipient domain besides the service's hourly budget, an honest answer when a confirmation is
held back, and unconfirmed subscriptions removed by the scheduler's housekeeping; the limits are
counted in the database, so they hold across several processes and after a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from alerts.app import open_app
from alerts.core.clock import utcnow
from alerts.followups.scheduler import RunningScheduler
from alerts.store.models import AuditEntry, Contact
from alerts.web import make_web_app
from alerts.web.public.pages import DOMAIN_MAILS_PER_HOUR, NETWORK_MAILS_PER_HOUR, SUBSCRIBE_LIMIT
from tests.web.conftest import Site, site_settings


@pytest.fixture
async def proxied(db_url: str) -> AsyncIterator[Site]:
    """The web app behind a trusted proxy on loopback: each request names its client."""
    async with open_app(site_settings(db_url, trusted_proxies="127.0.0.1"), channels={}) as app:
        server = TestServer(make_web_app(app))
        await server.start_server()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            yield Site(app=app, base=str(server.make_url("")).rstrip("/"), http=http)
        await server.close()


async def _subscribe(site: Site, email: str, client: str) -> tuple[int, str]:
    return await site.call(
        "POST", "/subscribe", data={"email": email, "language": "en"}, headers={"X-Forwarded-For": client}
    )


async def _pending(site: Site) -> int:
    async with site.app.sessions() as session:
        return len((await session.scalars(select(Contact.id).where(Contact.status == "pending"))).all())


@pytest.mark.parametrize("network", ["2001:db8:7:7::{:x}", "203.0.113.{}"])
async def test_many_addresses_of_one_network_share_one_allowance(proxied: Site, network: str) -> None:
    statuses = [(await _subscribe(proxied, f"s{i}@example.org", network.format(i + 1)))[0] for i in range(40)]
    assert statuses.count(202) == min(SUBSCRIBE_LIMIT, NETWORK_MAILS_PER_HOUR)
    assert statuses.count(429) == 40 - statuses.count(202)
    assert await _pending(proxied) == statuses.count(202)
    # a real subscriber elsewhere is not held up
    status, page = await _subscribe(proxied, "real@example.net", "198.51.100.7")
    assert status == 202 and "Check your inbox" in page


async def test_one_domain_cannot_take_the_whole_budget_and_the_held_back_are_told(proxied: Site) -> None:
    # strangers from many networks ask confirmations for addresses at one domain
    answers = [
        await _subscribe(proxied, f"victim{i}@target.example", f"10.{i // 250}.{i % 250}.1")
        for i in range(DOMAIN_MAILS_PER_HOUR + 10)
    ]
    assert [s for s, _ in answers].count(202) == DOMAIN_MAILS_PER_HOUR
    status, page = answers[-1]
    assert status == 429
    assert "We could not send a confirmation message now" in page and "try again in 60 minutes" in page
    # the same answer for an address already pending there: it says nothing about the address
    status, again = await _subscribe(proxied, "victim0@target.example", "192.0.2.200")
    assert status == 429 and again == page
    # a subscriber at another domain still gets their confirmation
    status, page = await _subscribe(proxied, "real@example.net", "198.51.100.7")
    assert status == 202 and "Check your inbox" in page


async def test_unconfirmed_subscriptions_expire_in_housekeeping(proxied: Site) -> None:
    for i, email in enumerate(("old@example.org", "fresh@example.org", "kept@example.org")):
        assert (await _subscribe(proxied, email, f"192.0.2.{i}"))[0] == 202
    async with proxied.app.sessions.begin() as session:
        old = utcnow() - timedelta(days=8)
        await session.execute(
            update(Contact)
            .where(Contact.email.in_(["old@example.org", "kept@example.org"]))
            .values(updated_at=old)
        )
        await session.execute(
            update(Contact).where(Contact.email == "kept@example.org").values(status="active")
        )
    scheduler = RunningScheduler(proxied.app)
    assert await scheduler.housekeeping() == 1  # pending_days = 7 by default
    async with proxied.app.sessions() as session:
        left = set(await session.scalars(select(Contact.email)))
        actions = list(await session.scalars(select(AuditEntry.action)))
    assert left == {"fresh@example.org", "kept@example.org"}
    assert "contact.expire_pending" in actions
    assert await scheduler.housekeeping() == 0


@asynccontextmanager
async def _process(db_url: str) -> AsyncIterator[Site]:
    """One more ``serve`` process on the same database (behind the trusted proxy)."""
    async with open_app(site_settings(db_url, trusted_proxies="127.0.0.1"), channels={}) as app:
        server = TestServer(make_web_app(app))
        await server.start_server()
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                yield Site(app=app, base=str(server.make_url("")).rstrip("/"), http=http)
        finally:
            await server.close()


async def test_the_limits_hold_across_two_processes_and_after_a_restart(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alerts.web.public import pages

    monkeypatch.setattr(pages, "CONFIRM_MAILS_PER_HOUR", 8)  # read when each app starts
    async with _process(db_url) as one, _process(db_url) as two:
        # one network's requests, alternating between the processes: five in all, not five each
        statuses = [
            (await _subscribe((one, two)[i % 2], f"n{i}@example.org", f"203.0.113.{i + 1}"))[0]
            for i in range(SUBSCRIBE_LIMIT + 2)
        ]
        assert statuses == [202] * SUBSCRIBE_LIMIT + [429, 429]
        # the service's budget (8 an hour here) is one budget for both: 5 spent above, 3 left
        statuses = [
            (await _subscribe((one, two)[i % 2], f"m{i}@example.net", f"198.51.{i}.7"))[0] for i in range(5)
        ]
        assert statuses == [202, 202, 202, 429, 429]
        status, page = await _subscribe(two, "late@example.com", "192.0.2.9")
        assert status == 429 and "We could not send a confirmation message now" in page
    async with _process(db_url) as restarted:  # a restart forgets nothing
        status, page = await _subscribe(restarted, "n9@example.org", "203.0.113.99")
        assert status == 429 and "Too many requests" in page
        status, page = await _subscribe(restarted, "later@example.com", "192.0.2.10")
        assert status == 429 and "We could not send a confirmation message now" in page
        async with restarted.app.sessions() as session:
            pending = set(await session.scalars(select(Contact.email).where(Contact.status == "pending")))
    assert pending == {f"n{i}@example.org" for i in range(SUBSCRIBE_LIMIT)} | {
        f"m{i}@example.net" for i in range(3)
    }
