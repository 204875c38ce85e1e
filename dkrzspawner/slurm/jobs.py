"""Every Slurm command about jobs, as one function each: submit, test-only, find by tag, cancel, the batched
status queries of the watcher (squeue, the queue order, sacct), a job's final state and its output's tail.

Each function builds its argument list here (and nowhere else: the sudoers rules in
``share/sudoers.d/dkrzspawner`` match these very command lines), runs it through a
:class:`~dkrzspawner.slurm.runner.SlurmRunner` and parses the answer with the pure parsers below. Failures are the
runner's typed errors; output that cannot be read is :class:`~dkrzspawner.slurm.runner.UnexpectedOutput`; no
failed query is ever read as "no job". Imports only :mod:`.runner` and :mod:`dkrzspawner.units`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ..units import value_or_none
from .runner import SlurmRunner, check_user_name, parsed, printable

#: final states: the job is over and its resources are free
ENDED_STATES = frozenset(
    "BOOT_FAIL CANCELLED COMPLETED DEADLINE FAILED NODE_FAIL OUT_OF_MEMORY PREEMPTED REVOKED TIMEOUT GONE".split()
)
#: the watcher's fields: id, state, node, reason, start (or estimate), end, partition, user
SQUEUE_FORMAT = "%i|%T|%B|%r|%S|%e|%P|%u"
#: pending jobs of the partitions our pending jobs wait in, most urgent first: our place in the queue
QUEUE_FORMAT = "%i|%P"
#: a job's id and comment: the spawn's tag that finds a job a timed-out sbatch created anyway
TAGGED_FORMAT = "%i|%k"
SACCT_FORMAT = "JobIDRaw,State,ExitCode,Elapsed,Timelimit"
#: one job as its own user sees it (a Jupyter server's job, asked from inside it): id, state, account,
#: partition, nodes, CPUs, memory, generic resources per node, start, end
JOB_INFO_FORMAT = "%i|%T|%a|%P|%N|%C|%m|%b|%S|%e"
#: how many successful squeue answers may miss a job before it counts as gone when sacct cannot tell
MISSES_BEFORE_GONE = 2
#: what of a job's output file the hub reads for a failed spawn, at the most (the last lines come from this)
OUTPUT_TAIL_BYTES = 64 * 1024

#: a job id (``123``) or a job step's (``123.4``): all that reaches scancel
#: squeue's states of a job that Slurm has put back in the queue (``PENDING`` again, with the same id)
REQUEUED_STATES = frozenset("PENDING REQUEUED REQUEUE_HOLD REQUEUE_FED CONFIGURING".split())
_JOB_OR_STEP_ID = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
_JOB_ID = re.compile(r"[0-9]+", re.ASCII)
_SIGNAL = re.compile(r"[A-Z][A-Z0-9]*|[0-9]+", re.ASCII)
_GPUS = re.compile(r"gpu(?::[^:,()]+)?:(\d+)", re.ASCII)
_ESTIMATE = re.compile(r"Job \d+ to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", re.ASCII)


@dataclass
class JobStatus:
    """What Slurm last said about one job."""

    job_id: str
    state: str
    host: str | None = None
    reason: str | None = None
    start_time: str | None = None  # actual start, or Slurm's estimate while pending
    end_time: str | None = None  # when the walltime runs out (running jobs)
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
        """Slurm says the job runs."""
        return self.state == "RUNNING"


@dataclass(frozen=True)
class JobInfo:
    """What squeue says about one job, for the job's own user (:data:`JOB_INFO_FORMAT`)."""

    job_id: str
    state: str
    account: str | None
    partition: str | None
    nodes: str | None
    cpus: int | None
    memory: str | None
    gpus: int
    start_time: str | None
    end_time: str | None


# -- parsers (pure) ----------------------------------------------------------------------------------------
def parse_squeue(text: str) -> dict[str, JobStatus]:
    """Parse ``squeue -h -o SQUEUE_FORMAT`` output; ValueError on any line that does not fit."""
    jobs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 8 or not parts[0].strip().isdigit() or not parts[1].strip().isupper():
            raise ValueError(f"unexpected squeue line: {line!r}")
        job_id, state, host, reason, start, end, partition, _user = parts
        jobs[job_id.strip()] = JobStatus(
            job_id=job_id.strip(), state=state.strip(), host=value_or_none(host), reason=value_or_none(reason),
            start_time=value_or_none(start), end_time=value_or_none(end), partition=value_or_none(partition),
        )
    return jobs


