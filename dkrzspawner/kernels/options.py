"""A Slurm kernel's options and the Slurm command lines they become. Pure: no command is run here.

A kernelspec's ``metadata.kernel_provisioner.config`` holds what the user asked for, for example
``{"preset": "shared", "cores": 2}`` or ``{"partition": "gpu", "gpus": 1, "runtime": "02:00:00", "tasks": 2}``
or ``{"job_id": "1234"}`` (run in an allocation that exists already). Checking happens twice, both times
through :mod:`dkrzspawner.options` (one code path with the hub's spawn form):

1. :func:`check_shape` needs no Slurm: unknown keys, wrong types, malformed sizes and durations, newlines,
   preset rules. A request refused here never reaches Slurm.
2. :func:`to_job_request` with the cluster facts (partitions and limits, the user's accounts, reservations).

``node`` (with ``job_id`` only) picks the node of that allocation the kernel runs on; :func:`check_node` checks it
against the allocation's nodes once Slurm has named them.

The kernel's job step is one task; :data:`JOB_VIEW` gives the kernel the allocation's tasks, CPUs per task and
nodes instead of its step's (what ``salloc``'s shell has), so that ``srun`` in a notebook cell uses the whole
allocation. :func:`check_env` checks the variables a user puts in a kernelspec's ``env``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from ..modules import LOAD_AND_EXEC
from ..offer import Offer
from ..options import ADVANCED_WORDS, OptionsError, JobRequest, check_modules, plain, shown
from ..siteconfig import SiteConfig

#: the options that describe the allocation; they go to :func:`dkrzspawner.options.validate` unchanged
JOB_KEYS = ("preset", "partition", "account", "nodes", "cores", "memory", "gpus", "runtime", "reservation")
JOB_ID = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
#: a node's name as Slurm prints it (``vm``, ``l40123``, ``node-7.cluster``)
NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
KERNEL_WORDS = {"tasks": "Tasks", "modules": "Modules", "job_id": "Job id", "node": "Node",
                "allocation_timeout": "Allocation timeout", **ADVANCED_WORDS, "preset": "Preset"}


class _KernelOnly(BaseModel):
    """The options that are the kernel's own, not the allocation's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tasks: int | None = None
    modules: list[str] | None = None
    job_id: int | str | None = None
    node: str | None = None
    allocation_timeout: int | float | None = None


@dataclass(frozen=True)
class KernelOptions:
    """Options checked for shape. ``job`` is the part for :func:`dkrzspawner.options.validate`."""

    job: dict
    tasks: int = 1
    modules: tuple[str, ...] = ()
    job_id: str | None = None
    node: str | None = None
    allocation_timeout: float = 300.0

    @property
    def reuses_allocation(self) -> bool:
        return self.job_id is not None


def default_offer() -> Offer:
    """Without a site file: DKRZ's presets, no partition policy, no group policy."""
    return SiteConfig().offer(())


