"""Suppressions: keys, idempotent upsert, hashed erased keys, and the fan-out selectable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.contacts.suppressions import (
    address_key,
    hash_for_erasure,
    hashed_key,
    is_suppressed,
    restore_erased,
    suppress,
    suppressed_keys,
    unsuppress,
)
from alerts.core.errors import ValidationError
from alerts.core.states import SuppressionReason
from alerts.store.models import Contact, Suppression

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def test_address_key() -> None:
    assert address_key("email", " Ana@Example.ORG ") == "ana@example.org"
    assert address_key("press", "Ana@Example.ORG") == "ana@example.org"
    assert address_key("telegram", "@Chan_Name") == "@Chan_Name"
    assert (
        hashed_key("email", "ANA@example.org") == "sha256:" + hashlib.sha256(b"ana@example.org").hexdigest()
    )


@pytest.mark.parametrize(
    ("channel", "address", "message", "details"),
    [
        ("fax", "123", "channel 'fax' is not one of email, press, telegram, webhook", {"field": "channel"}),
        ("email", "  ", "address is empty", {"field": "address"}),
    ],
)
def test_address_key_refuses(channel: str, address: str, message: str, details: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        address_key(channel, address)
    assert (caught.value.message, caught.value.details) == (message, details)


async def test_suppress_is_idempotent_and_case_insensitive(session: AsyncSession) -> None:
    await suppress(session, channel="email", address="Ana@Example.org", reason=SuppressionReason.UNSUBSCRIBED)
    await suppress(
        session, channel="email", address="ana@example.org", reason=SuppressionReason.BOUNCED, detail="5.1.1"
    )
    await session.commit()
    rows = list(await session.scalars(select(Suppression)))
    assert [(r.channel, r.address_key, r.reason, r.detail) for r in rows] == [
        ("email", "ana@example.org", "bounced", "5.1.1")
    ]
    assert await is_suppressed(session, "email", "ANA@EXAMPLE.ORG")
    assert not await is_suppressed(session, "telegram", "ana@example.org")
    assert not await is_suppressed(session, "email", "bob@example.org")


async def test_unsuppress(session: AsyncSession) -> None:
    await suppress(session, channel="telegram", address="12345", reason=SuppressionReason.BLOCKED)
    assert await unsuppress(session, channel="telegram", address="12345")
    assert not await unsuppress(session, channel="telegram", address="12345")
    assert not await is_suppressed(session, "telegram", "12345")


async def test_erased_addresses_are_kept_only_as_hashes(session: AsyncSession) -> None:
    await suppress(
        session,
        channel="email",
        address="ana@example.org",
        reason=SuppressionReason.BOUNCED,
        detail="550 <ana@example.org> unknown",
    )
    assert (
        await hash_for_erasure(session, [("email", "Ana@example.org"), ("telegram", "@ana_chan")], now=NOW)
        == 2
    )
    rows = list(await session.scalars(select(Suppression).order_by(Suppression.channel)))
    assert [(r.channel, r.address_key, r.reason, r.detail) for r in rows] == [
        ("email", hashed_key("email", "ana@example.org"), "erased", ""),
        ("telegram", hashed_key("telegram", "@ana_chan"), "erased", ""),
    ]
    assert await is_suppressed(session, "email", "ANA@example.org")
    assert await is_suppressed(session, "telegram", "@ana_chan")
    # an ordinary unsuppress does not lift an erasure; explicit new consent does
    assert not await unsuppress(session, channel="email", address="ana@example.org")
    assert await unsuppress(session, channel="email", address="ana@example.org", include_erased=True)
    assert not await is_suppressed(session, "email", "ana@example.org")


async def test_restore_erased_writes_the_plain_key_back(session: AsyncSession) -> None:
    await hash_for_erasure(session, [("email", "ana@example.org")], now=NOW)
    found = await restore_erased(
        session, [("email", "ANA@example.org"), ("email", "bob@example.org")], now=NOW
    )
    assert found == {("email", "ANA@example.org")}
    keys = set(await session.scalars(suppressed_keys("email")))
    assert keys == {"ana@example.org", hashed_key("email", "ana@example.org")}


async def test_suppressed_keys_excludes_in_one_query(session: AsyncSession) -> None:
    for i, email in enumerate(["a@example.org", "b@example.org", "c@example.org"]):
        session.add(Contact(name=email, email=email, email_key=email, kind="public", token=f"t{i}"))
    await suppress(session, channel="email", address="B@example.org", reason=SuppressionReason.UNSUBSCRIBED)
    await suppress(session, channel="telegram", address="c@example.org", reason=SuppressionReason.BLOCKED)
    await session.flush()
    stmt = select(Contact.email_key).where(Contact.email_key.not_in(suppressed_keys("email")))
    assert sorted(await session.scalars(stmt)) == ["a@example.org", "c@example.org"]
    assert await session.scalar(select(func.count()).select_from(Suppression)) == 2


async def test_press_shares_the_email_address_space(session: AsyncSession) -> None:
    # press delivers to the email address: a suppression named for press stops email, and the
    # other way round (before: stored under "press", which neither fan-out nor claim read)
    await suppress(session, channel="press", address="Ana@Example.org", reason=SuppressionReason.BOUNCED)
    rows = list(await session.execute(select(Suppression.channel, Suppression.address_key)))
    assert [tuple(r) for r in rows] == [("email", "ana@example.org")]
    assert await is_suppressed(session, "email", "ana@example.org")
    assert await is_suppressed(session, "press", "ANA@example.org")
    assert sorted(await session.scalars(suppressed_keys("press"))) == ["ana@example.org"]
    assert await unsuppress(session, channel="press", address="ana@example.org")
    assert not await is_suppressed(session, "email", "ana@example.org")


async def test_a_suppression_keeps_when_it_began_and_takes_the_latest_reason(session: AsyncSession) -> None:
    later = datetime(2025, 4, 1, tzinfo=UTC)
    await suppress(
        session, channel="email", address="ana@example.org", reason=SuppressionReason.BOUNCED, now=NOW
    )
    await suppress(
        session, channel="email", address="ana@example.org", reason=SuppressionReason.UNSUBSCRIBED, now=later
    )
    await suppress(
        session, channel="telegram", address="@ana_chan", reason=SuppressionReason.BLOCKED, now=later
    )
    await session.commit()
    rows = await session.execute(
        select(Suppression.channel, Suppression.reason, Suppression.detail, Suppression.created_at).order_by(
            Suppression.channel
        )
    )
    assert [tuple(r) for r in rows] == [
        ("email", "unsubscribed", "", NOW),
        ("telegram", "blocked", "", later),
    ]


async def test_suppressions_are_logged_by_channel_and_reason_never_by_address(
    session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="alerts")
    await suppress(session, channel="press", address="ana@example.org", reason=SuppressionReason.BOUNCED)
    assert await unsuppress(session, channel="email", address="ana@example.org")
    assert not await unsuppress(session, channel="email", address="ana@example.org")
    await hash_for_erasure(session, [("email", "bob@example.org"), ("telegram", "@bob_chan")], now=NOW)
    await restore_erased(session, [("email", "bob@example.org"), ("telegram", "@bob_chan")], now=NOW)
    await restore_erased(session, [("email", "cy@example.org")], now=NOW)
    assert [r.getMessage() for r in caplog.records if r.name == "alerts.contacts.suppressions"] == [
        "suppressed an address on press (bounced)",
        "suppression lifted on email",
        "2 erased addresses came back; kept suppressed",
    ]
    assert "ana" not in caplog.text and "bob" not in caplog.text


async def test_an_erased_address_that_comes_back_is_suppressed_plainly_as_previously_erased(
    session: AsyncSession,
) -> None:
    later = datetime(2025, 4, 1, tzinfo=UTC)
    await hash_for_erasure(session, [("press", "Ana@example.org"), ("telegram", "dee@example.org")], now=NOW)
    found = await restore_erased(
        session, [("press", "ANA@example.org"), ("email", "dee@example.org"), ("telegram", "@x")], now=later
    )
    # the Telegram erasure of the same text is no erasure of the email address
    assert found == {("press", "ANA@example.org")}
    rows = await session.execute(
        select(
            Suppression.channel,
            Suppression.address_key,
            Suppression.reason,
            Suppression.detail,
            Suppression.created_at,
        ).where(Suppression.address_key.not_like("sha256:%"))
    )
    assert [tuple(r) for r in rows] == [("email", "ana@example.org", "erased", "previously erased", later)]
    assert await restore_erased(session, [], now=later) == set()


async def test_erased_addresses_past_the_first_500_hashes_come_back_suppressed(session: AsyncSession) -> None:
    addresses = [("email", f"p{i}@example.org") for i in range(1200)]
    by_hash = sorted(addresses, key=lambda pair: hashed_key(*pair))
    erased = [by_hash[i] for i in (0, 499, 500, 999, 1000, 1199)]  # each end of each lookup
    await hash_for_erasure(session, erased, now=NOW)
    assert await restore_erased(session, addresses, now=NOW) == set(erased)
    assert set(await session.scalars(suppressed_keys("email"))) >= {address for _, address in erased}


async def test_only_an_erasure_counts_as_an_erased_address_on_record(session: AsyncSession) -> None:
    from alerts.contacts.suppressions import any_erased

    await suppress(session, channel="email", address="sha256@example.org", reason=SuppressionReason.BOUNCED)
    assert not await any_erased(session)
    await hash_for_erasure(session, [("telegram", "@gone")], now=NOW)
    assert await any_erased(session)
