"""APScheduler 3.11 AsyncIOScheduler that fires follow-ups; one leader on PostgreSQL.

The ``Followup`` table is the truth and the scheduler holds only an in-memory copy of it
(a ``MemoryJobStore``): one ``DateTrigger`` job per pending follow-up, rebuilt from the
table at start-up and brought in line with it every few seconds, so follow-ups added or
cancelled by other processes (CLI, API) are picked up, and an overdue one fires at once,
late, after a restart. Jobs carry only the follow-up's id; ``followups.fire`` claims the
row with a guarded UPDATE, so a job that runs twice, or in two processes, acts once. The
leader's reconcile also gives every active officer and admin their pending weekly digest
(``followups.ensure_digests``), so nobody has to create the first one.

Why not APScheduler's ``SQLAlchemyJobStore``: it is synchronous SQLAlchemy (it would need a
second, sync driver — psycopg2 is not a dependency) and it would make a pickled job the
record instead of the row the UI, API and CLI already read and write.

On PostgreSQL only the process holding a session-level advisory lock (on a connection kept
open for the purpose) schedules; the others retry the lock every few seconds, so when the
leader stops or its connection drops another process takes over. SQLite is single-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.app import App
from alerts.contacts import subscriptions
from alerts.core.clock import utcnow
from alerts.followups import manage as followups
from alerts.store.db import is_sqlite

logger = logging.getLogger(__name__)

#: The advisory lock key of the follow-up scheduler ("UAsched" in ASCII, as a bigint).
LEADER_LOCK_KEY = 0x55_41_73_63_68_65_64
JOB_PREFIX = "followup-"
RECONCILE_JOB = "reconcile-followups"
HOUSEKEEPING_JOB = "housekeeping"
HOUSEKEEPING_SECONDS = 3600.0


class RunningScheduler:
    """The follow-up scheduler of one process; ``stop()`` shuts it down and releases the lock."""

    def __init__(
        self,
        app: App,
        *,
        reconcile_seconds: float = 5.0,
        lock_retry_seconds: float = 3.0,
        concurrency: int = 8,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.app = app
        self.reconcile_seconds = reconcile_seconds
        self.lock_retry_seconds = lock_retry_seconds
        self.clock = clock
        self.tz = ZoneInfo(app.settings.scheduler.timezone)
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        self.is_leader = False
        self.fired = 0  # follow-ups this process fired (claimed)
        self._due: dict[int, datetime] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._lock_conn: AsyncConnection | None = None
        self._campaign: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()  # jobs running now: firings, reconciles
        self._in_flight: set[int] = set()  # ids whose job is running (its trigger is already spent)
        self._stopping = False

    # -- leadership ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start; lead at once on SQLite, or campaign for the PostgreSQL lock."""
        self.scheduler.start()
        if is_sqlite(str(self.app.engine.url)):
            await self._lead()
        elif not await self._try_lock():
            logger.info(
                "another process schedules follow-ups; retrying the leader lock every %.0f s",
                self.lock_retry_seconds,
            )
            self._campaign = asyncio.create_task(self._campaign_loop(), name="scheduler-leader-lock")

    async def _try_lock(self) -> bool:
        conn = await self.app.engine.connect()
        try:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            query = text("SELECT pg_try_advisory_lock(:k)")
            got = (await conn.execute(query, {"k": LEADER_LOCK_KEY})).scalar()
        except Exception:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._lock_conn = conn
        await self._lead()
        return True

    async def _campaign_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.lock_retry_seconds)
            try:
                if await self._try_lock():
                    return
            except Exception:
                logger.exception("could not try the scheduler leader lock; retrying")

    async def _lead(self) -> None:
        self.is_leader = True
        logger.info("this process schedules follow-ups")
        await self.reconcile()
        self.scheduler.add_job(
            self._reconcile_job,
            "interval",
            seconds=self.reconcile_seconds,
            id=RECONCILE_JOB,
            replace_existing=True,
        )
        self.scheduler.add_job(
            self._housekeeping_job,
            "interval",
            seconds=HOUSEKEEPING_SECONDS,
            id=HOUSEKEEPING_JOB,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )

    async def _lock_alive(self) -> bool:
        if self._lock_conn is None:
            return True  # SQLite: no lock to lose
        try:
            await self._lock_conn.execute(text("SELECT 1"))
            return True
        except (SQLAlchemyError, OSError):
            logger.error("lost the scheduler leader lock's connection; standing down")
            return False

    async def _stand_down(self) -> None:
        self.is_leader = False
        for job in self.scheduler.get_jobs():
            self._remove(job.id)
        self._due.clear()
        if self._lock_conn is not None:
            try:
                await self._lock_conn.close()
            except Exception:
                logger.debug("closing the lost lock connection failed", exc_info=True)
            self._lock_conn = None
        if not self._stopping:
            self._campaign = asyncio.create_task(self._campaign_loop(), name="scheduler-leader-lock")

    # -- jobs ----------------------------------------------------------------------------

    async def _reconcile_job(self) -> None:
        if self._stopping:
            return
        # waited for at stop like a firing: cancelled by APScheduler's shutdown in the middle of
        # a statement, its SQLite connection was torn down half-way and hung the event loop
        with self._running_job():
            try:
                if not await self._lock_alive():
                    await self._stand_down()
                    return
                await self.reconcile()
            except Exception:
                logger.exception("follow-up reconcile failed; retrying in %.0f s", self.reconcile_seconds)

    async def _housekeeping_job(self) -> None:
        if self._stopping:
            return
        with self._running_job():
            try:
                await self.housekeeping()
            except Exception:
                logger.exception("housekeeping failed; retrying in %.0f s", HOUSEKEEPING_SECONDS)

    async def housekeeping(self) -> int:
        """Remove subscriptions left unconfirmed past ``[subscriptions] pending_days``; how many."""
        async with self.app.sessions.begin() as session:
            return await subscriptions.expire_pending(
                session, now=self.clock(), days=self.app.settings.subscriptions.pending_days
            )

    async def reconcile(self) -> int:
        """Make the jobs match the table: add new or re-armed follow-ups, drop cancelled ones.

        The leader first makes sure every officer has a pending digest (in a transaction of
        its own, so no row lock is held while it waits for the digest lock). Returns the
        number of jobs added or moved.
        """
        now = self.clock()
        if self.is_leader:
            async with self.app.sessions.begin() as session:
                added = await followups.ensure_digests(session, now=now, tz=self.tz)
            if added:
                logger.info("scheduled the first weekly digest of %d officer(s)", len(added))
        async with self.app.sessions.begin() as session:
            await followups.rearm_stalled(session, now)
            wanted = await followups.pending(session)
        changed = 0
        for fid, due in wanted.items():
            if fid in self._in_flight:
                continue
            job_id = f"{JOB_PREFIX}{fid}"
            job: Job | None = self.scheduler.get_job(job_id)
            if job is not None and self._due.get(fid) == due:
                continue
            trigger = DateTrigger(run_date=max(due, now), timezone=UTC)
            if job is not None:
                job.reschedule(trigger)
            else:
                self.scheduler.add_job(
                    self._fire_job,
                    trigger,
                    args=[fid],
                    id=job_id,
                    replace_existing=True,
                    misfire_grace_time=None,
                    coalesce=True,
                )
            self._due[fid] = due
            changed += 1
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and int(job.id.removeprefix(JOB_PREFIX)) not in wanted:
                self._remove(job.id)
        for fid in set(self._due) - wanted.keys():
            del self._due[fid]
        if changed:
            logger.debug("scheduler: %d follow-up job(s) added or moved", changed)
        return changed

    def _remove(self, job_id: str) -> None:
        try:
            self.scheduler.remove_job(job_id)
        except JobLookupError:
            pass  # it ran meanwhile

    @contextlib.contextmanager
    def _running_job(self) -> Iterator[None]:
        """Count the current job among those stop() waits for, until it ends."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)

    async def _fire_job(self, followup_id: int) -> None:
        with self._running_job():
            await self._fire(followup_id)

    async def _fire(self, followup_id: int) -> None:
        self._in_flight.add(followup_id)
        try:
            async with self._slots:
                if not self.is_leader or self._stopping:
                    return  # a job that starts while we stop is fired by the next start
                fired = await followups.fire(self.app, followup_id, self.clock())
                if fired is not None:
                    self.fired += 1
        except Exception:
            logger.exception("follow-up %s could not be fired; the reconcile will retry it", followup_id)
            self._due.pop(followup_id, None)
        finally:
            self._in_flight.discard(followup_id)

    # -- shutdown ------------------------------------------------------------------------

    async def stop(self, *, timeout: float = 15.0) -> None:
        """Stop scheduling; let follow-ups being fired finish; release the leader lock."""
        self._stopping = True
        if self._campaign is not None:
            self._campaign.cancel()
            await asyncio.gather(self._campaign, return_exceptions=True)
        # Let follow-ups being fired (and a reconcile) finish first: APScheduler's asyncio
        # executor cancels the jobs still running when it shuts down, which would leave a
        # half-fired row behind.
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=timeout)
            if late:
                logger.warning("%d scheduler job(s) still running at shutdown", len(late))
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.is_leader = False
        if self._lock_conn is not None:
            try:
                await self._lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
            except (SQLAlchemyError, OSError):
                logger.warning("could not release the scheduler leader lock (it goes with the connection)")
            finally:
                await self._lock_conn.close()
                self._lock_conn = None


async def start_scheduler(
    app: App,
    *,
    reconcile_seconds: float = 5.0,
    lock_retry_seconds: float = 3.0,
    concurrency: int = 8,
    clock: Callable[[], datetime] = utcnow,
) -> RunningScheduler:
    """Start this process's follow-up scheduler (see the module docstring)."""
    running = RunningScheduler(
        app,
        reconcile_seconds=reconcile_seconds,
        lock_retry_seconds=lock_retry_seconds,
        concurrency=concurrency,
        clock=clock,
    )
    await running.start()
    app.extras["scheduler"] = running
    return running