def check_shape(config, offer: Offer | None = None) -> KernelOptions:
    """Options as given in a kernelspec (or on the command line), checked without asking Slurm, against what
    the hub offers the user (``offer``: the site's presets and group policy; see :mod:`dkrzspawner.siteconfig`).

    Raises :class:`~dkrzspawner.options.OptionsError` naming the field.
    """
    if not isinstance(config, dict):
        raise OptionsError("config", "The kernel's options must be a JSON object.")
    offer = offer or default_offer()
    job = {key: value for key, value in config.items() if key in JOB_KEYS}
    rest = {key: value for key, value in config.items() if key not in JOB_KEYS}
    try:
        own = _KernelOnly.model_validate(rest)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "config"
        if error["type"] == "extra_forbidden":
            raise OptionsError(name, f"Unknown option {shown(name)}; allowed are "
                                     f"{', '.join((*JOB_KEYS, 'tasks', 'modules', 'job_id', 'node'))}.") from None
        raise OptionsError(name, f"{KERNEL_WORDS.get(name, name)}: {plain(error)}.") from None

    job_id = None
    if own.job_id is not None:
        job_id = str(own.job_id)
        if not JOB_ID.fullmatch(job_id):
            raise OptionsError("job_id", "Job id must be the number of a Slurm job (allocation), such as 1234.")
        combined = [*job, *(["tasks"] if own.tasks is not None else [])]  # the allocation has its own tasks
        if combined:
            raise OptionsError("job_id", f"Job id runs the kernel in an existing allocation, so it cannot be "
                                         f"combined with {', '.join(combined)}.")
    if own.node is not None:
        if job_id is None:
            raise OptionsError("node", "Node picks a node of an existing allocation, so it needs job_id "
                                       "(a new allocation's nodes are Slurm's choice).")
        if not NODE.fullmatch(own.node):
            raise OptionsError("node", "Node must be a node's name as squeue prints it (letters, digits, "
                                       "'.', '_', '-').")
    modules = check_modules(own.modules, None)  # the names' shape; what the cluster offers is checked at launch
    timeout = 300.0 if own.allocation_timeout is None else float(own.allocation_timeout)
    if not 1 <= timeout <= 7 * 86400:
        raise OptionsError("allocation_timeout", "Allocation timeout must be between 1 s and 7 days (in seconds).")
    tasks = 1 if own.tasks is None else own.tasks
    if not 1 <= tasks <= 4096:
        raise OptionsError("tasks", "Tasks must be between 1 and 4096.")
    if job_id is None:
        _check_job_shape(job, offer)
    return KernelOptions(job=job, tasks=tasks, modules=modules, job_id=job_id, node=own.node,
                         allocation_timeout=timeout)


def check_node(node: str | None, job_id: str, hostnames) -> str | None:
    """``node`` if it is one of the allocation's ``hostnames`` (None stays None); OptionsError otherwise."""
    if node is None or node in hostnames:
        return node
    raise OptionsError("node", f"Node {shown(node)} is not one of allocation {job_id}'s nodes "
                               f"({', '.join(hostnames) or 'none'}).")


def _check_job_shape(job: dict, offer: Offer) -> None:
    """What the hub's validation checks before it needs Slurm's facts: the group policy, the preset rules."""
    offer.check_shape(job)


def to_job_request(options: KernelOptions, offer: Offer | None = None, facts=None) -> JobRequest:
    """The allocation to ask for, validated like a spawn against the cluster ``facts`` (see
    :meth:`~dkrzspawner.offer.Offer.facts_from`) and what the hub offers the user (``offer``)."""
    offer = offer or default_offer()
    request = (offer if facts is None else offer.with_facts(facts)).validate(options.job)
    total_cores = request.nodes * request.cores
    if options.tasks > total_cores or total_cores % options.tasks:
        raise OptionsError("tasks", f"Tasks must divide the {total_cores} cores of the allocation evenly "
                                    f"(1 to {total_cores}).")
    return request


# -- command lines -----------------------------------------------------------------------------------------
SLURM_ENV_PREFIXES = ("SLURM_", "SRUN_", "SALLOC_", "SBATCH_")
KEEP_SLURM_ENV = ("SLURM_CONF",)


#: the command that holds a kernel's allocation: ``salloc`` runs it on this host once the allocation is granted
#: and gives the allocation back when it exits; it exits when its stdin (a pipe from the provisioner) closes
KEEPER = ("cat",)


def salloc_argv(request: JobRequest, *, tasks: int = 1, job_name: str, comment: str,
                keeper: tuple[str, ...] = KEEPER) -> list[str]:
    """``salloc ... cat`` for a validated request: the allocation the kernel will run in, held while ``keeper``
    runs. ``--kill-command=HUP`` ends the keeper (and so salloc) when Slurm revokes the allocation."""
    cpus_per_task = request.nodes * request.cores // tasks
    argv = ["salloc", "--kill-command=HUP", f"--job-name={job_name}", f"--comment={comment}",
            f"--partition={request.partition}"]
    if request.account:
        argv.append(f"--account={request.account}")
    argv += [f"--nodes={request.nodes}", f"--ntasks={tasks}", f"--cpus-per-task={cpus_per_task}",
             f"--mem={request.memory}", f"--time={request.runtime}"]
    if request.gpus:
        argv.append(f"--gpus={request.gpus}")
    if request.reservation:
        argv.append(f"--reservation={request.reservation}")
    return [*argv, *keeper]


