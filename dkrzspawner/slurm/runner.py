"""Run Slurm commands: argument lists, never a shell; as the user through sudo; always with a timeout.

Knows nothing of JupyterHub. Failures are typed so that callers can tell "Slurm could not be asked"
(:class:`SlurmUnreachable`) from "Slurm said no" (:class:`SlurmRejected`) and "no such job"
(:class:`JobUnknown`). A caller must never read an unreachable controller as a dead job. Which commands are run
is the callers' business (the job commands: :mod:`.jobs`). Imports only :mod:`dkrzspawner.units` and
:mod:`dkrzspawner.metrics`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import getpass
import logging
import os
import re
import signal
import time
from dataclasses import dataclass

from .. import metrics
from ..units import USER_NAME

log = logging.getLogger("dkrzspawner.slurm")

# The environment every command starts from; nothing of the hub's own environment leaks through.
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Hub environment variables that tell Slurm's clients where their config is.
PASSED_FROM_HUB = ("SLURM_CONF",)
# The umask every command starts with. sbatch hands the submitting umask to the job (SLURM_UMASK), and
# slurmstepd creates the job's output file with it: private to the user, whatever the hub's own umask.
# (sudo keeps it: it runs the command with the union of this and its own ``umask`` default.)
COMMAND_UMASK = 0o077

_UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted|"
    r"Communication connection failure|Connection refused|Connection reset|"
    r"munge|Protocol authentication error|Slurm backup controller in standby|"
    r"Transport endpoint|Unable to establish controller machine|slurmdbd.*(unavailable|connection)",
    re.IGNORECASE,
)
_JOB_UNKNOWN = re.compile(r"Invalid job id specified", re.IGNORECASE)


class SlurmError(Exception):
    """A Slurm command did not do what was asked."""

    #: the failure's kind in the metrics (``dkrzspawner_slurm_command_errors_total``)
    kind = "error"

    def __init__(self, argv, returncode, stderr, message=None):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(message or self.stderr or f"{self.argv[0] if self.argv else 'a command'} exited with "
                                                   f"{returncode}")

    @property
    def reason(self) -> str:
        """Slurm's own words, without the ``sbatch: error:`` prefixes."""
        lines = [re.sub(r"^\w+: error: ", "", line).strip() for line in self.stderr.splitlines()]
        lines = [line for line in lines if line]
        return lines[-1] if lines else str(self)


class SlurmUnreachable(SlurmError):
    """The controller (or munge, or slurmdbd) could not be reached, or the command timed out.

    Nothing can be concluded about any job from this.
    """

    kind = "unreachable"


class SlurmTimeout(SlurmUnreachable):
    """The command ran longer than its timeout and was stopped."""

    kind = "timeout"


class SlurmRejected(SlurmError):
    """Slurm answered and refused the request (bad partition, account, limits, ...)."""

    kind = "rejected"


class JobUnknown(SlurmError):
    """Slurm answered that it does not know the job id (purged from slurmctld's memory)."""

    kind = "job_unknown"


class OutputTooLarge(SlurmUnreachable):
    """The command wrote more than the runner reads (:attr:`SlurmRunner.max_output`); it was stopped.

    Like an unreachable controller, this says nothing about any job.
    """

    kind = "output_too_large"


class UnexpectedOutput(SlurmError):
    """A Slurm command answered with output that cannot be read (a different Slurm version?). Like an unreachable
    controller, it says nothing about any job."""

    kind = "unexpected_output"


def parsed(parse, text: str, argv):
    """``parse(text)``, with a ValueError of the parser turned into :class:`UnexpectedOutput` naming the command."""
    try:
        return parse(text)
    except ValueError as exc:
        raise UnexpectedOutput(list(argv), 0, "", f"{argv[0]}: {exc}") from None


class _TooMuchOutput(Exception):
    """Raised inside the runner when a stream passes max_output (turned into OutputTooLarge)."""


