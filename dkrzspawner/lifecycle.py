"""One Jupyter server's Slurm job, from the pre-flight check to its end, without JupyterHub.

:class:`ServerJob` runs one start attempt: the pre-flight ``sbatch --test-only`` (Slurm's refusal in plain words,
or its estimated start), the submission as the user (adopting the job that a timed-out ``sbatch`` created
anyway, found by its tag), the queue wait, the port the job reports, and the server answering on the node Slurm
names. It also tells how a job ended (Slurm's final state in plain words, the last lines of its output), polls,
stops and cancels. Its progress is plain data (:class:`Progress`); what must survive a hub restart is a
:class:`JobRecord`, which the caller persists whenever ``on_record`` is called. A failure the user should read
is a :class:`StartFailed` of one sentence.

Imports :mod:`dkrzspawner.slurm`, :mod:`dkrzspawner.watcher`, :mod:`dkrzspawner.reasons` and
:mod:`dkrzspawner.metrics`; never JupyterHub, tornado or the spawner (:mod:`dkrzspawner.spawner` is the glue).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import pwd
import time
from typing import Callable

from . import metrics, reasons
from .slurm import SlurmError, SlurmRejected, SlurmUnreachable, jobs
from .units import slurm_duration_seconds

#: how often ``find_tagged`` is asked again while Slurm does not answer, after a submission that did not answer
FIND_RETRY_SECONDS = 2.0
#: how often sacct is asked for a job's final record before the watcher's last word is taken
SACCT_TRIES = 5


class StartFailed(Exception):
    """A start that failed for a reason the user reads: ``message`` is one sentence; ``reason`` a short code
    (``slurm_rejected``, ``queue_timeout``, ...); ``status_code`` the HTTP status a REST client gets."""

    def __init__(self, message: str, reason: str, status_code: int = 400):
        super().__init__(message)
        self.message, self.reason, self.status_code = message, reason, status_code


@dataclasses.dataclass
class JobRecord:
    """What a hub restart must not lose about a server's job: saved in the spawner's state under these names."""

    job_id: str | None = None
    job_host: str | None = None
    job_port: int = 0
    #: the tag given to the job with ``--comment``: a timed-out ``sbatch`` can still be found by it
    job_comment: str | None = None
    #: the partition of the request, for the policy's per-partition counts
    job_partition: str | None = None
    #: when the current job started to run (ISO 8601 with its UTC offset), once the hub has seen it run
    job_started: str | None = None
    #: how the last job of this server ended: ``job_id``, ``state``, ``reason``, ``at``
    last_end: dict = dataclasses.field(default_factory=dict)

    def to_state(self) -> dict:
        """The fields that are set, for the spawner's state."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value}

    def load(self, state: dict) -> None:
        """Take the fields that ``state`` has."""
        for field in dataclasses.fields(self):
            if field.name in state:
                setattr(self, field.name, state[field.name])

    def forget_job(self) -> None:
        """The job is gone: keep only how it ended."""
        self.job_id = self.job_host = self.job_comment = self.job_partition = self.job_started = None
        self.job_port = 0


@dataclasses.dataclass(frozen=True)
class Submission:
    """One validated, rendered job, ready to submit as ``user``."""

    user: str
    script: str
    env: dict = dataclasses.field(default_factory=dict)
    #: the ``--comment`` the script gives the job
    tag: str = ""
    partition: str = ""
    job_name: str = ""
    #: the job's output file as ``#SBATCH --output`` has it (Slurm's ``%j`` and ``%x`` still in it)
    output: str = ""
    #: the request in words, for the progress page (``partition shared, 2 cores, 5000M memory, walltime 06:00:00``;
    #: :attr:`~dkrzspawner.options.JobRequest.shape`)
    summary: str = ""


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """How long each wait may take, in seconds."""

    #: in the queue, before the spawn gives up and cancels the job
    queue: float = 3600.0
    #: from the job running until its server answers
    server: float = 300.0
    #: for Slurm to confirm the end of a cancelled job
    stop: float = 60.0
    #: for Slurm to confirm the end after the job side said its server ended
    end_confirm: float = 60.0