def parse_job_info(text: str, job_id: str) -> JobInfo | None:
    """Parse ``squeue -h -j ID -o JOB_INFO_FORMAT``: the line of ``job_id`` (None when squeue has none);
    ValueError on a line that does not fit. GPUs are counted from the generic resources (``gres/gpu:1``)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 10 or not parts[0].strip().isdigit() or not parts[1].strip().isupper():
            raise ValueError(f"unexpected squeue line: {line!r}")
        if parts[0].strip() != str(job_id):
            continue
        _, state, account, partition, nodes, cpus, memory, gres, start, end = (part.strip() for part in parts)
        gpus = sum(int(count) for count in _GPUS.findall(gres))
        return JobInfo(job_id=str(job_id), state=state, account=value_or_none(account),
                       partition=value_or_none(partition), nodes=value_or_none(nodes),
                       cpus=int(cpus) if cpus.isdigit() else None, memory=value_or_none(memory), gpus=gpus,
                       start_time=value_or_none(start), end_time=value_or_none(end))
    return None


def parse_queue(text: str) -> dict[str, list[str]]:
    """Parse ``squeue -o QUEUE_FORMAT`` into the pending job ids of each partition, in queue order."""
    queues: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        job_id, sep, partitions = line.partition("|")
        if not sep or not job_id.strip().isdigit():
            raise ValueError(f"unexpected squeue line: {line!r}")
        for partition in partitions.strip().split(","):
            queues.setdefault(partition, []).append(job_id.strip())
    return queues


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


def parse_tagged(text: str, tag: str) -> str | None:
    """The id of the job whose comment is ``tag`` in ``squeue -h -o TAGGED_FORMAT`` output, None when no job has
    it; ValueError on a line without the separator or when the tagged job's id is not a job id."""
    for line in text.splitlines():
        if not line.strip():
            continue
        job_id, sep, comment = line.partition("|")
        if not sep:
            raise ValueError(f"unexpected squeue line: {line!r}")
        if comment.strip() == tag:
            if not _JOB_ID.fullmatch(job_id.strip()):
                raise ValueError(f"unexpected job id in squeue line: {line!r}")
            return job_id.strip()
    return None


def parse_job_id(text: str) -> str:
    """The job id ``sbatch --parsable`` prints (``123`` or ``123;cluster``); ValueError for anything else."""
    job_id = text.strip().split(";")[0]
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"no job id in its output {text.strip()[:100]!r}")
    return job_id


def parse_estimate(stderr: str) -> str | None:
    """The start time ``sbatch --test-only`` predicts (``2026-11-22T04:56:21``), or None."""
    match = _ESTIMATE.search(stderr or "")
    return match.group(1) if match else None


def _ids(job_ids, pattern=_JOB_ID) -> list[str]:
    """``job_ids`` as strings, each checked against ``pattern`` (ValueError before anything runs)."""
    if isinstance(job_ids, (str, int)):
        job_ids = [job_ids]
    if not isinstance(job_ids, (list, tuple, set, frozenset)):
        raise ValueError(f"not a list of Slurm job ids: {job_ids!r}")
    ids = [str(job_id) for job_id in job_ids]
    if not ids:
        raise ValueError("no job id given")
    for job_id in ids:
        if not pattern.fullmatch(job_id):
            raise ValueError(f"not a Slurm job id: {job_id!r}")
    return ids


# -- commands ----------------------------------------------------------------------------------------------
async def submit(runner: SlurmRunner, script: str, *, user: str, env: dict | None = None,
                 timeout: float | None = None) -> str:
    """``sbatch --parsable`` as ``user`` with ``script`` on stdin; the new job's id.

    Raises the runner's typed errors (:class:`~.runner.SlurmRejected`: Slurm refused the job;
    :class:`~.runner.SlurmUnreachable`: unknown whether a job was created, see :func:`find_tagged`), and
    :class:`~.runner.UnexpectedOutput` when its output holds no job id.
    """
    argv = ["sbatch", "--parsable"]
    result = await runner.run(argv, user=user, env=env, stdin=script, timeout=timeout)
    return parsed(parse_job_id, result.stdout, argv)


async def test_only(runner: SlurmRunner, script: str, *, user: str, env: dict | None = None,
                    timeout: float | None = None) -> str | None:
    """``sbatch --test-only`` with ``script`` on stdin, as ``user``: no job is created.

    Returns Slurm's estimated start (or None if it gave none); raises the runner's typed errors, e.g.
    :class:`~.runner.SlurmRejected` when Slurm would refuse the job.
    """
    result = await runner.run(["sbatch", "--test-only"], user=user, env=env, stdin=script, timeout=timeout)
    return parse_estimate(result.stderr + "\n" + result.stdout)


async def find_tagged(runner: SlurmRunner, user: str, tag: str, *, timeout: float | None = None) -> str | None:
    """The id of ``user``'s job whose comment is ``tag`` (asked as the hub's account, ended jobs included).

    None only when Slurm answered and no job has it; a failed query raises its :class:`~.runner.SlurmError`
    subclass, garbled output :class:`~.runner.UnexpectedOutput`.
    """
    argv = ["squeue", "-h", "-t", "all", "-u", check_user_name(user), "-o", TAGGED_FORMAT]
    result = await runner.run(argv, timeout=timeout)
    return parsed(lambda text: parse_tagged(text, tag), result.stdout, argv)