class BadUserName(SlurmError):
    """A user name that must not reach a command (``sacctmgr show user a,b`` reads two users, ``sudo -u #0`` is
    root, a leading ``-`` is an option). Raised before anything runs."""

    kind = "bad_user_name"




def check_user_name(name: str) -> str:
    """``name`` if it is a safe Unix user name (:data:`USER_NAME`), else :class:`BadUserName` naming it."""
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise BadUserName([], None, "", f"The user name {name!r} is not a Unix user name (letters, digits and "
                                        "_ . @ -, starting with a letter or _), so no Slurm command is run for it.")
    return name


def classify(argv, returncode, stderr) -> SlurmError:
    """Turn a failed command into the matching typed error."""
    if _JOB_UNKNOWN.search(stderr):
        return JobUnknown(argv, returncode, stderr)
    if _UNREACHABLE.search(stderr):
        return SlurmUnreachable(argv, returncode, stderr)
    return SlurmRejected(argv, returncode, stderr)


@dataclass
class Result:
    stdout: str
    stderr: str
    seconds: float


class SlurmRunner:
    """Runs commands as the hub's account or, through ``sudo -n -u USER``, as a hub user.

    ``env`` values given to :meth:`run` reach the command through sudo's ``--preserve-env=NAMES``, so
    secrets never appear on a command line.

    At most ``concurrency`` commands run at once (None: no bound); the others wait their turn in the order they
    came, and their timeout starts when they run (a long-running :meth:`spawn` holds no place). A class whose 30 spawns all start together then sends
    slurmctld, slurmdbd and sudo a steady stream rather than 90 commands in one instant.
    """

    #: bytes of stdout (and of stderr) read from one command at the most; more stops it (OutputTooLarge)
    max_output = 32 * 1024 * 1024

    def __init__(self, sudo=("sudo", "-n"), timeout: float = 30.0, log: logging.Logger = log,
                 concurrency: int | None = None):
        self.sudo = list(sudo)
        self.timeout = timeout
        self.log = log
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency) if concurrency else None
        #: commands waiting for a slot now, and the most that ever waited at once
        self.waiting = self.most_waiting = 0
        self.hub_user = getpass.getuser()
        #: commands run and failed, by program name: what the hub costs slurmctld
        self.calls: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()

    def command_line(self, argv, user=None, env_names=()) -> list[str]:
        """The full argument list for ``argv`` run as ``user`` (checked: :func:`check_user_name`)."""
        if user is not None:
            check_user_name(user)
        if user is None or user == self.hub_user:
            return list(argv)
        prefix = [*self.sudo, "-u", user]
        if env_names:
            prefix.append("--preserve-env=" + ",".join(sorted(env_names)))
        return [*prefix, "--", *argv]

    async def run(self, argv, *, user=None, env=None, stdin: str | None = None, timeout=None) -> Result:
        """Run ``argv``; return its output, or raise a :class:`SlurmError` subclass. Counted here, in
        :attr:`calls` and :attr:`failures` and in the metrics (latency and errors by command)."""
        name = os.path.basename(argv[0])
        self.calls[name] += 1
        started = time.monotonic()
        try:
            async with self._slot():
                return await self._run(argv, name, user, dict(env or {}), stdin,
                                       self.timeout if timeout is None else timeout)
        except SlurmError as exc:
            self.failures[name] += 1
            metrics.SLURM_COMMAND_ERRORS.labels(command=name, kind=exc.kind).inc()
            raise
        finally:
            metrics.SLURM_COMMAND_SECONDS.labels(command=name).observe(time.monotonic() - started)

    @contextlib.asynccontextmanager
    async def _slot(self):
        """One of the ``concurrency`` places to run a command (at once when there is no bound or one is free)."""
        if self._slots is None:
            yield
            return
        if self._slots.locked():
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    async def spawn(self, argv, *, user=None, env=None) -> asyncio.subprocess.Process:
        """Start a long-running command (a ``salloc`` that holds an allocation) and return its process.

        Its stdin is a pipe from this process (closed, also when this process dies, it reads end of file), its
        stderr a pipe for its messages, its stdout is discarded. The caller owns the process and its end.
        Raises :class:`SlurmUnreachable` when the program cannot be run.
        """
        name = os.path.basename(argv[0])
        self.calls[name] += 1
        try:
            return await self._start(argv, user, dict(env or {}), stdin=asyncio.subprocess.PIPE,
                                     stdout=asyncio.subprocess.DEVNULL)
        except SlurmError as exc:
            self.failures[name] += 1
            metrics.SLURM_COMMAND_ERRORS.labels(command=name, kind=exc.kind).inc()
            raise

    async def _start(self, argv, user, env, *, stdin, stdout) -> asyncio.subprocess.Process:
        full = self.command_line(argv, user, env.keys())
        proc_env = {**BASE_ENV, **{k: os.environ[k] for k in PASSED_FROM_HUB if k in os.environ}, **env}
        try:
            return await asyncio.create_subprocess_exec(  # from "/": the hub's own folder is private to it
                *full, stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.PIPE, env=proc_env,
                umask=COMMAND_UMASK, start_new_session=True, cwd="/",
            )
        except OSError as exc:  # the program is missing or not executable: Slurm could not be asked
            raise SlurmUnreachable(argv, None, "", f"cannot run {full[0]}: {exc.strerror}") from None

    async def _run(self, argv, name, user, env, stdin, timeout) -> Result:
        started = time.monotonic()
        proc = await self._start(argv, user, env, stdout=asyncio.subprocess.PIPE,
                                 stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL)
        try:
            out, err = await asyncio.wait_for(self._exchange(proc, stdin), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError, _TooMuchOutput) as exc:
            await _terminate(proc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, _TooMuchOutput):
                raise OutputTooLarge(argv, None, "", f"{name} wrote more than {self.max_output} bytes") from None
            raise SlurmTimeout(argv, None, "", f"{name} did not answer within {timeout:g} s") from None
        seconds = time.monotonic() - started
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        self.log.debug("Slurm command %s -> rc %s in %.3f s", " ".join(argv[:3]), proc.returncode, seconds)
        if proc.returncode != 0:
            raise classify(argv, proc.returncode, stderr)
        return Result(stdout, stderr, seconds)

    async def _exchange(self, proc, stdin: str | None) -> tuple[bytes, bytes]:
        """Feed stdin, read stdout and stderr (each up to :attr:`max_output` bytes), wait for the exit."""
        async def feed():
            if stdin is not None:
                try:
                    proc.stdin.write(stdin.encode())
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                proc.stdin.close()

        async def read(stream) -> bytes:
            chunks, size = [], 0
            while chunk := await stream.read(65536):
                size += len(chunk)
                if size > self.max_output:
                    raise _TooMuchOutput
                chunks.append(chunk)
            return b"".join(chunks)

        tasks = [asyncio.ensure_future(step) for step in (feed(), read(proc.stdout), read(proc.stderr))]
        try:
            _, out, err = await asyncio.gather(*tasks)
        finally:  # one stream over the limit: stop reading the other too
            for task in tasks:
                task.cancel()
        await proc.wait()
        return out, err


_NOT_PRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without control characters but line breaks and tabs: nothing in it can forge a log line's
    start (a carriage return) or steer a terminal (escape sequences)."""
    return _NOT_PRINTABLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


async def _terminate(proc):
    """Stop a command that ran too long or wrote too much, with everything it started: SIGTERM (sudo relays it),
    then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        if proc.returncode is not None:
            break
        try:  # the whole process group (each command starts a session of its own): no child writes on
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        except PermissionError:  # a child that became another user's (sudo's command): sudo relays the signal
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except asyncio.TimeoutError:
            continue
    # What is left in the pipes (their writers are gone now) is read and dropped, so that they close.
    async def discard(stream):
        while await stream.read(65536):
            pass

    streams = [discard(stream) for stream in (proc.stdout, proc.stderr) if stream is not None]
    try:
        await asyncio.wait_for(asyncio.gather(*streams), 2.0)
    except (asyncio.TimeoutError, OSError):
        pass