class Progress:
    """A start's progress events as plain data (``{"progress": 0-100, "message": text}``), for the hub's
    progress page; :meth:`follow` yields them as they come until the start is done."""

    def __init__(self, log: logging.Logger | None = None, name: str = ""):
        self.events: list[dict] = []
        self.done = False
        self._changed = asyncio.Event()
        self._log, self._name = log, name

    def emit(self, progress: int, message: str) -> None:
        if self._log is not None:
            self._log.info("%s: %s", self._name, message)
        self.events.append({"progress": progress, "message": message})
        self._changed.set()

    def finish(self) -> None:
        self.done = True
        self._changed.set()

    async def follow(self):
        seen = 0
        while True:
            while seen < len(self.events):
                yield self.events[seen]
                seen += 1
            if self.done:
                return
            self._changed.clear()
            await self._changed.wait()


def fill_output_pattern(output: str, job_id: str, job_name: str) -> str:
    """The output file's path once the job exists (Slurm's ``%j`` and ``%x``)."""
    return output.replace("%j", str(job_id)).replace("%x", job_name)


def utc_time(slurm_time: str | None) -> str | None:
    """Slurm's local ``2026-11-22T03:01:31`` as ISO 8601 with its UTC offset, or None when it is no time."""
    when = reasons.parse_slurm_time(slurm_time)
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="seconds") if when else None


def _user_of_uid(uid: str) -> str:
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return uid


