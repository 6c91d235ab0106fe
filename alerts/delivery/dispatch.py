"""The dispatcher: claim due deliveries under a lease → channel.send → record the outcome.

Per channel: one claimer keeps a small local queue filled (claims are sized to what the channel can
send well within the lease), ``concurrency`` senders drain it, and one recorder for all channels
writes outcomes in batches every ``flush_interval``. Expired leases are reclaimed; due scheduled
alerts are published; what a worker holds of an alert paused, closed or without consent since its
claim goes back to the outbox (``holdback``). An idle claimer waits for a wake-up (a send in this
process, NOTIFY on PostgreSQL, SQLite's data_version: ``wakeup``) or its safety poll
(``poll_seconds``). In ``serve``, senders give way to officers' reads (``give_way``). On stop, sends
in flight finish, what is still queued locally is released, and the last batch is flushed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from prometheus_client import Histogram
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.logs import log_context
from alerts.core.metrics import Metrics
from alerts.core.states import AlertStatus
from alerts.core.types import Outcome, OutcomeKind
from alerts.delivery.claim import claim_due, extend_leases, reclaim_expired, release
from alerts.delivery.give_way import GiveWay
from alerts.delivery.holdback import Held, stopped, take
from alerts.delivery.messages import AlertInfo, Claimed, MessageBuilder
from alerts.delivery.publish import load_alert_info, publish_due
from alerts.delivery.recorder import Result, record
from alerts.delivery.retry import RetryPolicy
from alerts.delivery.tracking import has_open
from alerts.delivery.wakeup import Wakeup
from alerts.store.models import Alert, Delivery
from channels.base import Channel

logger = logging.getLogger(__name__)
HELD_BACK = "as its alert was paused, closed or lost consent since the claim"


@dataclass
class ChannelLane:
    """One channel's local queue and its limits."""

    channel: Channel
    concurrency: int
    capacity: int
    send_latency: Histogram  # this channel's labelled child, looked up once (not per message)
    queue: asyncio.Queue[Claimed] = field(default_factory=asyncio.Queue)
    in_flight: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set: claim now, not at the poll


