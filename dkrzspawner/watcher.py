"""One batched Slurm query per interval for every job the hub knows.

Spawners never ask Slurm about their job themselves: they register the job id here and read the last
status. A failed, slow or garbled query changes nothing; a job counts as ended only when Slurm says so
(squeue's state, or the job missing from a successful squeue and then sacct's final state).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from .slurm import JobUnknown, SlurmError

log = logging.getLogger("dkrzspawner.watcher")

#: final states: the job is over and its resources are free
ENDED_STATES = frozenset(
    "BOOT_FAIL CANCELLED COMPLETED DEADLINE FAILED NODE_FAIL OUT_OF_MEMORY PREEMPTED REVOKED TIMEOUT GONE".split()
)
SQUEUE_FORMAT = "%i|%T|%B|%r|%S|%L|%P|%u"
SACCT_FORMAT = "JobIDRaw,State,ExitCode,Elapsed,Timelimit"
# How many successful squeue answers may miss a job before it counts as gone when sacct cannot tell.
MISSES_BEFORE_GONE = 2


@dataclass
class JobStatus:
    """What Slurm last said about one job."""

    job_id: str
    state: str
    host: str | None = None
    reason: str | None = None
    start_time: str | None = None
    time_left: str | None = None
    partition: str | None = None
    exit_code: str | None = None
    cancelled_by: str | None = None
    seen: float = field(default_factory=time.time)

    @property
    def ended(self) -> bool:
        """Slurm says the job is over."""
        return self.state in ENDED_STATES

    @property
    def over(self) -> bool:
        """The job's programs have ended (final state, or Slurm still cleaning up after them)."""
        return self.ended or self.state == "COMPLETING"

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


def _none(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "n/a", "N/A", "None", "(null)", "NONE", "Unknown") else value


def parse_squeue(text: str) -> dict[str, JobStatus]:
    """Parse ``squeue -h -o SQUEUE_FORMAT`` output; ValueError on any line that does not fit."""
    jobs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 8 or not parts[0].strip().isdigit() or not parts[1].strip().isupper():
            raise ValueError(f"unexpected squeue line: {line!r}")
        job_id, state, host, reason, start, left, partition, _user = parts
        jobs[job_id.strip()] = JobStatus(
            job_id=job_id.strip(), state=state.strip(), host=_none(host), reason=_none(reason),
            start_time=_none(start), time_left=_none(left), partition=_none(partition),
        )
    return jobs


def parse_sacct(text: str) -> dict[str, JobStatus]:
    """Parse ``sacct -X -n -P -o SACCT_FORMAT``; ValueError on any line that does not fit."""
    jobs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 or not parts[0].isdigit():
            raise ValueError(f"unexpected sacct line: {line!r}")
        job_id, state, exit_code, _elapsed, _limit = parts
        words = state.split()
        cancelled_by = words[2] if len(words) == 3 and words[1] == "by" else None
        jobs[job_id] = JobStatus(job_id=job_id, state=words[0] if words else "", exit_code=exit_code,
                                 cancelled_by=cancelled_by)
    return jobs


class JobWatcher:
    """Polls Slurm for every watched job in one command per interval.

    ``interval`` applies while all jobs are settled; ``fast_interval`` while any job is marked urgent
    (starting, stopping) or someone awaits :meth:`refresh`.
    """

    def __init__(self, runner, *, interval=30.0, fast_interval=1.0, jitter=0.1, accounting=True,
                 squeue="squeue", sacct="sacct"):
        self.runner = runner
        self.interval = interval
        self.fast_interval = fast_interval
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
        #: the last query's failure, or None when it succeeded
        self.last_error: SlurmError | None = None
        self.cycles = 0

    # -- what spawners use -------------------------------------------------------------------------
    def watch(self, job_id: str):
        """Start watching ``job_id`` (idempotent)."""
        self._jobs.setdefault(str(job_id), None)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    def unwatch(self, job_id: str):
        self._jobs.pop(str(job_id), None)
        self._misses.pop(str(job_id), None)
        self._urgent.pop(str(job_id), None)

    def status(self, job_id: str) -> JobStatus | None:
        """The last status Slurm gave, or None if Slurm has not answered yet."""
        return self._jobs.get(str(job_id))

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

    async def refresh(self):
        """Ask now (batched with everyone else who asks) and wait for the answer."""
        event = self._polled
        self._wake.set()
        await event.wait()

    # -- the loop ----------------------------------------------------------------------------------
    async def _loop(self):
        while self._jobs:
            await self.poll_once()
            delay = self.fast_interval if self._urgent else self.interval
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
        self._task = None

    async def poll_once(self):
        """One query for every watched job; then wake everyone waiting for it."""
        self._wake.clear()
        event, self._polled = self._polled, asyncio.Event()
        try:
            await self._query()
        finally:
            self.cycles += 1
            event.set()

    async def _query(self):
        ids = sorted(self._jobs, key=int)
        if not ids:
            return
        argv = [self.squeue, "-h", "-t", "all", "-j", ",".join(ids), "-o", SQUEUE_FORMAT]
        try:
            found = parse_squeue((await self.runner.run(argv)).stdout)
        except JobUnknown:
            found = {}
        except (SlurmError, ValueError) as exc:
            self._failed("squeue", exc)
            return
        self.last_error = None
        for job_id, status in found.items():
            if job_id in self._jobs:
                self._jobs[job_id] = status
                self._misses.pop(job_id, None)
        missing = [job_id for job_id in ids if job_id not in found]
        if missing:
            await self._settle_missing(missing)

    async def _settle_missing(self, missing):
        """Jobs slurmctld no longer knows: sacct tells how they ended; without it, repeated misses do."""
        final = {}
        if self.accounting:
            argv = [self.sacct, "-X", "-n", "-P", "-j", ",".join(missing), "-o", SACCT_FORMAT]
            try:
                final = parse_sacct((await self.runner.run(argv)).stdout)
            except (SlurmError, ValueError) as exc:
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
            if self._misses[job_id] >= MISSES_BEFORE_GONE:
                log.warning("Job %s is unknown to squeue and sacct: counting it as gone", job_id)
                self._jobs[job_id] = JobStatus(job_id=job_id, state="GONE")

    def _failed(self, what, exc):
        self.last_error = exc if isinstance(exc, SlurmError) else None
        log.warning("%s query failed, job states unchanged: %s", what, exc)