class ServerJob:
    """One server's job: one start attempt at a time, its end, its cancelling (see the module's docstring).

    ``record`` is the caller's :class:`JobRecord` (changed in place; ``on_record()`` is called whenever it must be
    saved); ``on_over()`` is called when the watcher sees the job end. ``on_submitted(job_id)`` is called once a
    job exists, ``on_end(end)`` once its end is known: ``end`` is the record's ``last_end`` and ``started``,
    ``elapsed`` (seconds it ran, from sacct or the hub's clock; None if unknown) and ``tail`` (its output's
    last lines when read, else '').
    """

    def __init__(self, runner, watcher, record: JobRecord, *, user: str, timeouts: Timeouts = Timeouts(),
                 accounting: bool = True, tail_lines: int = 20, output: str = "", job_name: str = "",
                 on_record: Callable[[], None] = lambda: None, on_over: Callable[[], None] = lambda: None,
                 on_submitted: Callable[[str], None] = lambda job_id: None,
                 on_end: Callable[[dict], None] = lambda end: None, log: logging.Logger | None = None, name: str = ""):
        self.runner, self.watcher, self.record = runner, watcher, record
        self.user, self.timeouts, self.accounting, self.tail_lines = user, timeouts, accounting, tail_lines
        #: the output file pattern and job name of the current job (for its output tail)
        self.output, self.job_name = output, job_name
        self.on_record, self.on_over = on_record, on_over
        self.on_submitted, self.on_end = on_submitted, on_end
        self.log = log or logging.getLogger("dkrzspawner.lifecycle")
        self.name = name or user
        self.progress = Progress(self.log, self.name)
        self.progress.finish()  # nothing is starting until start() or resume()
        #: Slurm's estimated start from the pre-flight of the current start (``2026-11-22T05:40:00``), or None
        self.estimated_start: str | None = None
        self._port: asyncio.Future | None = None
        self._submitted_at: float | None = None  # set by a submission of this start; not after a hub restart

    # -- one start attempt ---------------------------------------------------------------------------------
    async def start(self, submission: Submission) -> tuple[str, int]:
        """Check, submit and wait until the job's server answers; returns (host, port). Raises
        :class:`StartFailed`; the job is cancelled when the start fails (not when it is cancelled: the caller
        then stops it, or the hub shuts down and resumes it after the restart)."""
        self._begin(submission)
        try:
            await self.preflight(submission)
            await self._submit(submission)
            return await self._serve()
        except Exception:
            if self.record.job_id:  # our own failure: the job must not outlive the spawn
                await self.cancel_quietly()
            raise
        finally:
            self.progress.finish()

    async def resume(self) -> tuple[str, int]:
        """After a hub restart during a start: wait for the recorded job and its server as :meth:`start` does."""
        self.log.info("%s: resuming the start of job %s after a hub restart", self.name, self.record.job_id)
        self._port = asyncio.get_running_loop().create_future()
        self.progress = Progress(self.log, self.name)
        self._submitted_at = None
        try:
            return await self._serve()
        finally:
            self.progress.finish()

    def _begin(self, submission: Submission) -> None:
        self.progress = Progress(self.log, self.name)
        self._port = asyncio.get_running_loop().create_future()
        self._submitted_at = None
        self.output, self.job_name = submission.output, submission.job_name
        self.record.job_id = self.record.job_host = self.record.job_started = None
        self.record.job_port = 0
        self.record.job_partition = submission.partition

    async def preflight(self, submission: Submission) -> None:
        """``sbatch --test-only`` as the user with the very script: Slurm's refusal in plain words, or its
        estimated start. Creates no job. When Slurm does not answer, the check is skipped: the real submission
        follows, and it knows how to find a job that a timed-out ``sbatch`` created anyway."""
        self.estimated_start = None
        try:
            estimate = await jobs.test_only(self.runner, submission.script, user=submission.user,
                                            env=submission.env)
        except SlurmRejected as exc:
            raise StartFailed(f"Slurm would refuse this request: {reasons.explain_refusal(exc.reason)}.",
                              "slurm_rejected") from None
        except SlurmUnreachable as exc:
            self.log.warning("%s: pre-flight sbatch --test-only unanswered (%s); submitting anyway",
                             self.name, exc.reason)
            self.progress.emit(5, f"Slurm did not answer the pre-flight check ({exc.reason}); submitting anyway.")
            return
        self.estimated_start = estimate
        if estimate:
            self.progress.emit(5, f"Slurm accepts the request; it is {reasons.describe_start(estimate)}.")

    async def _submit(self, submission: Submission) -> None:
        self.record.job_comment = submission.tag
        self.on_record()  # the tag first: a hub restart mid-sbatch can still find the job
        try:
            self.record.job_id = await jobs.submit(self.runner, submission.script, user=submission.user,
                                                   env=submission.env)
        except SlurmRejected as exc:
            raise StartFailed(f"Slurm refused the job: {exc.reason}", "slurm_rejected") from None
        except SlurmError as exc:  # unanswered or garbled: the job may exist all the same
            self.progress.emit(5, f"Slurm did not answer the submission ({exc.reason}); looking for the job.")
            self.record.job_id = await self._find_tagged(submission.tag, give_up_after=self.timeouts.queue,
                                                         why=exc.reason)
            self.log.warning("sbatch for %s failed (%s) but created job %s: adopting it",
                             self.name, exc.reason, self.record.job_id)
        self._submitted_at = time.monotonic()
        self.on_record()
        self.on_submitted(self.record.job_id)
        self.watch()
        self.progress.emit(10, f"Submitted Slurm job {self.record.job_id}: {submission.summary}.")

    async def _find_tagged(self, tag: str, give_up_after: float, why: str) -> str:
        """The job carrying ``tag``, asked until Slurm answers (at most ``give_up_after`` seconds). Only Slurm
        saying that no job has the tag means that none was started."""
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                job_id = await jobs.find_tagged(self.runner, self.user, tag)
            except SlurmUnreachable as exc:
                if time.monotonic() > deadline:
                    raise StartFailed(f"Slurm did not answer whether it took the job ({exc.reason}); if a job "
                                      f"named {self.job_name} appears in squeue, cancel it. Please try again.",
                                      "slurm_unreachable", status_code=503) from None
                await asyncio.sleep(FIND_RETRY_SECONDS)
                continue
            except SlurmError as exc:
                raise StartFailed(f"Slurm did not say whether it took the job ({exc}); if a job named "
                                  f"{self.job_name} appears in squeue, cancel it. Please try again.",
                                  "slurm_unreachable", status_code=503) from None
            if job_id is None:
                raise StartFailed(f"Slurm did not take the job ({why}); no job was started. Please try again.",
                                  "slurm_unreachable", status_code=503)
            return job_id

    async def _serve(self) -> tuple[str, int]:
        """Wait (queue, then server start) until the job's server listens; remember where."""
        with self.watcher.urgent(self.record.job_id):
            host, port = await self._wait_until_serving()
        self.record.job_host, self.record.job_port = host, port
        self.on_record()
        self.progress.emit(100, f"Jupyter server of job {self.record.job_id} answers on {host}:{port}.")
        return host, port

    def receive_port(self, port: int) -> bool:
        """The job side's port report; False if no start is waiting for one. The same port reported again (a
        retry after a lost reply) is accepted again."""
        future = self._port
        if future is None:
            return False
        if future.done():
            return not future.cancelled() and future.result() == port
        future.set_result(port)
        return True

    async def _wait_until_serving(self) -> tuple[str, int]:
        job_id = self.record.job_id
        queued_since = time.monotonic()
        running_since = None
        last = None
        while not self._port.done():
            status = self.watcher.status(job_id)
            if status is not None:
                if status.over:
                    await self._fail_ended(status)
                message = self._status_message(status)
                if message != last:
                    last = message
                    self.progress.emit(50 if status.running else 20, message)
                if status.running and running_since is None:
                    running_since = time.monotonic()
                    self._seen_running(status)
            now = time.monotonic()
            if running_since is None and now - queued_since > self.timeouts.queue:
                raise StartFailed(f"Job {job_id} waited longer than {self.timeouts.queue:g} s in the queue; "
                                  "it was cancelled.", "queue_timeout")
            self._check_server_time(running_since)
            poll = asyncio.ensure_future(self.watcher.next_poll())
            await asyncio.wait([poll, self._port], return_when=asyncio.FIRST_COMPLETED)
            poll.cancel()
        port = self._port.result()
        self.progress.emit(80, f"Jupyter server of job {job_id} reported port {port}.")
        host = await self._batch_host()
        await self._wait_listening(host, port, running_since or time.monotonic())
        return host, port

    def _check_server_time(self, running_since: float | None) -> None:
        if running_since is not None and time.monotonic() - running_since > self.timeouts.server:
            raise StartFailed(f"The Jupyter server of job {self.record.job_id} did not start within "
                              f"{self.timeouts.server:g} s.", "server_timeout")

    def _status_message(self, status) -> str:
        """The progress line for what Slurm says now (one message per change)."""
        job_id = self.record.job_id
        if status.state == "PENDING":
            place, total = self.watcher.position(job_id) or (None, None)
            return reasons.pending_message(job_id, status.reason, status.start_time, place, total)
        if status.running:
            return f"Job {job_id} is running on {status.host}; starting the Jupyter server."
        return f"Job {job_id} is {status.state.lower()}."

    def _seen_running(self, status=None) -> None:
        """The job runs: when it started is recorded (Slurm's start, else now), its queue wait goes into the
        metrics (once per submission)."""
        if not self.record.job_started:
            self.record.job_started = utc_time(getattr(status, "start_time", None)) or \
                datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if self._submitted_at is not None:
            metrics.QUEUE_WAIT_SECONDS.labels(partition=self.record.job_partition or "unknown").observe(
                time.monotonic() - self._submitted_at)
            self._submitted_at = None

    async def _batch_host(self) -> str:
        """The node running the job, from Slurm (never from the job)."""
        while True:
            status = self.watcher.status(self.record.job_id)
            if status is not None and status.over:
                await self._fail_ended(status)
            if status is not None and status.running and status.host:
                self._seen_running(status)
                return status.host
            await self.watcher.refresh()

    async def _wait_listening(self, host: str, port: int, running_since: float) -> None:
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                writer.close()
                return
            except (OSError, asyncio.TimeoutError):
                pass
            status = self.watcher.status(self.record.job_id)
            if status is not None and status.over:
                await self._fail_ended(status)
            self._check_server_time(running_since)
            await asyncio.sleep(0.02)

    async def _fail_ended(self, status) -> None:
        try:
            tail, unread = await self.read_output_tail(), ""
        except SlurmError as exc:
            tail, unread = "", f" Its output ({self.output_path()}) could not be read: {exc.reason}."
        end = await self.record_end(status, tail)
        message = f"Job {self.record.job_id} ended before its Jupyter server started: {end['reason']}{unread}"
        if tail:  # indented: no line of the user's output can pass for a line of the hub's log
            message += " Last lines of its output:\n" + "\n".join("    " + line for line in tail.splitlines())
        raise StartFailed(message, "job_ended")

    # -- the end -------------------------------------------------------------------------------------------
    def output_path(self) -> str:
        """The current job's output file ('' when not known, e.g. the user has no home any more)."""
        return fill_output_pattern(self.output, self.record.job_id, self.job_name) if self.output else ""

    async def read_output_tail(self) -> str:
        """The last lines of the job's output (bounded, control characters removed; see
        :func:`dkrzspawner.slurm.jobs.output_tail`); '' when its file is not known or not a regular file. Raises
        :class:`~dkrzspawner.slurm.SlurmError` (logged here) when it cannot be read."""
        path = self.output_path()
        if not path:
            return ""
        try:
            return await jobs.output_tail(self.runner, self.user, path, self.tail_lines)
        except SlurmError as exc:
            self.log.warning("%s: cannot read the output of job %s (%s): %s", self.name, self.record.job_id,
                             path, exc)
            raise

    async def output_tail(self) -> str:
        """:meth:`read_output_tail`, or '' when it cannot be read (how the job ended is told all the same)."""
        try:
            return await self.read_output_tail()
        except SlurmError:
            return ""

    async def record_end(self, status, tail: str | None = None) -> dict:
        """Remember (record, log) why the job ended, in words; sacct has the final word when Slurm is done."""
        final = status
        if status.state == "COMPLETING" or (self.accounting and status.exit_code is None):
            final = await self._sacct_final(status)
        if tail is None and final.state not in ("COMPLETED", "CANCELLED"):  # a failure: its output says more
            tail = await self.output_tail()
        by = _user_of_uid(final.cancelled_by) if final.cancelled_by else None
        return self._ended(final, final.state, reasons.explain_end(final.state, final.exit_code, by, tail or ""),
                           tail or "")

    def _ended(self, status, state: str, reason: str, tail: str) -> dict:
        """Keep how the job ended (``record.last_end``), log it, and tell ``on_end``."""
        self.record.last_end = {"job_id": self.record.job_id, "state": state, "reason": reason,
                                "at": datetime.datetime.now().isoformat(timespec="seconds")}
        self.log.info("%s: job %s ended (%s): %s", self.name, self.record.job_id, state, reason)
        self.on_end(dict(self.record.last_end, started=self.record.job_started, elapsed=self._elapsed(status),
                         tail=tail))
        return self.record.last_end

    def _elapsed(self, final) -> float | None:
        """Seconds the job ran: sacct's ``Elapsed``, else from when the hub saw it start until now."""
        try:
            seconds = slurm_duration_seconds(final.elapsed or "")
        except ValueError:
            seconds = None
        if seconds is not None:
            return float(seconds)
        if self.record.job_started:
            started = datetime.datetime.fromisoformat(self.record.job_started)
            return (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
        return None

    async def _sacct_final(self, status):
        """sacct's record of how the job ended; the watcher's status if sacct cannot tell (yet)."""
        if not self.accounting:
            return status
        for _ in range(SACCT_TRIES):
            try:
                final = await jobs.final_state(self.runner, self.record.job_id)
            except SlurmError as exc:
                self.log.debug("%s: sacct for job %s: %s", self.name, self.record.job_id, exc)
                final = None
            if final is not None and final.ended:
                return final
            await asyncio.sleep(1)
        return status

    # -- polling, stopping, cancelling -------------------------------------------------------------------
    def watch(self) -> None:
        """Have the hub's watcher ask Slurm about the recorded job (batched with every other job)."""
        if self.record.job_id:
            self.watcher.watch(self.record.job_id, on_over=self.on_over, user=self.user)

    async def poll(self, wait: float) -> int | None:
        """None while the job is pending, running or not known (a failed query is never an end); else the exit
        status JupyterHub expects (0: completed). Waits at most ``wait`` seconds for a first answer."""
        if not self.record.job_id:
            if self.record.job_comment:  # an sbatch that did not answer, then the hub restarted: no orphans
                await self.cancel_unconfirmed()
            return 0
        self.watch()
        status = self.watcher.status(self.record.job_id)
        if status is None:
            # Nothing heard yet (e.g. just after a hub restart): ask, batched with all other spawners.
            try:
                await asyncio.wait_for(self.watcher.refresh(self.record.job_id), wait)
            except asyncio.TimeoutError:
                return None
            status = self.watcher.status(self.record.job_id)
        if status is not None and self._requeued(status):
            return await self._end_requeued(status)
        if status is not None and status.running and not self.record.job_started:
            self._seen_running(status)
            self.on_record()
        if status is None or not status.over:
            return None
        if self.record.last_end.get("job_id") != self.record.job_id:
            await self.record_end(status)
            self.on_record()
        return 0 if self.record.last_end.get("state") == "COMPLETED" else 1

    def _requeued(self, status) -> bool:
        """The job has served (its host and port are recorded), and Slurm now says it waits in the queue again
        or runs on another node: Slurm requeued it (node failure, an administrator's ``scontrol requeue``).
        Either way the server the hub knew is gone; the job's id is the same."""
        if not self.record.job_port or status.over:
            return False
        moved = status.running and status.host not in (None, self.record.job_host)
        return status.state in jobs.REQUEUED_STATES or moved

    async def _end_requeued(self, status) -> int:
        """Cancel a requeued job (it would start a new server nobody connects to, on the user's budget) and
        say why; the server counts as ended (exit status 1)."""
        job_id, host = self.record.job_id, self.record.job_host
        self.log.warning("%s: job %s was requeued by Slurm after its server on %s had started (now %s); "
                         "cancelling it", self.name, job_id, host, status.state)
        self._ended(status, "REQUEUED", reasons.explain_requeued(job_id, host, status.state), "")
        self.on_record()
        await self.cancel_quietly()
        return 1

    async def stop(self) -> None:
        """Cancel the job and wait (at most ``timeouts.stop``) for Slurm to confirm its end."""
        job_id = self.record.job_id
        if not job_id:
            return
        with self.watcher.urgent(job_id):
            status = self.watcher.status(job_id)
            if status is None or not status.ended:
                await jobs.cancel(self.runner, [job_id], user=self.user)
            deadline = time.monotonic() + self.timeouts.stop
            while time.monotonic() < deadline and self.record.job_id == job_id:
                status = self.watcher.status(job_id)
                if status is not None and status.ended:
                    if self.record.last_end.get("job_id") != job_id:
                        await self.record_end(status)
                    return
                await self.watcher.refresh()
        if self.record.job_id == job_id:
            self.log.warning("%s: Slurm has not confirmed the end of job %s within %g s",
                             self.name, job_id, self.timeouts.stop)

    async def confirm_end(self, job_id: str) -> None:
        """The job side said its server ended: ask Slurm now and at the fast cadence until it confirms the end
        (at most ``timeouts.end_confirm``); the watcher then calls ``on_over``."""
        with self.watcher.urgent(job_id):
            deadline = time.monotonic() + self.timeouts.end_confirm
            while time.monotonic() < deadline and self.record.job_id == job_id:
                status = self.watcher.status(job_id)
                if status is not None and status.over:
                    return
                await self.watcher.refresh(job_id)

    async def cancel_quietly(self) -> None:
        """Cancel the recorded job, logging (not raising) a failure; never cut short by a cancelled caller."""
        try:
            await asyncio.shield(jobs.cancel(self.runner, [self.record.job_id], user=self.user))
        except (SlurmError, asyncio.CancelledError) as exc:
            self.log.error("%s: could not cancel job %s: %s", self.name, self.record.job_id, exc)

    async def cancel_unconfirmed(self) -> None:
        """A submission that never answered, then a hub restart: cancel the job it may have created. When Slurm
        cannot say, the tag is kept and the next poll asks again."""
        try:
            job_id = await jobs.find_tagged(self.runner, self.user, self.record.job_comment)
        except SlurmError as exc:
            self.log.warning("%s: cannot tell yet whether the unconfirmed submission %s created a job (%s); "
                             "asking again at the next poll", self.name, self.record.job_comment, exc)
            return
        if job_id:
            self.log.warning("%s: cancelling job %s, submitted before a hub restart but never confirmed",
                             self.name, job_id)
            self.record.job_id = job_id
            await self.cancel_quietly()
        self.record.job_id = self.record.job_comment = None
        self.on_record()

    def summary(self) -> dict:
        """For the hub's home page: the job's state, node and walltime left (``ends_at``: when it runs out, in
        seconds since the epoch), or how the last one ended."""
        record = self.record
        status = self.watcher.status(record.job_id) if record.job_id else None
        summary = {"job_id": record.job_id, "state": status.state if status else None, "host": record.job_host,
                   "time_left": "", "ends_at": None, "waiting": "", "last_end": record.last_end or None}
        if status is not None and status.running:
            end = reasons.parse_slurm_time(status.end_time)
            summary["time_left"] = reasons.format_remaining(end)
            summary["ends_at"] = int(end.timestamp()) if end else None  # for the page's countdown
        elif status is not None and status.state == "PENDING":
            summary["waiting"] = reasons.explain_pending(status.reason)
        return summary
