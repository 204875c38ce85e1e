"""One batched Slurm query per interval for every job the hub knows.

Spawners never ask Slurm about their job themselves: they register the job id here and read the last
status. A failed, slow or garbled query changes nothing (it is logged and kept in :attr:`JobWatcher.last_error`);
a job counts as ended only when Slurm says so (squeue's state, or the job missing from a successful squeue and
then sacct's final state). The queries themselves are :mod:`dkrzspawner.slurm.jobs`' (``job_states``,
``queue_order``, ``accounted_states``): this module builds no command line. Knows nothing of JupyterHub; imports
only :mod:`dkrzspawner.slurm` and :mod:`dkrzspawner.metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from . import metrics
from .slurm import JobUnknown, SlurmError, jobs
from .slurm.jobs import MISSES_BEFORE_GONE, JobStatus

#: the loop's queries are at least this many seconds apart: the starts, stops and refreshes that ask within it
#: share the next query (a class whose 30 jobs are submitted within a second costs a few queries, not 30)
MIN_GAP_SECONDS = 0.25


class JobWatcher:
    """Polls Slurm for every watched job in one command per interval.

    ``interval`` applies while all jobs are settled; ``fast_interval`` while any job is marked urgent
    (starting, stopping) and not pending; ``pending_interval`` while urgent jobs wait in the queue (the
    server reports its port itself, so the queue wait needs no fast polling). :meth:`refresh` asks at once, or
    ``min_gap`` seconds (at most ``fast_interval``) after the last query began when that was sooner: whoever asks
    meanwhile shares that query.
    """

    def __init__(self, runner, *, interval=30.0, fast_interval=1.0, pending_interval=5.0, jitter=0.1,
                 accounting=True, as_users=False, squeue="squeue", sacct="sacct", log=None,
                 min_gap=MIN_GAP_SECONDS):
        self.runner = runner
        self.min_gap = min_gap
        self._queried_at = float("-inf")  # when the loop's last query began (monotonic)
        #: ask as each job's owner (one query per user with jobs): for PrivateData=jobs without operator rights
        self.as_users = as_users
        self._owners: dict[str, str | None] = {}
        self.log = log or logging.getLogger("dkrzspawner.watcher")
        self.interval = interval
        metrics.WATCHER_INTERVAL_SECONDS.set(interval)  # what the alert on slow cycles compares them with
        self.fast_interval = fast_interval
        self.pending_interval = pending_interval
        self.jitter = jitter
        self.accounting = accounting
        self.squeue = squeue
        self.sacct = sacct
        self._jobs: dict[str, JobStatus | None] = {}
        self._misses: dict[str, int] = {}
        self._urgent: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._polled = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listeners: dict[str, object] = {}
        self._positions: dict[str, tuple[int, int]] = {}
        self._positions_at = 0.0
        self._in_flight: set[str] = set()  # the jobs the query on its way asks about ...
        self._in_flight_done = asyncio.Event()  # ... and what is set when it has answered
        #: the last query's failure, or None when it succeeded
        self.last_error: SlurmError | None = None
        self.cycles = 0

    # -- what spawners use -------------------------------------------------------------------------
    def watch(self, job_id: str, on_over=None, user: str | None = None):
        """Start watching ``job_id`` of ``user`` (idempotent); ``on_over()`` is called once it is over."""
        self._jobs.setdefault(str(job_id), None)
        if user is not None:
            self._owners[str(job_id)] = user
        if on_over is not None:
            self._listeners[str(job_id)] = on_over
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    def unwatch(self, job_id: str):
        self._jobs.pop(str(job_id), None)
        self._listeners.pop(str(job_id), None)
        self._owners.pop(str(job_id), None)
        self._misses.pop(str(job_id), None)
        self._urgent.pop(str(job_id), None)
        metrics.publish_servers(self._jobs.values())

    def status(self, job_id: str) -> JobStatus | None:
        """The last status Slurm gave, or None if Slurm has not answered yet."""
        return self._jobs.get(str(job_id))

    def position(self, job_id: str) -> tuple[int, int] | None:
        """(place, number of pending jobs) in the job's partition while it is pending, else None."""
        status = self.status(job_id)
        if status is None or status.state != "PENDING":
            return None
        return self._positions.get(str(job_id))

    def urgent(self, job_id: str):
        """Context manager: poll at the fast cadence while the block runs (a start or a stop)."""
        watcher = self

        class _Urgent:
            def __enter__(self):
                watcher._urgent[job_id] = watcher._urgent.get(job_id, 0) + 1
                watcher._wake.set()

            def __exit__(self, *exc):
                left = watcher._urgent.get(job_id, 1) - 1
                if left > 0:
                    watcher._urgent[job_id] = left
                else:
                    watcher._urgent.pop(job_id, None)

        return _Urgent()

    async def next_poll(self):
        """Wait until the next query has finished (successful or not)."""
        event = self._polled
        await event.wait()

    async def refresh(self, job_id: str | None = None):
        """Ask now (batched with everyone else who asks) and wait for the answer.

        With ``job_id``, a query already on its way that covers that job is answer enough: after a hub
        restart every spawner asks at once, and the watcher's first query answers them all.
        """
        if self._task is None or self._task.done():
            await self.poll_once()  # no loop runs (nothing watched): ask once, here
            return
        if job_id is not None and str(job_id) in self._in_flight:
            await self._in_flight_done.wait()
            return
        event = self._polled
        self._wake.set()
        await event.wait()

    # -- the loop ----------------------------------------------------------------------------------
    async def _loop(self):
        while self._jobs:
            gap = self._queried_at + min(self.min_gap, self.fast_interval) - time.monotonic()
            if gap > 0:  # woken soon after a query: those who ask meanwhile share the next one
                await asyncio.sleep(gap)
            self._queried_at = time.monotonic()
            try:
                await self.poll_once()
            except Exception:  # never let one bad cycle end the watching for good
                self.log.exception("watcher cycle failed; job states unchanged")
            delay = self.delay() * (1 + random.uniform(-self.jitter, self.jitter))
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
        self._task = None

    def delay(self) -> float:
        """Seconds until the next query, from what the watched jobs are doing."""
        if not self._urgent:
            return self.interval
        waiting = [self._jobs.get(job_id) for job_id in self._urgent]
        if all(status is not None and status.state == "PENDING" for status in waiting):
            return self.pending_interval
        return self.fast_interval

    async def poll_once(self):
        """One query for every watched job; then wake everyone waiting for it."""
        self._wake.clear()
        event, self._polled = self._polled, asyncio.Event()
        before = {job_id for job_id, status in self._jobs.items() if status is not None and status.over}
        self._in_flight, self._in_flight_done = set(self._jobs), event
        started = time.monotonic()
        try:
            await self._query()
        finally:
            metrics.WATCHER_CYCLE_SECONDS.observe(time.monotonic() - started)
            metrics.publish_servers(self._jobs.values())
            self._in_flight = set()
            self.cycles += 1
            event.set()
        for job_id, status in list(self._jobs.items()):
            if status is not None and status.over and job_id not in before and job_id in self._listeners:
                self._listeners[job_id]()

    async def _query(self):
        groups: dict[str | None, list[str]] = {}
        for job_id in sorted(self._jobs, key=int):
            groups.setdefault(self._owners.get(job_id) if self.as_users else None, []).append(job_id)
        if groups:
            await asyncio.gather(*(self._query_group(ids, user) for user, ids in groups.items()))
            await self._update_positions()

    async def _query_group(self, ids: list[str], user: str | None):
        """One squeue for ``ids``, run as ``user`` (None: the hub's own account)."""
        try:
            found = await jobs.job_states(self.runner, ids, user=user, program=self.squeue)
        except JobUnknown:  # Slurm knows none of them: an answer, settled below
            found = {}
        except SlurmError as exc:
            self._failed("squeue", exc)
            return
        self.last_error = None
        for job_id, status in found.items():
            if job_id in self._jobs:
                self._jobs[job_id] = status
                self._misses.pop(job_id, None)
        missing = [job_id for job_id in ids if job_id not in found]
        if missing:
            await self._settle_missing(missing, user)

    async def _update_positions(self):
        """Where our pending jobs stand in their partitions' queues; asked at the slow interval only."""
        pending = [s for s in self._jobs.values() if s is not None and s.state == "PENDING"]
        if not pending:
            self._positions = {}
            return
        if time.monotonic() - self._positions_at < self.interval:
            return
        self._positions_at = time.monotonic()
        partitions = sorted({p for s in pending for p in (s.partition or "").split(",") if p})
        try:
            queues = await jobs.queue_order(self.runner, partitions, program=self.squeue)
        except SlurmError as exc:  # positions are a courtesy: the last ones stay, job states are untouched
            self.log.warning("queue position query failed: %s", exc)
            return
        positions = {}
        for status in pending:
            queue = queues.get((status.partition or "").split(",")[0], [])
            if status.job_id in queue:
                positions[status.job_id] = (queue.index(status.job_id) + 1, len(queue))
        self._positions = positions

    async def _settle_missing(self, missing, user=None):
        """Jobs squeue did not list: sacct tells how they ended; without accounting, repeated misses do.

        With accounting, a job that sacct does not know either is kept: every job that ever existed is in
        sacct, so such a job is hidden from us (PrivateData), not gone.
        """
        final = {}
        if self.accounting:
            try:
                final = await jobs.accounted_states(self.runner, missing, user=user, program=self.sacct)
            except SlurmError as exc:
                self._failed("sacct", exc)
                return
        for job_id in missing:
            if job_id not in self._jobs:
                continue
            status = final.get(job_id)
            if status is not None:
                if status.ended:
                    self._jobs[job_id] = status
                continue  # sacct still counts it as alive: not gone
            self._misses[job_id] = self._misses.get(job_id, 0) + 1
            if self.accounting:
                if self._misses[job_id] == MISSES_BEFORE_GONE:
                    self.log.warning("Job %s is in neither squeue nor sacct: hidden by PrivateData? Kept as it was; "
                                     "see DKRZSpawner.watch_as_users", job_id)
            elif self._misses[job_id] >= MISSES_BEFORE_GONE:
                self.log.warning("Job %s is unknown to squeue and sacct: counting it as gone", job_id)
                self._jobs[job_id] = JobStatus(job_id=job_id, state="GONE")

    def _failed(self, what, exc: SlurmError):
        self.last_error = exc
        self.log.warning("%s query failed, job states unchanged: %s", what, exc)
