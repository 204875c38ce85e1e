"""What a Slurm kernelspec may ask for: its options (:class:`KernelOptions`) and its ``env``, checked.

A kernelspec's ``metadata.kernel_provisioner.config`` holds what the user asked for, for example
``{"preset": "shared", "cores": 2}`` or ``{"partition": "gpu", "gpus": 1, "runtime": "02:00:00", "tasks": 2}``
or ``{"job_id": "1234"}`` (run in an allocation that exists already). Checking happens twice, both times
through the hub's own validation (:class:`~dkrzspawner.offer.Offer`, one code path with the spawn form):
:func:`check_shape` needs no Slurm (unknown keys, wrong types, malformed sizes and durations, newlines, preset
rules: :meth:`~dkrzspawner.offer.Offer.check_shape`; a request refused here never reaches Slurm), then
:func:`to_job_request` adds the cluster facts (partitions and limits, the user's accounts, reservations).
``node`` (with ``job_id`` only) picks the node of that allocation the kernel runs on; :func:`check_node` checks
it against the allocation's nodes once Slurm has named them. :func:`check_env` checks the variables a user puts
in a kernelspec's ``env``. Pure: runs no command; imports the core's options, offer and site file (for the
default offer), and :mod:`.step` (the variables the step sets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from ..offer import Offer
from ..options import ADVANCED_WORDS, OptionsError, JobRequest, check_modules, plain, shown
from ..siteconfig import SiteConfig
from .step import PROVISIONER_ENV, SLURM_ENV_PREFIXES

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
    tasks: int | None = None  # the allocation's tasks, all nodes together; None: one per node
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
    tasks = own.tasks
    if tasks is not None and not 1 <= tasks <= 4096:
        raise OptionsError("tasks", "Tasks must be between 1 and 4096.")
    if job_id is None:  # what the hub's validation checks before it needs Slurm's facts
        offer.check_shape(job)
    return KernelOptions(job=job, tasks=tasks, modules=modules, job_id=job_id, node=own.node,
                         allocation_timeout=timeout)


def check_node(node: str | None, job_id: str, hostnames) -> str | None:
    """``node`` if it is one of the allocation's ``hostnames`` (None stays None); OptionsError otherwise."""
    if node is None or node in hostnames:
        return node
    raise OptionsError("node", f"Node {shown(node)} is not one of allocation {job_id}'s nodes "
                               f"({', '.join(hostnames) or 'none'}).")


def to_job_request(options: KernelOptions, offer: Offer | None = None, facts=None) -> JobRequest:
    """The allocation to ask for, validated like a spawn against the cluster ``facts`` (see
    :meth:`~dkrzspawner.offer.Offer.facts_from`) and what the hub offers the user (``offer``)."""
    offer = offer or default_offer()
    request = (offer if facts is None else offer.with_facts(facts)).validate(options.job)
    tasks_per_node(options, request)
    return request


def tasks_per_node(options: KernelOptions, request: JobRequest) -> int:
    """The allocation's tasks on each node (``salloc --ntasks-per-node``): ``tasks`` (all nodes together; one
    per node when not given) spread evenly over the request's nodes, each task with the same share of a node's
    cores (``--cpus-per-task``); OptionsError naming ``tasks`` when they cannot be."""
    tasks = request.nodes if options.tasks is None else options.tasks
    per_node, rest = divmod(tasks, request.nodes)
    if rest or not per_node or request.cores % per_node:
        choices = [str(request.nodes * n) for n in range(1, request.cores + 1) if request.cores % n == 0]
        listed = ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
        where = "" if request.nodes == 1 else f", the same number on each of its {request.nodes} nodes"
        raise OptionsError("tasks", f"Tasks must divide the {request.total_cores} cores of the allocation evenly"
                                    f"{where}: {listed}.")
    return per_node


# -- the kernelspec's env ---------------------------------------------------------------------------
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
#: a control character (never in a kernelspec's text)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
        if not isinstance(value, str) or CONTROL.search(value) or len(value) > 4096:
            raise OptionsError("env", f"Env {name}: the value must be one line of text of at most 4096 "
                                      "characters, without control characters.")
        if name in env:
            raise OptionsError("env", f"Env {name} is given twice.")
        env[name] = value
    return env


def describe(options: KernelOptions) -> str:
    """A short text for display names: ``preset shared, 2 cores`` or ``allocation 1234``."""
    if options.job_id:
        return f"allocation {options.job_id}" + (f", node {options.node}" if options.node else "")
    job = options.job
    if "partition" in job and "preset" not in job:
        parts = [f"partition {job['partition']}"]
    else:
        parts = [f"preset {job.get('preset', 'default')}"]
    nodes = job.get("nodes")
    if isinstance(nodes, int) and nodes > 1:
        parts.append(f"{nodes} nodes")
    each = " per node" if isinstance(nodes, int) and nodes > 1 else ""
    for key, word in (("cores", "core"), ("gpus", "GPU")):
        if job.get(key):
            parts.append(f"{job[key]} {word}" + ("s" if job[key] != 1 else "") + each)
    if job.get("runtime"):
        parts.append(job["runtime"])
    return ", ".join(parts)
