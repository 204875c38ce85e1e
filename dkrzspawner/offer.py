"""What one user is offered: the cluster's facts x the site's settings x the group policy, built once per request.

What lives here: :class:`PartitionLimits` (one partition as users see it: Slurm's limits tightened by the site's
:class:`~dkrzspawner.options.PartitionSettings`, and what is free now), :func:`partition_limits`,
:func:`settings_for` (the ``"*"`` entry with a partition's own on top), :class:`Facts` (what validation knows
about the cluster for one user), :func:`make_facts`, and :class:`Offer`, which the spawner, the form and the
kernels share. May import :mod:`dkrzspawner.units`, :mod:`dkrzspawner.options` and :mod:`dkrzspawner.policy`;
pure: it reads a :class:`~dkrzspawner.cluster.Snapshot` it is given (duck-typed, no import of the I/O module)
and runs no command.

The :class:`Offer` API:

- ``Offer(site_presets, partitions={}, advanced=True, allowance=Allowance())``: the site's settings for a user
  whose groups give ``allowance`` (no cluster facts yet: only presets can be validated);
  ``offer.with_cluster(snapshot, modules)`` is the same offer with the cluster's facts (the site's partition
  settings applied, then the allowance, once); ``offer.with_facts(facts)`` takes facts made already.
- ``offer.presets``: the presets this user may pick (the site's order); ``offer.facts``: the facts this user may
  use (other partitions hidden from advanced requests, other accounts left out), None without the cluster.
  The form renders from these two (:func:`dkrzspawner.form.preselect`, :func:`dkrzspawner.form.context`).
- ``offer.validate(user_options) -> JobRequest``: the one validation of spawns and kernels alike; the body is
  unwrapped once, the group policy refuses by name what the user's groups do not allow, the rest is validated
  against what they may use, and where the policy limits accounts and Slurm did not say which the user has,
  the request fails closed. Raises :class:`~dkrzspawner.options.OptionsError`.
- ``offer.check_shape(user_options)``: what can be checked before Slurm is asked (a kernelspec): the group
  policy, whether advanced requests are offered, an advanced request's types, names and formats, a preset
  request in full.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .options import (ADVANCED_WORDS, AdvancedOptions, JobRequest, OptionsError, PartitionSettings, Preset,
                      parse_fields, request_from, unwrap)
from .policy import Allowance
from .units import account_allowed, memory_mb, runtime_seconds


# -- partitions: what Slurm has, adjusted by the site ------------------------------------------------------
def settings_for(settings: dict[str, PartitionSettings], name: str) -> PartitionSettings:
    """The ``"*"`` entry with the partition's own entry on top."""
    merged = {}
    for key in ("*", name):
        if key in settings:
            merged.update(settings[key].model_dump(exclude_unset=True))
    return PartitionSettings(**merged)


@dataclass(frozen=True)
class PartitionLimits:
    """A partition as users see it: Slurm's limits tightened by the site's settings, and what is free now."""

    name: str
    display_name: str
    description: str = ""
    hint: str = ""
    hidden: bool = False
    default: bool = False
    state: str = "UP"
    max_nodes: int = 1
    max_cores: int = 1  # per node
    max_memory_mb: int = 0  # per node
    max_memory_per_core_mb: int | None = None
    max_gpus: int = 0  # per node
    max_runtime: int | None = None  # seconds; None: unlimited
    default_runtime: int = 3600
    default_cores: int = 1
    memory_per_core_mb: int = 1000
    allow_accounts: tuple[str, ...] | None = None
    deny_accounts: tuple[str, ...] = ()
    idle_cores: int = 0
    total_cores: int = 0
    free_gpus: int = 0
    total_gpus: int = 0
    free_memory_mb: int = 0
    modules: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        return self.state == "UP"

    def allows_account(self, account: str) -> bool:
        """Whether the partition's AllowAccounts/DenyAccounts let ``account`` in."""
        return account_allowed(account, self.allow_accounts, self.deny_accounts)


