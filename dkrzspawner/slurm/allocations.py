"""The Slurm commands of a kernel's allocation: ask for it, run a kernel in it, look at it, signal, give back.

The argument lists (``salloc`` that holds an allocation, ``srun --overlap`` of a kernel's job step), what Slurm
prints about an allocation (``squeue`` of the job and of its steps, ``sacct``, ``scontrol show hostnames``) with
one parser each; cancelling and signals are :func:`.jobs.cancel`. The queries run through the runner and
raise its typed errors; output that cannot be read raises :class:`~dkrzspawner.slurm.UnexpectedOutput`, so
that no caller reads a garbled answer as "nothing runs there". Used by :mod:`dkrzspawner.kernels`; knows
nothing of kernels' options, JupyterHub or jupyter_client; imports only :mod:`.runner` and :mod:`.jobs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .jobs import TAGGED_FORMAT, parse_tagged
from .runner import JobUnknown, UnexpectedOutput, parsed

#: the command that holds a kernel's allocation: ``salloc`` runs it on this host once the allocation is granted
#: and gives the allocation back when it exits; it exits when its stdin (a pipe from the provisioner) closes
KEEPER = ("cat",)
#: squeue's formats: a waiting job, where a job runs, how it ended (or that it runs), its steps; its shape
WAITING_FORMAT = "%T|%r|%S"
PLACEMENT_FORMAT = "%T|%N|%C|%D|%L"
END_FORMAT = "%T|%r|%l"
STEPS_FORMAT = "%i|%j"
SHAPE_FIELDS = "NumTasks:|,cpus-per-task:|,NodeList:"
#: job steps Slurm makes by itself (not a kernel's)
SLURM_STEPS = frozenset({"extern", "batch", "interactive"})

_GRANTED = re.compile(r"Granted job allocation (\d+)")
_PENDING = re.compile(r"(?:Pending|Granted) job allocation (\d+)")
#: a job state as squeue prints it (``RUNNING``, ``PENDING``, ``OUT_OF_MEMORY``)
_STATE = re.compile(r"[A-Z_]*", re.ASCII)
#: a job step's id as ``squeue -s`` prints it: ``77.0``, ``77.extern``, ``77_3.1`` (array), ``77+1.0`` (het job)
_STEP_ID = re.compile(r"[0-9]+(?:[_+][0-9]+)?\.[A-Za-z0-9_]+", re.ASCII)


# -- asking for an allocation and running a kernel in it ---------------------------------------------------
def salloc_argv(request, *, tasks_per_node: int = 1, job_name: str, comment: str,
                keeper: tuple[str, ...] = KEEPER) -> list[str]:
    """``salloc ... cat`` for a validated request (a :class:`~dkrzspawner.options.JobRequest`): the allocation
    the kernel will run in, held while ``keeper`` runs. ``--kill-command=HUP`` ends the keeper (and so salloc)
    when Slurm revokes the allocation.

    The request's numbers are per node, and so is the allocation: ``request.nodes`` nodes, each with
    ``tasks_per_node`` tasks that split the node's ``request.cores`` cores evenly (which the caller checked),
    ``--mem`` (per node, Slurm's meaning) and ``--gpus-per-node``. (``--ntasks`` alone would let Slurm pack the
    tasks onto fewer nodes, and ``--gpus`` counts the whole job's GPUs.)"""
    argv = ["salloc", "--kill-command=HUP", f"--job-name={job_name}", f"--comment={comment}",
            f"--partition={request.partition}"]
    if request.account:
        argv.append(f"--account={request.account}")
    argv += [f"--nodes={request.nodes}", f"--ntasks-per-node={tasks_per_node}",
             f"--cpus-per-task={request.cores // tasks_per_node}", f"--mem={request.memory}",
             f"--time={request.runtime}"]
    if request.gpus:
        argv.append(f"--gpus-per-node={request.gpus}")
    if request.reservation:
        argv.append(f"--reservation={request.reservation}")
    return [*argv, *keeper]


def granted_job_id(stderr: str) -> str | None:
    """The job id in ``salloc``'s messages (``salloc: Granted job allocation 212``), or None."""
    match = _GRANTED.search(stderr or "") or _PENDING.search(stderr or "")
    return match.group(1) if match else None


def srun_argv(job_id: str, node: str, kernel_cmd: list[str], *, step_name: str, cpus: int | None = None,
              cwd: str | None = None, srun: str = "srun") -> list[str]:
    """``srun --overlap`` of one kernel process, a job step named ``step_name``, on ``node`` of the allocation."""
    argv = [srun, f"--jobid={job_id}", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node}",
            f"--job-name={step_name}", "--input=none"]
    if cpus:
        argv.append(f"--cpus-per-task={cpus}")
    if cwd:
        argv.append(f"--chdir={cwd}")
    return argv + list(kernel_cmd)


