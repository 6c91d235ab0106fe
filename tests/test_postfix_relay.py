"""A real relay: Debian's Postfix on loopback, in a temporary directory.

The dispatcher sends an alert through Postfix's smtpd. Recipients at ``inbox.test`` land in
Maildirs (Postfix's ``virtual`` agent); those at ``bounce.test`` have no mailbox, so Postfix
bounces them and sends its own DSNs to our VERP return paths over its ``lmtp:`` transport, to
our LMTP listener. Every message must arrive once, with its headers intact (its DKIM signature
still verifies), and every bounce must end as a ``bounced`` delivery and a suppression.

Skipped, with the reason, where Postfix is not installed (``apt-get install postfix``) or
cannot start (its master process needs root).
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.config import EmailSettings
from alerts.core.verp import Verp
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.lmtp import start_listener
from alerts.delivery.messages import MessageBuilder
from alerts.delivery.publish import publish
from alerts.store.models import Contact, Delivery, DeliveryEvent, Suppression
from channels.email import EmailChannel
from channels.mime import DkimOptions
from tests.factories import RENDERER, add_contacts, approved_alert, make_users
from tests.test_dispatch import FAST

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
MASTER = Path("/usr/lib/postfix/sbin/master")
SECRET = "a-long-enough-test-secret-key-for-verp"
SENDER = "alerts@alerts.example.org"
DELIVERED = [f"person{n}@inbox.test" for n in range(4)]
BOUNCING = [f"person{n}@bounce.test" for n in range(4, 6)]
WAIT = 90.0  # an upper bound for a loaded CI machine; the waits end as soon as their condition holds


def why_postfix_cannot_run() -> str | None:
    if not Path(POSTFIX).exists() or not MASTER.exists():
        return "Postfix is not installed (Debian: apt-get install postfix)"
    if os.geteuid() != 0:
        return "Postfix's master process must be started as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist (the Debian package creates it)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Relay:
    smtp_port: int
    mail: Path  # Maildirs, one per delivered address
    log: Path


def configure(root: Path, *, smtp_port: int, lmtp_port: int) -> Relay:
    cfg, mail, data = root / "cfg", root / "mail", root / "data"
    for folder in (cfg, root / "queue", mail, data):
        folder.mkdir()
    shutil.chown(data, user="postfix")
    shutil.chown(mail, user="nobody", group="nogroup")
    log = root / "postfix.log"
    (cfg / "main.cf").write_text(
        f"""compatibility_level = 3.6