#: The kernel's step sees itself: one task, all the allocation's CPUs, one node (SLURM_NTASKS=1, SLURM_NPROCS=1,
#: SLURM_CPUS_PER_TASK, SLURM_NNODES=1, SLURM_NODELIST). A nested ``srun`` takes those as its defaults, and
#: dropping them is not enough (without SLURM_NTASKS it starts one task per node), so the step sets the
#: allocation's values, as salloc's shell has them, before it becomes the kernel; SLURM_JOB_ID and the step's
#: own SLURM_STEP_* stay. Fixed text; the values come as variables (:func:`job_view_environment`).
JOB_VIEW = ('export SLURM_NTASKS="$DKRZ_JOB_NTASKS" SLURM_NPROCS="$DKRZ_JOB_NTASKS" '
            'SLURM_CPUS_PER_TASK="$DKRZ_JOB_CPUS_PER_TASK" SLURM_NNODES="$DKRZ_JOB_NNODES" '
            'SLURM_NODELIST="$DKRZ_JOB_NODELIST" && '
            'unset SLURM_TASKS_PER_NODE DKRZ_JOB_NTASKS DKRZ_JOB_CPUS_PER_TASK DKRZ_JOB_NNODES DKRZ_JOB_NODELIST')
JOB_VIEW_NAMES = ("DKRZ_JOB_NTASKS", "DKRZ_JOB_CPUS_PER_TASK", "DKRZ_JOB_NNODES", "DKRZ_JOB_NODELIST")


@dataclass(frozen=True)
class JobShape:
    """What Slurm says of a running allocation: its tasks, CPUs per task and nodes."""

    tasks: int
    cpus_per_task: int
    nodelist: str  # as Slurm prints it (``vm``, ``n[01-04]``)
    hostnames: tuple[str, ...]


def parse_job_shape(text: str) -> tuple[int, int, str]:
    """``squeue -h -j ID -O NumTasks:|,cpus-per-task:|,NodeList:`` as (tasks, cpus per task, node list)."""
    fields = [part.strip() for part in text.strip().split("|")]
    if len(fields) != 3 or not fields[0].isdigit() or not fields[2]:
        raise ValueError(f"unexpected squeue output {text.strip()[:100]!r}")
    cpus = int(fields[1]) if fields[1].isdigit() else 1
    return int(fields[0]), max(cpus, 1), fields[2]


def job_view_environment(shape: JobShape) -> dict[str, str]:
    """The variables :data:`JOB_VIEW` reads."""
    return dict(zip(JOB_VIEW_NAMES, (str(shape.tasks), str(shape.cpus_per_task), str(len(shape.hostnames)),
                                     shape.nodelist)))


def step_command(kernel_cmd: list[str], *, load_modules: bool) -> list[str]:
    """The job step's program: bash with fixed text sets :data:`JOB_VIEW`, loads the modules if asked
    (:data:`~dkrzspawner.modules.LOAD_AND_EXEC`), then becomes the kernel."""
    text = f"{JOB_VIEW} && " + (LOAD_AND_EXEC if load_modules else 'exec "$@"')
    return ["/bin/bash", "-c", text, "dkrz-kernel", *kernel_cmd]