# -- what squeue says of an allocation ---------------------------------------------------------------------
def _fields(text: str, count: int) -> list[str]:
    """The first line of ``text`` split at ``|`` into ``count`` fields (missing ones empty; no line: all
    empty); ValueError for more fields or a first field that is no job state."""
    lines = text.strip().splitlines()
    fields = [part.strip() for part in lines[0].split("|")] if lines else []
    if len(fields) > count or (fields and not _STATE.fullmatch(fields[0])):
        raise ValueError(f"unexpected output {text.strip()[:100]!r}")
    return fields + [""] * (count - len(fields))


@dataclass(frozen=True)
class Waiting:
    """A job in the queue: its state, why it waits (Slurm's word) and the estimated start (or ``N/A``)."""

    state: str
    reason: str
    start: str


def parse_waiting(text: str) -> Waiting:
    """``squeue -h -j ID -o %T|%r|%S``; all empty when the job has left the queue."""
    return Waiting(*_fields(text, 3))


async def _one_job(runner, job_id: str, fmt: str, parse, timeout: float, *, ended_too: bool = False):
    """``squeue -h [-t all] -j ID -o FMT`` read by ``parse``; with ``ended_too``, Slurm not knowing the job reads as
    an empty answer. Raises the runner's other errors, UnexpectedOutput for garbage."""
    argv = ["squeue", "-h", *(["-t", "all"] if ended_too else []), "-j", job_id, "-o", fmt]
    try:
        out = (await runner.run(argv, timeout=timeout)).stdout
    except JobUnknown:
        if not ended_too:
            raise
        out = ""
    return parsed(parse, out, argv)


async def waiting(runner, job_id: str, timeout: float) -> Waiting:
    """Why the job waits and when it may start. Raises the runner's errors, UnexpectedOutput for garbage."""
    return await _one_job(runner, job_id, WAITING_FORMAT, parse_waiting, timeout)


@dataclass(frozen=True)
class Placement:
    """Where a job runs: its state, node list, CPUs, number of nodes and time left (texts as squeue prints)."""

    state: str
    nodelist: str
    cpus: str
    node_count: str
    time_left: str

    @property
    def cpus_per_node(self) -> int | None:
        """The job's CPUs per node, when squeue gave both numbers."""
        if self.cpus.isdigit() and self.node_count.isdigit() and int(self.node_count):
            return int(self.cpus) // int(self.node_count)
        return None


def parse_placement(text: str) -> Placement:
    """``squeue -h -j ID -o %T|%N|%C|%D|%L``; all empty when Slurm lists no such job."""
    return Placement(*_fields(text, 5))


async def placement(runner, job_id: str, timeout: float) -> Placement:
    """Where the job runs. Raises the runner's errors, UnexpectedOutput for garbage."""
    return await _one_job(runner, job_id, PLACEMENT_FORMAT, parse_placement, timeout)


@dataclass(frozen=True)
class EndState:
    """A job's state, reason and time limit, ended jobs included; all empty when Slurm no longer knows it."""

    state: str
    reason: str
    time_limit: str


def parse_end_state(text: str) -> EndState:
    """``squeue -h -t all -j ID -o %T|%r|%l``."""
    return EndState(*_fields(text, 3))


async def end_state(runner, job_id: str, timeout: float) -> EndState:
    """The job's state, ended or not (``-t all``); all empty when Slurm answers that it does not know the job.

    Raises the runner's other errors (Slurm could not be asked: nothing is known), UnexpectedOutput for garbage.
    """
    return await _one_job(runner, job_id, END_FORMAT, parse_end_state, timeout, ended_too=True)