async def cancel(runner: SlurmRunner, job_ids, *, user: str | None = None, signal: str | None = None,
                 timeout: float | None = None) -> None:
    """``scancel [--signal=NAME] ID...`` (as ``user``, or as the hub's account when None).

    ``job_ids`` is one id or several, each a job's (``123``) or a job step's (``123.4``), and ``signal`` a signal's
    name (``INT``) or number: anything else is a ValueError before anything runs. Raises the runner's typed errors.
    """
    ids = _ids(job_ids, _JOB_OR_STEP_ID)
    if signal is not None and not _SIGNAL.fullmatch(signal):
        raise ValueError(f"not a signal name: {signal!r}")
    argv = ["scancel", *([f"--signal={signal}"] if signal is not None else []), *ids]
    await runner.run(argv, user=user, timeout=timeout)


async def job_states(runner: SlurmRunner, job_ids, *, user: str | None = None, program: str = "squeue",
                     timeout: float | None = None) -> dict[str, JobStatus]:
    """The watcher's one squeue for many jobs (``-t all``: ended ones too), as ``user`` or the hub's account.

    Jobs squeue no longer lists are missing from the answer. Raises the runner's typed errors
    (:class:`~.runner.JobUnknown` when Slurm knows none of them), :class:`~.runner.UnexpectedOutput` when garbled.
    """
    argv = [program, "-h", "-t", "all", "-j", ",".join(_ids(job_ids)), "-o", SQUEUE_FORMAT]
    return parsed(parse_squeue, (await runner.run(argv, user=user, timeout=timeout)).stdout, argv)


async def job_info(runner: SlurmRunner, job_id: str, *, timeout: float | None = None) -> JobInfo | None:
    """``squeue -h -j ID -o JOB_INFO_FORMAT`` as the current user (a Jupyter server asking about its own job,
    no sudo): the job's :class:`JobInfo`, None when squeue no longer lists it. Raises the runner's typed errors
    (:class:`~.runner.JobUnknown` when Slurm does not know the id), :class:`~.runner.UnexpectedOutput`."""
    job = _ids([job_id])[0]
    argv = ["squeue", "-h", "-j", job, "-o", JOB_INFO_FORMAT]
    return parsed(lambda text: parse_job_info(text, job), (await runner.run(argv, timeout=timeout)).stdout, argv)


async def queue_order(runner: SlurmRunner, partitions, *, program: str = "squeue",
                      timeout: float | None = None) -> dict[str, list[str]]:
    """The pending jobs of ``partitions``, most urgent first, as the hub's account: ids per partition."""
    argv = [program, "-h", "-t", "PD", "-p", ",".join(partitions), "-S", "-p,i", "-o", QUEUE_FORMAT]
    return parsed(parse_queue, (await runner.run(argv, timeout=timeout)).stdout, argv)


async def accounted_states(runner: SlurmRunner, job_ids, *, user: str | None = None, program: str = "sacct",
                           timeout: float | None = None) -> dict[str, JobStatus]:
    """sacct's record of each of ``job_ids`` (as ``user`` or the hub's account); a job without one is missing
    from the answer. Raises the runner's typed errors, :class:`~.runner.UnexpectedOutput` when garbled."""
    argv = [program, "-X", "-n", "-P", "-j", ",".join(_ids(job_ids)), "-o", SACCT_FORMAT]
    return parsed(parse_sacct, (await runner.run(argv, user=user, timeout=timeout)).stdout, argv)


async def final_state(runner: SlurmRunner, job_id: str, *, timeout: float | None = None) -> JobStatus | None:
    """sacct's record of ``job_id`` (its state may still be RUNNING); None when sacct has no record of it yet.
    Failures raise the runner's typed errors."""
    return (await accounted_states(runner, [job_id], timeout=timeout)).get(str(job_id))


async def output_tail(runner: SlurmRunner, user: str, path: str, lines: int,
                      max_bytes: int = OUTPUT_TAIL_BYTES) -> str:
    """The last ``lines`` lines of a job's output file, read as ``user``, never more than ``max_bytes`` of it.

    The file is the user's own: it may be huge, have no line break, or have been replaced by a link to a device
    or by a FIFO. So: ``find -type f`` (which never follows a link) says whether it is a regular file and its size;
    only then does ``dd`` read its last ``max_bytes`` (``iflag=nofollow,nonblock``: a file swapped for a link or a
    FIFO meanwhile is refused, not read). Control characters are removed. Raises :class:`~.runner.SlurmError` when
    the file cannot be read; returns ``""`` when it is not a regular file.
    """
    found = await runner.run(["find", path, "-maxdepth", "0", "-type", "f", "-printf", "%s"], user=user)
    size = found.stdout.strip()
    if not size.isdigit():
        return ""
    skip = max(0, int(size) - max_bytes)
    data = await runner.run(["dd", f"if={path}", "iflag=nofollow,nonblock,skip_bytes,count_bytes", f"skip={skip}",
                             f"count={max_bytes}", f"bs={max_bytes}", "status=none"], user=user)
    text = printable(data.stdout)
    return "\n".join(text.strip("\n").splitlines()[-lines:]) if lines > 0 else ""