def _smallest(*values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


def partition_limits(slurm, settings: PartitionSettings) -> PartitionLimits:
    """One :class:`~dkrzspawner.cluster.Partition` with the site's :class:`PartitionSettings` applied."""
    node_cores = slurm.cpus_per_node or slurm.total_cpus or 1
    max_cores = _smallest(node_cores, slurm.max_cpus_per_node, settings.max_cores)
    max_memory = _smallest(slurm.memory_per_node or None, slurm.max_mem_per_node,
                           memory_mb(settings.max_memory) if settings.max_memory else None) or 0
    max_runtime = _smallest(slurm.max_time, runtime_seconds(settings.max_runtime) if settings.max_runtime else None)
    if settings.memory_per_core:
        per_core = memory_mb(settings.memory_per_core)
    elif slurm.def_mem_per_cpu:
        per_core = slurm.def_mem_per_cpu
    elif slurm.def_mem_per_node and node_cores:
        per_core = slurm.def_mem_per_node // node_cores
    else:
        per_core = max(max_memory // max(node_cores, 1), 1)
    if slurm.max_mem_per_cpu:
        per_core = min(per_core, slurm.max_mem_per_cpu)
    if settings.default_runtime:
        default_runtime = runtime_seconds(settings.default_runtime)
    elif slurm.default_time:
        default_runtime = slurm.default_time
    else:
        default_runtime = 3600
    if max_runtime is not None:
        default_runtime = min(default_runtime, max_runtime)
    gpus_offered = settings.max_gpus is None or settings.max_gpus > 0
    return PartitionLimits(
        name=slurm.name,
        display_name=settings.display_name or slurm.name,
        description=settings.description,
        hint=settings.hint,
        hidden=settings.hidden or slurm.hidden,
        default=slurm.default,
        state=slurm.state,
        max_nodes=_smallest(slurm.max_nodes, slurm.total_nodes or 1, settings.max_nodes),
        max_cores=max_cores,
        max_memory_mb=max_memory,
        max_memory_per_core_mb=slurm.max_mem_per_cpu,
        max_gpus=_smallest(slurm.gpus_per_node, settings.max_gpus),
        max_runtime=max_runtime,
        default_runtime=default_runtime,
        default_cores=min(settings.default_cores or 1, max_cores),
        memory_per_core_mb=per_core,
        allow_accounts=slurm.allow_accounts,
        deny_accounts=tuple(slurm.deny_accounts),
        idle_cores=slurm.idle_cpus,
        total_cores=slurm.total_cpus,
        free_gpus=slurm.free_gpus if gpus_offered else 0,
        total_gpus=slurm.total_gpus if gpus_offered else 0,
        free_memory_mb=slurm.free_memory,
        modules=settings.modules,
    )


# -- the facts of one user ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """What validation knows about the cluster for one user. A part is None when Slurm did not answer."""

    user: str = ""
    partitions: dict[str, PartitionLimits] | None = None
    access: object | None = None  # cluster.Access: accounts, accounts_for(partition), default_account
    reservations: tuple | None = None  # cluster.Reservation: name, allows(user, account)
    advanced: bool = True
    errors: tuple[str, ...] = field(default=())
    as_of: str = ""  # when Slurm gave the partition data (HH:MM:SS)
    modules: tuple[str, ...] | None = None  # the modules the cluster offers; None: none offered or Lmod failed

    def visible(self) -> list[PartitionLimits]:
        """Partitions offered for advanced requests, Slurm's default partition first."""
        found = [p for p in (self.partitions or {}).values() if not p.hidden]
        return sorted(found, key=lambda p: not p.default)


def make_facts(snapshot, settings: dict[str, PartitionSettings], advanced: bool = True, modules=None) -> Facts:
    """Facts from a :class:`~dkrzspawner.cluster.Snapshot`, the site's partition settings and the modules the
    cluster offers (None: no modules offered)."""
    partitions = None
    if snapshot.partitions is not None:
        partitions = {name: partition_limits(part, settings_for(settings, name))
                      for name, part in snapshot.partitions.items()}
    return Facts(user=snapshot.user, partitions=partitions, access=snapshot.access,
                 reservations=snapshot.reservations, advanced=advanced, errors=tuple(snapshot.errors),
                 as_of=getattr(snapshot, "as_of", ""), modules=modules)


# -- the offer ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Offer:
    """What one user is offered: the site's presets, partition settings and advanced requests, narrowed by the
    allowance of their groups, and (after :meth:`with_cluster`) the cluster's facts as this user may use them.
    The spawner, the form and the kernels go through it alike; see the module's docstring for the API."""

    site_presets: dict[str, Preset]
    partitions: dict[str, PartitionSettings] = field(default_factory=dict)
    advanced: bool = True
    allowance: Allowance = Allowance()
    #: the cluster's facts as this user may use them; None: Slurm not asked (only presets can be validated)
    facts: Facts | None = None
    #: the presets this user may pick, in the site's order
    presets: dict[str, Preset] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "presets", self.allowance.allowed_presets(self.site_presets))

    def facts_from(self, snapshot, modules=None) -> Facts:
        """The cluster's facts (a :class:`~dkrzspawner.cluster.Snapshot`) with the site's partition settings,
        before the group policy narrows them."""
        return make_facts(snapshot, self.partitions, advanced=self.advanced, modules=modules)

    def with_facts(self, facts: Facts) -> Offer:
        """This offer with ``facts`` (made by :meth:`facts_from` or by hand), narrowed by the allowance once."""
        return dataclasses.replace(self, facts=self.allowance.allowed_facts(facts))

    def with_cluster(self, snapshot, modules=None) -> Offer:
        """This offer with the cluster's facts of ``snapshot`` and the ``modules`` the cluster offers."""
        return self.with_facts(self.facts_from(snapshot, modules))

    def validate(self, user_options) -> JobRequest:
        """``user_options`` as a request, refused by name where the site or the user's groups do not allow it."""
        options = unwrap(user_options)
        self.allowance.check(options, self.site_presets)
        request = request_from(options, self.presets, facts=self.facts)
        if self.facts is None:  # only the request's shape (a kernelspec checked before Slurm is asked)
            return request
        return dataclasses.replace(request, account=self.allowance.account_for(request.account))

    def check_shape(self, user_options) -> None:
        """Refuse what can be refused before Slurm is asked: what the user's groups do not allow, an advanced
        request where none is offered or whose fields are malformed, and a preset request in full."""
        options = unwrap(user_options)
        self.allowance.check(options, self.site_presets)
        if not ("partition" in options and "preset" not in options) or not self.advanced:
            request_from(options, self.presets)  # presets need no facts; advanced ones are refused without
            return
        parsed = parse_fields(AdvancedOptions, options, ADVANCED_WORDS)
        for key in ("nodes", "cores"):
            value = getattr(parsed, key)
            if value is not None and value < 1:
                raise OptionsError(key, f"{ADVANCED_WORDS[key]} must be at least 1.")
        if parsed.gpus is not None and parsed.gpus < 0:
            raise OptionsError("gpus", "GPUs must be 0 or more.")