@dataclass(frozen=True)
class Step:
    """A job step of an allocation: its id (``77.0``) and name (a kernel's ``kernel-ID``, or ``extern``)."""

    id: str
    name: str


def parse_steps(text: str) -> list[Step]:
    """``squeue -h -s -j ID -o %i|%j``: every line ``STEP|NAME``; ValueError for any other line."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        step, sep, name = (part.strip() for part in line.partition("|"))
        if not sep or not _STEP_ID.fullmatch(step):
            raise ValueError(f"unexpected job step line {line.strip()[:100]!r}")
        found.append(Step(step, name))
    return found


async def steps(runner, job_id: str, timeout: float) -> list[Step]:
    """The allocation's job steps. Raises the runner's errors (:class:`~dkrzspawner.slurm.JobUnknown` when Slurm
    no longer knows the job), UnexpectedOutput for output that is not a list of steps: never an empty list on
    a guess."""
    argv = ["squeue", "-h", "-s", "-j", job_id, "-o", STEPS_FORMAT]
    return parsed(parse_steps, (await runner.run(argv, timeout=timeout)).stdout, argv)


async def tagged(runner, tag: str, timeout: float) -> str | None:
    """The id of this user's queued or running job whose comment is ``tag`` (``squeue --me``), None when Slurm
    answered and no job has it. Raises the runner's errors, UnexpectedOutput for garbage."""
    argv = ["squeue", "-h", "--me", "-o", TAGGED_FORMAT]
    return parsed(lambda text: parse_tagged(text, tag), (await runner.run(argv, timeout=timeout)).stdout, argv)


# -- the allocation's nodes and shape ----------------------------------------------------------------------
@dataclass(frozen=True)
class JobShape:
    """What Slurm says of a running allocation: its tasks, CPUs per task and nodes."""

    tasks: int
    cpus_per_task: int
    nodelist: str  # as Slurm prints it (``vm``, ``n[01-04]``)
    hostnames: tuple[str, ...]


def parse_job_shape(text: str) -> tuple[int, int, str]:
    """``squeue -h -j ID -O`` :data:`SHAPE_FIELDS` as (tasks, cpus per task, node list)."""
    fields = [part.strip() for part in text.strip().split("|")]
    if len(fields) != 3 or not fields[0].isdigit() or not fields[2]:
        raise ValueError(f"unexpected squeue output {text.strip()[:100]!r}")
    cpus = int(fields[1]) if fields[1].isdigit() else 1
    return int(fields[0]), max(cpus, 1), fields[2]


async def hostnames(runner, nodelist: str, timeout: float) -> tuple[str, ...]:
    """The node names of a Slurm node list (``vm``, ``n[01-02],m5``); ``scontrol show hostnames`` expands ranges."""
    if "[" not in nodelist:
        return tuple(name for name in nodelist.split(",") if name)
    out = (await runner.run(["scontrol", "show", "hostnames", nodelist], timeout=timeout)).stdout
    return tuple(out.split())


async def shape_of(runner, job_id: str, timeout: float) -> JobShape:
    """The allocation's tasks, CPUs per task and nodes; raises the runner's errors (SlurmError) otherwise."""
    out = (await runner.run(["squeue", "-h", "-j", job_id, "-O", SHAPE_FIELDS], timeout=timeout)).stdout
    try:
        tasks, cpus, nodelist = parse_job_shape(out)
    except ValueError as exc:
        raise UnexpectedOutput(["squeue"], 0, f"allocation {job_id}: {exc}") from None
    return JobShape(tasks=tasks, cpus_per_task=cpus, nodelist=nodelist,
                    hostnames=await hostnames(runner, nodelist, timeout))


# -- how it ended (cancelling and signals: :func:`.jobs.cancel`) --------------------------------------------------------------------
async def cancelled_by(runner, job_id: str, timeout: float) -> str | None:
    """Who cancelled the job, as sacct says it (``CANCELLED by 1001``: the uid), or None when it does not say.

    Raises the runner's errors."""
    words = (await runner.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], timeout=timeout)).stdout.split()
    return words[2] if len(words) >= 3 and words[1] == "by" else None
