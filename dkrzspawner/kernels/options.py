"""A Slurm kernel's options and the Slurm command lines they become. Pure: no command is run here.

A kernelspec's ``metadata.kernel_provisioner.config`` holds what the user asked for, for example
``{"preset": "shared", "cores": 2}`` or ``{"partition": "gpu", "gpus": 1, "runtime": "02:00:00", "tasks": 2}``
or ``{"job_id": "1234"}`` (run in an allocation that exists already). Checking happens twice, both times
through :mod:`dkrzspawner.options` (one code path with the hub's spawn form):

1. :func:`check_shape` needs no Slurm: unknown keys, wrong types, malformed sizes and durations, newlines,
   preset rules. A request refused here never reaches Slurm.
2. :func:`to_job_request` with the cluster facts (partitions and limits, the user's accounts, reservations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from .. import options as job_options
from ..options import (ADVANCED_WORDS, DKRZ_PRESETS, NAME, OptionsError, JobRequest, check_modules, load_presets,
                       memory_mb, runtime_seconds, validate)

#: the options that describe the allocation; they go to :func:`dkrzspawner.options.validate` unchanged
JOB_KEYS = ("preset", "partition", "account", "nodes", "cores", "memory", "gpus", "runtime", "reservation")
JOB_ID = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
KERNEL_WORDS = {"tasks": "Tasks", "modules": "Modules", "job_id": "Job id",
                "allocation_timeout": "Allocation timeout", **ADVANCED_WORDS, "preset": "Preset"}


class _KernelOnly(BaseModel):
    """The options that are the kernel's own, not the allocation's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tasks: int | None = None
    modules: list[str] | None = None
    job_id: int | str | None = None
    allocation_timeout: int | float | None = None


@dataclass(frozen=True)
class KernelOptions:
    """Options checked for shape. ``job`` is the part for :func:`dkrzspawner.options.validate`."""

    job: dict
    tasks: int = 1
    modules: tuple[str, ...] = ()
    job_id: str | None = None
    allocation_timeout: float = 300.0

    @property
    def reuses_allocation(self) -> bool:
        return self.job_id is not None


def default_presets():
    return load_presets(DKRZ_PRESETS)


def check_shape(config, presets=None) -> KernelOptions:
    """Options as given in a kernelspec (or on the command line), checked without asking Slurm.

    Raises :class:`~dkrzspawner.options.OptionsError` naming the field.
    """
    if not isinstance(config, dict):
        raise OptionsError("config", "The kernel's options must be a JSON object.")
    presets = presets or default_presets()
    job = {key: value for key, value in config.items() if key in JOB_KEYS}
    rest = {key: value for key, value in config.items() if key not in JOB_KEYS}
    try:
        own = _KernelOnly.model_validate(rest)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "config"
        if error["type"] == "extra_forbidden":
            raise OptionsError(name, f"Unknown option {job_options._show(name)}; allowed are "
                                     f"{', '.join((*JOB_KEYS, 'tasks', 'modules', 'job_id'))}.") from None
        raise OptionsError(name, f"{KERNEL_WORDS.get(name, name)}: {job_options._plain(error)}.") from None

    job_id = None
    if own.job_id is not None:
        job_id = str(own.job_id)
        if not JOB_ID.fullmatch(job_id):
            raise OptionsError("job_id", "Job id must be the number of a Slurm job (allocation), such as 1234.")
        if job:
            raise OptionsError("job_id", f"Job id runs the kernel in an existing allocation, so it cannot be "
                                         f"combined with {', '.join(job)}.")
    modules = check_modules(own.modules, None)  # the names' shape; what the cluster offers is checked at launch
    timeout = 300.0 if own.allocation_timeout is None else float(own.allocation_timeout)
    if not 1 <= timeout <= 7 * 86400:
        raise OptionsError("allocation_timeout", "Allocation timeout must be between 1 s and 7 days (in seconds).")
    tasks = 1 if own.tasks is None else own.tasks
    if not 1 <= tasks <= 4096:
        raise OptionsError("tasks", "Tasks must be between 1 and 4096.")
    if job_id is None:
        _check_job_shape(job, presets)
    return KernelOptions(job=job, tasks=tasks, modules=modules, job_id=job_id, allocation_timeout=timeout)


def _check_job_shape(job: dict, presets) -> None:
    """What :func:`dkrzspawner.options.validate` checks before it needs Slurm's facts."""
    if "partition" in job and "preset" not in job:
        parsed = job_options._parse(job_options._AdvancedOptions, job, ADVANCED_WORDS)
        for key in ("partition", "account", "reservation"):
            value = getattr(parsed, key)
            if value and not NAME.fullmatch(value):
                raise OptionsError(key, f"{ADVANCED_WORDS[key]} must be a Slurm {key} name "
                                        "(letters, digits, '_', '.', '-').")
        for key in ("nodes", "cores"):
            value = getattr(parsed, key)
            if value is not None and value < 1:
                raise OptionsError(key, f"{ADVANCED_WORDS[key]} must be at least 1.")
        if parsed.gpus is not None and parsed.gpus < 0:
            raise OptionsError("gpus", "GPUs must be 0 or more.")
        if parsed.memory is not None:
            try:
                if memory_mb(parsed.memory) < 1:
                    raise ValueError
            except ValueError:
                raise OptionsError("memory", "Memory must be a size in Slurm's units, such as 500M or 8G.") from None
        if parsed.runtime is not None:
            try:
                runtime_seconds(parsed.runtime)
            except ValueError:
                raise OptionsError("runtime", "Runtime must look like HH:MM:SS or D-HH:MM:SS.") from None
        return
    # presets (or nothing, meaning the first preset): the preset rules need no facts
    validate(job, presets)


def to_job_request(options: KernelOptions, presets=None, facts=None) -> JobRequest:
    """The allocation to ask for, validated against the cluster ``facts`` (see :func:`options.make_facts`)."""
    request = validate(options.job, presets or default_presets(), facts=facts)
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
        return f"allocation {options.job_id}"
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