config_directory = {cfg}
queue_directory = {root}/queue
data_directory = {data}
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {log}
maillog_file_prefixes = {root}
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# bounce.test has no mailboxes: accept, then bounce with a DSN (as a remote server would)
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = inbox.test, bounce.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{cfg}/mailboxes
virtual_uid_maps = static:{pwd.getpwnam("nobody").pw_uid}
virtual_gid_maps = static:{pwd.getpwnam("nobody").pw_gid}
virtual_minimum_uid = 1
# our return paths go to our LMTP listener
transport_maps = texthash:{cfg}/transport
# a bounce that beats the dispatcher to recording the send is refused with 451: retry soon
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""
    )
    (cfg / "mailboxes").write_text("".join(f"{a} {a.partition('@')[0]}/\n" for a in DELIVERED))
    (cfg / "transport").write_text(f"alerts.example.org lmtp:inet:127.0.0.1:{lmtp_port}\n")
    services = [
        f"127.0.0.1:{smtp_port} inet n - n - - smtpd",
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "virtual unix - n n - - virtual",
        "lmtp unix - - n - - lmtp",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    (cfg / "master.cf").write_text("\n".join(services) + "\n")
    return Relay(smtp_port=smtp_port, mail=mail, log=log)


@pytest.fixture
async def relay(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Relay]:
    reason = why_postfix_cannot_run()
    if reason is not None:
        pytest.skip(reason)
    listener = await start_listener(sessions, host="127.0.0.1", port=0, verp=Verp(SECRET), senders=[SENDER])
    # pytest's tmp_path is private to root (0700): Postfix's own users could not reach it
    root = Path(tempfile.mkdtemp(prefix="alerts-postfix-"))
    root.chmod(0o755)
    relay = configure(root, smtp_port=free_port(), lmtp_port=listener.sockets[0].getsockname()[1])
    cfg = str(root / "cfg")
    try:
        started = subprocess.run([POSTFIX, "-c", cfg, "start"], capture_output=True, text=True, timeout=60)
        if started.returncode != 0:
            log = relay.log.read_text() if relay.log.exists() else ""
            pytest.skip(f"Postfix could not start here: {started.stderr.strip()} {log[-500:]}")
        try:
            yield relay
        finally:
            subprocess.run([POSTFIX, "-c", cfg, "stop"], capture_output=True, timeout=60)
    finally:
        listener.close()
        await listener.wait_closed()
        shutil.rmtree(root, ignore_errors=True)


async def publish_alert(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        ids = await add_contacts(session, len(DELIVERED) + len(BOUNCING))
        for contact_id, address in zip(ids, DELIVERED + BOUNCING, strict=True):
            await session.execute(
                update(Contact).where(Contact.id == contact_id).values(email=address, email_key=address)
            )
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, alert, now=utcnow())
        return alert.id


def dkim_key(folder: Path) -> tuple[bytes, bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a DKIM key")
    key = folder / "dkim.pem"
    subprocess.run(
        [openssl, "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True
    )
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key.read_bytes(), base64.b64encode(public)


async def until(condition: Callable[[], Awaitable[bool]], what: str, relay: Relay) -> None:
    """Wait (at most WAIT seconds) for ``condition()`` to be true, then assert it."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert await condition(), (
        f"timed out waiting for {what}; Postfix's log ends:\n{relay.log.read_text()[-3000:]}"
    )


async def test_through_postfix_to_maildirs_and_bounces_back(
    relay: Relay, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    private, public = dkim_key(tmp_path)
    alert_id = await publish_alert(sessions)
    settings = EmailSettings(
        host="127.0.0.1", port=relay.smtp_port, from_=f"Urgent Alerts <{SENDER}>", pool_size=2, timeout=20
    )
    channel = EmailChannel(
        settings, dkim=DkimOptions(selector="alerts", domain="alerts.example.org", private_key=private)
    )
    builder = MessageBuilder(
        RENDERER, public_url="https://alerts.example.org", domain="alerts.example.org", verp=Verp(SECRET)
    )
    await channel.open()
    try:
        dispatcher = Dispatcher(
            sessions=sessions, channels={"email": channel}, builder=builder, settings=FAST
        )
        await dispatcher.run_until_done(alert_id, timeout=WAIT)
    finally:
        await channel.close()

    def maildir(address: str) -> list[Path]:
        new = relay.mail / address.partition("@")[0] / "new"
        return sorted(new.iterdir()) if new.is_dir() else []

    async def all_arrived() -> bool:
        return all(maildir(a) for a in DELIVERED)

    async def all_bounced() -> bool:
        async with sessions() as session:
            states = (
                await session.execute(select(Delivery.state).where(Delivery.address.in_(BOUNCING)))
            ).all()
        return [s for (s,) in states] == ["bounced"] * len(BOUNCING)

    await until(all_arrived, "the messages in the Maildirs", relay)
    await until(all_bounced, "Postfix's DSNs to reach the LMTP listener", relay)

    async with sessions() as session:
        rows = (
            await session.execute(select(Delivery.address, Delivery.state, Delivery.message_id, Delivery.id))
        ).all()
        suppressed = (await session.execute(select(Suppression.address_key, Suppression.reason))).all()
        events = (
            (await session.execute(select(DeliveryEvent).where(DeliveryEvent.type == "bounced")))
            .scalars()
            .all()
        )
    by_address = {address: (state, mid, did) for address, state, mid, did in rows}
    assert {a: by_address[a][0] for a in DELIVERED} == dict.fromkeys(DELIVERED, "sent")
    assert sorted(tuple(row) for row in suppressed) == [(a, "bounced") for a in BOUNCING]
    assert sorted(e.payload["status"] for e in events if e.payload) == ["5.1.1"] * len(BOUNCING)

    verp = Verp(SECRET)
    for address in DELIVERED:
        (path,) = maildir(address)  # once, no more
        raw = path.read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        state, mid, delivery_id = by_address[address]
        assert message["Message-ID"] == mid
        assert message["To"].addresses[0].addr_spec == address
        assert message["From"].addresses[0].addr_spec == SENDER
        assert verp.delivery_id(str(message["Return-Path"])) == delivery_id
        assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: b"v=DKIM1; k=rsa; p=" + public)
    log = relay.log.read_text()
    assert log.count("status=bounced") == len(BOUNCING)
    # the DSNs, over LMTP (after a 451 retry if one beat the dispatcher to recording the send)
    assert log.count("status=sent (250 2.0.0 1 hard bounce(s) applied") == len(BOUNCING)