#: variables the provisioner sets in the kernel's step (a kernelspec's ``env`` may not name them)
PROVISIONER_ENV = ("DKRZ_MODULES_INIT", "DKRZ_MODULES", "MODULEPATH", *JOB_VIEW_NAMES)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def env_pairs(texts) -> list[tuple[str, str]]:
    """``NAME=VALUE`` texts (``dkrz-kernel --env``) as pairs, for :func:`check_env`."""
    pairs = []
    for text in texts or ():
        name, sep, value = text.partition("=")
        if not sep:
            raise OptionsError("env", f"Env {shown(text[:60])} must be NAME=VALUE.")
        pairs.append((name, value))
    return pairs


def check_env(pairs) -> dict[str, str]:
    """Variables for a kernelspec's ``env`` (pairs, or a dict); OptionsError (field ``env``) naming the bad one.

    Names are shell variable names, neither Slurm's (``SLURM_*``, ``SRUN_*``, ``SALLOC_*``, ``SBATCH_*``: the
    provisioner drops them) nor the provisioner's own; values are one line without control characters.
    """
    env: dict[str, str] = {}
    for name, value in (pairs.items() if isinstance(pairs, dict) else pairs):
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise OptionsError("env", f"Env {shown(str(name)[:60])} is not a variable name (letters, "
                                      "digits and '_', not starting with a digit).")
        if name.startswith(SLURM_ENV_PREFIXES):
            raise OptionsError("env", f"Env {name}: Slurm's variables come from Slurm and cannot be set here "
                                      "(use the kernel's options, such as --cores or --tasks).")
        if name in PROVISIONER_ENV:
            raise OptionsError("env", f"Env {name} is set by the kernel's provisioner and cannot be set here.")
        if not isinstance(value, str) or _CONTROL.search(value) or len(value) > 4096:
            raise OptionsError("env", f"Env {name}: the value must be one line of text of at most 4096 "
                                      "characters, without control characters.")
        if name in env:
            raise OptionsError("env", f"Env {name} is given twice.")
        env[name] = value
    return env


def srun_argv(job_id: str, node: str, kernel_cmd: list[str], *, step_name: str, cpus: int | None = None,
              cwd: str | None = None, srun: str = "srun") -> list[str]:
    """``srun --overlap`` of one kernel process on the allocation's first node."""
    argv = [srun, f"--jobid={job_id}", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node}",
            f"--job-name={step_name}", "--input=none"]
    if cpus:
        argv.append(f"--cpus-per-task={cpus}")
    if cwd:
        argv.append(f"--chdir={cwd}")
    return argv + list(kernel_cmd)


def scrub_slurm_env(env: dict) -> dict:
    """The environment without the variables of an enclosing Slurm job (a Jupyter server that runs in a batch
    job has ``SLURM_JOB_ID``, ``SLURM_CPUS_PER_TASK``, ...; they would steer ``salloc``/``srun`` wrongly)."""
    return {key: value for key, value in env.items()
            if key in KEEP_SLURM_ENV or not key.startswith(SLURM_ENV_PREFIXES)}


_GRANTED = re.compile(r"Granted job allocation (\d+)")
_PENDING = re.compile(r"(?:Pending|Granted) job allocation (\d+)")


def granted_job_id(stderr: str) -> str | None:
    """The job id in ``salloc``'s messages (``salloc: Granted job allocation 212``), or None."""
    match = _GRANTED.search(stderr or "") or _PENDING.search(stderr or "")
    return match.group(1) if match else None


def describe(options: KernelOptions) -> str:
    """A short text for display names: ``preset shared, 2 cores`` or ``allocation 1234``."""
    if options.job_id:
        return f"allocation {options.job_id}" + (f", node {options.node}" if options.node else "")
    job = options.job
    if "partition" in job and "preset" not in job:
        parts = [f"partition {job['partition']}"]
    else:
        parts = [f"preset {job.get('preset', 'default')}"]
    for key, word in (("cores", "core"), ("gpus", "GPU")):
        if job.get(key):
            parts.append(f"{job[key]} {word}" + ("s" if job[key] != 1 else ""))
    if job.get("runtime"):
        parts.append(job["runtime"])
    return ", ".join(parts)