class Dispatcher:
    """Sends what is due through the channels; see the module docstring."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession] | None = None,
        channels: Mapping[str, Channel],
        builder: MessageBuilder,
        settings: DispatcherSettings,
        concurrency: Mapping[str, int] | None = None,
        alert_id: int | None = None,
        publish_scheduled: bool = True,
        webhook_url: str = "",
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
        wakeup: Wakeup | None = None,
        give_way: GiveWay | None = None,
    ) -> None:
        self.sessions = sessions
        self.reads = reads or sessions  # the completion polls only read
        self.builder = builder
        self.settings = settings
        self.policy = RetryPolicy.from_settings(settings)
        self.alert_id = alert_id
        self.publish_scheduled = publish_scheduled
        self.webhook_url = webhook_url
        self.clock = clock
        # fits Delivery.claimed_by (64) whatever the host's name
        self.worker = f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.metrics = metrics or Metrics(process=False)
        self.lanes: dict[str, ChannelLane] = {}
        for name, ch in channels.items():
            conc = max(1, (concurrency or {}).get(name, settings.concurrency))
            # enough local work for several claim round trips to overlap with sending
            capacity = min(max(16 * conc, 64), settings.batch_size)
            latency = self.metrics.send_latency.labels(name)
            self.lanes[name] = ChannelLane(ch, concurrency=conc, capacity=capacity, send_latency=latency)
        self._results: list[Result] = []
        self._alerts: dict[int, AlertInfo] = {}
        self._touched: set[int] = set()
        self._held = Held()  # what waits in the lanes' queues, per alert
        self._giving_back: list[Claimed] = []  # taken out of them, to be released (holdback)
        self.wakeup = wakeup  # None: the claimers only poll
        self.give_way = give_way  # None: no web in this process to give way to
        self.wakeups: Counter[str] = Counter()  # what woke the claimers: bell, notify, data_version…
        self._stopping = False
        self.alive_at = time.monotonic()

    # -- the loops -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        tasks: list[asyncio.Task[None]] = []
        senders: list[asyncio.Task[None]] = []
        for name, lane in self.lanes.items():
            tasks.append(asyncio.create_task(self._claimer(name, lane, stop), name=f"claim-{name}"))
            senders += [
                asyncio.create_task(self._sender(lane), name=f"send-{name}") for _ in range(lane.concurrency)
            ]
        if self.wakeup is not None:
            tasks.append(asyncio.create_task(self.wakeup.run(self.wake), name="wakeup"))
        recorder = asyncio.create_task(self._recorder(), name="recorder")
        housekeeping = asyncio.create_task(self._housekeeping(stop), name="housekeeping")
        try:
            await stop.wait()
        finally:
            self._stopping = True
            for t in [*tasks, housekeeping]:
                t.cancel()
            await asyncio.gather(*tasks, housekeeping, return_exceptions=True)
            leftovers, self._giving_back = self._giving_back, []
            for lane in self.lanes.values():
                while not lane.queue.empty():
                    leftovers.append(lane.queue.get_nowait())
                    lane.queue.task_done()
            # senders finish the message they hold; then they are cancelled while idle
            deadline = time.monotonic() + 10
            while any(lane.in_flight for lane in self.lanes.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            for t in senders:
                t.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            # never cancelled mid-flush: a cancelled flush whose COMMIT had gone through would
            # be kept for the last flush below and recorded twice; it stops after this one
            await asyncio.gather(recorder, return_exceptions=True)
            await self._flush()
            if leftovers:
                async with self.sessions.begin() as session:
                    n = await release(session, leftovers, worker=self.worker, now=self.clock())
                logger.info("released %d claimed deliveries on shutdown", n)

    async def run_until_done(
        self, alert_id: int, *, poll: float = 0.05, timeout: float | None = None
    ) -> None:
        """Run until every delivery of ``alert_id`` is final (used by ``send --wait``)."""
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop))
        started = time.monotonic()
        try:
            while not runner.done():
                if not await self.has_open(alert_id):
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    raise TimeoutError(f"alert {alert_id}: deliveries still open after {timeout} s")
                await asyncio.sleep(poll)
        finally:
            stop.set()
            await runner
        self._touched.add(alert_id)
        await self._complete_alerts(self.clock())

    async def has_open(self, alert_id: int) -> bool:
        """Whether some delivery of the alert is not yet in a final state (an index probe)."""
        async with self.reads() as session:
            return await has_open(session, alert_id, channels=self.lanes)

    async def _claimer(self, name: str, lane: ChannelLane, stop: asyncio.Event) -> None:
        idle = 0.02
        while not stop.is_set():
            room = lane.capacity - lane.queue.qsize()
            if room < max(1, lane.capacity // 2):
                await asyncio.sleep(0.005)
                continue
            started = time.monotonic()
            lane.wake.clear()  # a wake-up from now on means: claim again
            try:
                async with self.sessions.begin() as session:
                    items = await claim_due(
                        session,
                        channel=name,
                        limit=min(room, self.settings.batch_size),
                        worker=self.worker,
                        lease=self.lease,
                        now=self.clock(),
                        alert_id=self.alert_id,
                    )
                    await self._ensure_alerts(session, {i.alert_id for i in items})
                    items = await self._attach_replies(session, items)
            except Exception:
                logger.exception("claiming %s deliveries failed; retrying", name)
                await asyncio.sleep(1.0)
                continue
            self.alive_at = time.monotonic()
            self.metrics.claim_latency.labels(name).observe(time.monotonic() - started)
            self.metrics.claimed.labels(name).inc(len(items))
            for item in items:
                lane.queue.put_nowait(item)
                self._held.put(item)
            if items:
                idle = 0.02
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(lane.wake.wait(), timeout=idle)
                idle = min(idle * 2, self.settings.poll_seconds)  # the safety poll

    async def _sender(self, lane: ChannelLane) -> None:
        while True:
            if self.give_way is not None and not self.give_way.open:  # an officer's read goes first
                await self.give_way.wait()  # (a sender already waiting below takes the next item)
            item = await lane.queue.get()
            self._held.took(item)
            lane.in_flight += 1
            try:
                await self._send_one(lane, item)
            finally:
                lane.in_flight -= 1
                lane.queue.task_done()

    async def _send_one(self, lane: ChannelLane, item: Claimed) -> None:
        with log_context(alert_id=item.alert_id, delivery_id=item.id):
            await self._send_logged(lane, item)

    async def _send_logged(self, lane: ChannelLane, item: Claimed) -> None:
        info = self._alerts[item.alert_id]
        try:
            message = self.builder.build(item, info)
        except Exception as exc:  # noqa: BLE001 - a form that cannot render: nothing to retry
            logger.error(
                "alert %s: rendering %s/%s/%s failed: %s",
                item.alert_id,
                item.channel,
                item.audience,
                item.language,
                exc,
            )
            self._results.append(
                Result(
                    item=item,
                    outcome=Outcome(kind=OutcomeKind.PERMANENT, detail=f"render failed: {exc}"),
                    message_id="",
                    at=self.clock(),
                )
            )
            return
        started = time.monotonic()
        try:
            outcome = await lane.channel.send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - not in the adapter's table: recorded, retry decides
            # the exception text may quote the recipient: only its type above DEBUG
            logger.warning("delivery %s: %s raised %s", item.id, item.channel, type(exc).__name__)
            logger.debug("delivery %s: %s", item.id, exc)
            outcome = Outcome(kind=OutcomeKind.TRANSIENT, detail=f"{type(exc).__name__}: {exc}")
        lane.send_latency.observe(time.monotonic() - started)
        # one line per outcome, with the alert and delivery ids (log_context), never the address
        if outcome.kind is OutcomeKind.SENT:
            logger.debug("delivery %s: %s sent", item.id, item.channel)
        else:
            logger.info("delivery %s: %s %s", item.id, item.channel, outcome.kind)
        self._results.append(
            Result(item=item, outcome=outcome, message_id=message.message_id, at=self.clock())
        )

    async def _recorder(self) -> None:
        # a fixed cadence: the time a flush takes (waiting for SQLite's write lock, say) is not
        # added to the interval, so at most about one interval's sends await recording
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._flush()
                self.alive_at = time.monotonic()  # progress, even while housekeeping waits its turn
            except Exception:
                logger.exception("recording outcomes failed; will retry")
                await asyncio.sleep(0.5)
            await asyncio.sleep(max(0.0, self.settings.flush_interval - (time.monotonic() - started)))

    async def _flush(self) -> None:
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            async with self.sessions.begin() as session:
                moved = await record(
                    session,
                    batch,
                    worker=self.worker,
                    policy=self.policy,
                    alerts=self._alerts,
                    now=self.clock(),
                )
        except BaseException:
            self._results[:0] = batch  # keep them for the next flush
            raise
        # one labelled counter lookup per (channel, state) in the batch, not one per delivery
        for (channel, state), n in collections.Counter(moved).items():
            self.metrics.deliveries.labels(channel, state).inc(n)
        self._touched.update(r.item.alert_id for r in batch)
        if any(r.outcome.kind is not OutcomeKind.SENT for r in batch):
            self.wake("recorded")

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        last_reclaim = 0.0
        while not stop.is_set():
            self.alive_at = time.monotonic()
            try:
                now = self.clock()
                if time.monotonic() - last_reclaim > min(max(0.5, self.lease.total_seconds() / 4), 15.0):
                    last_reclaim = time.monotonic()
                    async with self.sessions.begin() as session:
                        # our own claims stay ours while we live, however long they wait in a
                        # local queue behind a slow server; only a dead worker's leases expire
                        await extend_leases(session, worker=self.worker, until=now + self.lease)
                        n = await reclaim_expired(session, now=now, max_attempts=self.settings.max_attempts)
                    if n:
                        logger.warning("reclaimed %d deliveries whose lease expired", n)
                        self.wake("reclaimed")
                await self._hold_back(now)
                if self.publish_scheduled and self.alert_id is None:
                    async with self.sessions.begin() as session:
                        published = await publish_due(
                            session, now=now, webhook_url=self.webhook_url, available=set(self.lanes)
                        )
                    if published:
                        self.wake("scheduled")
                await self._complete_alerts(now)
            except Exception:
                logger.exception("dispatcher housekeeping failed; continuing")
            await asyncio.sleep(0.5)

    async def _hold_back(self, now: datetime) -> None:
        """Give back what this worker holds of alerts paused, closed or without consent since."""
        async with self.reads() as session:
            which = await stopped(session, self._held)
        if which:
            self._giving_back += take((lane.queue for lane in self.lanes.values()), which, self._held)
        if not self._giving_back:
            return
        # kept until released: our leases on them are extended while we live, so a failed
        # release must be tried again (and at shutdown), or they would wait in "sending" forever
        async with self.sessions.begin() as session:
            n = await release(session, self._giving_back, worker=self.worker, now=now, why=HELD_BACK)
        alerts, self._giving_back = sorted({i.alert_id for i in self._giving_back}), []
        logger.info("released %d claimed deliveries of alerts %s, stopped since", n, alerts)

    async def _complete_alerts(self, now: datetime) -> None:
        """Alerts whose deliveries are all final become ``sent``."""
        touched, self._touched = self._touched, set()
        for alert_id in touched:
            if not await self.has_open(alert_id):
                async with self.sessions.begin() as session:
                    await session.execute(
                        update(Alert)
                        .where(Alert.id == alert_id, Alert.status == str(AlertStatus.SENDING))
                        .values(status=str(AlertStatus.SENT), completed_at=now, updated_at=now)
                    )

    # -- helpers ---------------------------------------------------------------------------

    def wake(self, source: str) -> None:
        """Every claimer claims now instead of at its next poll (``source``: who asked)."""
        self.wakeups[source] += 1
        for lane in self.lanes.values():
            lane.wake.set()

    async def _ensure_alerts(self, session: AsyncSession, ids: set[int]) -> None:
        for alert_id in ids - self._alerts.keys():
            self._alerts[alert_id] = await load_alert_info(session, alert_id)

    async def _attach_replies(self, session: AsyncSession, items: list[Claimed]) -> list[Claimed]:
        """Telegram updates reply to the original alert's message in the same chat."""
        out = []
        by_parent: dict[int, list[Claimed]] = {}
        for item in items:
            info = self._alerts[item.alert_id]
            if item.channel == "telegram" and info.ancestors and item.contact_id is not None:
                by_parent.setdefault(info.ancestors[-1], []).append(item)
        replies: dict[tuple[int, int | None], str | None] = {}
        for root, group in by_parent.items():
            rows = await session.execute(
                select(Delivery.contact_id, Delivery.provider_id).where(
                    Delivery.alert_id == root,
                    Delivery.channel == "telegram",
                    Delivery.contact_id.in_([i.contact_id for i in group]),
                    Delivery.provider_id.is_not(None),
                )
            )
            for cid, pid in rows.all():
                replies[(root, cid)] = pid
        for item in items:
            info = self._alerts[item.alert_id]
            key = (
                (info.ancestors[-1], item.contact_id)
                if info.ancestors and item.contact_id is not None
                else None
            )
            if key is not None and key in replies:
                item = replace(item, reply_to=replies[key])
            out.append(item)
        return out
