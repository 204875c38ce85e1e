"""Presets, partitions and policy; the validation of ``user_options`` into a :class:`JobRequest`.

One code path for every input: the form (:func:`options_from_form`), spawn URLs (:func:`options_from_query`)
and REST bodies all end in :func:`validate`. Pure: reads the cluster facts it is given (:class:`Facts`, made
from what :mod:`dkrzspawner.cluster` found), runs no command. Every refusal is an :class:`OptionsError` whose
message is one sentence naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .cluster import PartitionAccess
from .units import MODULE, NAME, SLUG, format_runtime, human_memory, memory_mb, runtime_seconds

MIN_RUNTIME = 60
MAX_MODULES = 32


class OptionsError(ValueError):
    """A request that is refused; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


# -- presets -----------------------------------------------------------------------------------------------
class Preset(BaseModel):
    """A ready-made request that users pick with one click."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    display_name: str
    description: str = ""
    partition: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    cores: tuple[int, ...] = (1, 2, 4)
    memory_per_core: str = "2500M"
    runtime: str = "06:00:00"
    max_runtime: str = "12:00:00"
    modules: tuple[str, ...] = ()

    @field_validator("cores")
    @classmethod
    def _cores_positive(cls, value):
        if not value or any(c < 1 for c in value):
            raise ValueError("cores must be a non-empty list of positive numbers")
        return value

    @field_validator("memory_per_core")
    @classmethod
    def _memory_units(cls, value):
        memory_mb(value)
        return value

    @field_validator("runtime", "max_runtime")
    @classmethod
    def _runtime_format(cls, value):
        runtime_seconds(value)
        return value

    @field_validator("modules")
    @classmethod
    def _module_names(cls, value):
        return _module_names(value)


def _module_names(value):
    bad = [name for name in value if not MODULE.fullmatch(name)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a module name (letters, digits and _ . + / -)")
    return value


DKRZ_PRESETS = {
    "shared": {
        "display_name": "Shared",
        "description": "A share of a node in the shared partition, for interactive work and analysis.",
        "partition": "shared",
    },
    "prepost": {
        "display_name": "Pre- and post-processing",
        "description": "A share of a node in the prepost partition, the one with internet access.",
        "partition": "prepost",
    },
}


def load_presets(config: dict) -> dict[str, Preset]:
    """Check the admin's preset config once; a bad entry names the preset and the field."""
    presets = {}
    for key, value in config.items():
        if not SLUG.fullmatch(str(key)):
            raise ValueError(f"preset name {key!r} must be a lower-case slug")
        try:
            presets[key] = Preset.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"preset {key!r}: {_first_error(exc)}") from None
    if not presets:
        raise ValueError("at least one preset is needed")
    return presets


# -- partitions: what Slurm has, adjusted by the site ------------------------------------------------------
class PartitionPolicy(BaseModel):
    """A site's adjustments to one partition as Slurm reports it (``c.DKRZSpawner.partitions``).

    Limits only tighten what Slurm allows; the form never offers more than Slurm would give.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: bool = False
    display_name: str | None = None
    description: str = ""
    hint: str = ""
    max_nodes: int | None = Field(None, ge=1)
    max_cores: int | None = Field(None, ge=1)
    max_memory: str | None = None
    max_gpus: int | None = Field(None, ge=0)
    max_runtime: str | None = None
    default_runtime: str | None = None
    default_cores: int | None = Field(None, ge=1)
    memory_per_core: str | None = None
    #: modules loaded for every job in this partition, before a preset's and the user's
    modules: tuple[str, ...] = ()

    @field_validator("modules")
    @classmethod
    def _module_names(cls, value):
        return _module_names(value)

    @field_validator("max_memory", "memory_per_core")
    @classmethod
    def _memory_units(cls, value):
        if value is not None:
            memory_mb(value)
        return value

    @field_validator("max_runtime", "default_runtime")
    @classmethod
    def _runtime_format(cls, value):
        if value is not None:
            runtime_seconds(value)
        return value


def load_partition_policy(config: dict) -> dict[str, PartitionPolicy]:
    """Check the admin's partition config once; ``"*"`` applies to every partition, named entries on top."""
    policy = {}
    for key, value in config.items():
        if key != "*" and not NAME.fullmatch(str(key)):
            raise ValueError(f"partition name {key!r} is not a Slurm partition name")
        try:
            policy[key] = PartitionPolicy.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"partition {key!r}: {_first_error(exc)}") from None
    return policy


def policy_for(policy: dict[str, PartitionPolicy], name: str) -> PartitionPolicy:
    """The ``"*"`` entry with the partition's own entry on top."""
    merged = {}
    for key in ("*", name):
        if key in policy:
            merged.update(policy[key].model_dump(exclude_unset=True))
    return PartitionPolicy(**merged)


@dataclass(frozen=True)
class PartitionLimits(PartitionAccess):
    """A partition as users see it: Slurm's limits tightened by the site's policy, and what is free now."""

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


def _smallest(*values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


def partition_limits(slurm, policy: PartitionPolicy) -> PartitionLimits:
    """One :class:`~dkrzspawner.cluster.Partition` with the site's :class:`PartitionPolicy` applied."""
    node_cores = slurm.cpus_per_node or slurm.total_cpus or 1
    max_cores = _smallest(node_cores, slurm.max_cpus_per_node, policy.max_cores)
    max_memory = _smallest(slurm.memory_per_node or None, slurm.max_mem_per_node,
                           memory_mb(policy.max_memory) if policy.max_memory else None) or 0
    max_runtime = _smallest(slurm.max_time, runtime_seconds(policy.max_runtime) if policy.max_runtime else None)
    if policy.memory_per_core:
        per_core = memory_mb(policy.memory_per_core)
    elif slurm.def_mem_per_cpu:
        per_core = slurm.def_mem_per_cpu
    elif slurm.def_mem_per_node and node_cores:
        per_core = slurm.def_mem_per_node // node_cores
    else:
        per_core = max(max_memory // max(node_cores, 1), 1)
    if slurm.max_mem_per_cpu:
        per_core = min(per_core, slurm.max_mem_per_cpu)
    if policy.default_runtime:
        default_runtime = runtime_seconds(policy.default_runtime)
    elif slurm.default_time:
        default_runtime = slurm.default_time
    else:
        default_runtime = 3600
    if max_runtime is not None:
        default_runtime = min(default_runtime, max_runtime)
    return PartitionLimits(
        name=slurm.name,
        display_name=policy.display_name or slurm.name,
        description=policy.description,
        hint=policy.hint,
        hidden=policy.hidden or slurm.hidden,
        default=slurm.default,
        state=slurm.state,
        max_nodes=_smallest(slurm.max_nodes, slurm.total_nodes or 1, policy.max_nodes),
        max_cores=max_cores,
        max_memory_mb=max_memory,
        max_memory_per_core_mb=slurm.max_mem_per_cpu,
        max_gpus=_smallest(slurm.gpus_per_node, policy.max_gpus),
        max_runtime=max_runtime,
        default_runtime=default_runtime,
        default_cores=min(policy.default_cores or 1, max_cores),
        memory_per_core_mb=per_core,
        allow_accounts=slurm.allow_accounts,
        deny_accounts=tuple(slurm.deny_accounts),
        idle_cores=slurm.idle_cpus,
        total_cores=slurm.total_cpus,
        free_gpus=slurm.free_gpus if (policy.max_gpus is None or policy.max_gpus > 0) else 0,
        total_gpus=slurm.total_gpus if (policy.max_gpus is None or policy.max_gpus > 0) else 0,
        free_memory_mb=slurm.free_memory,
        modules=policy.modules,
    )


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


def make_facts(snapshot, policy: dict[str, PartitionPolicy], advanced: bool = True, modules=None) -> Facts:
    """Facts from a :class:`~dkrzspawner.cluster.Snapshot`, the site's partition policy and the modules the
    cluster offers (None: no modules offered)."""
    partitions = None
    if snapshot.partitions is not None:
        partitions = {name: partition_limits(part, policy_for(policy, name))
                      for name, part in snapshot.partitions.items()}
    return Facts(user=snapshot.user, partitions=partitions, access=snapshot.access,
                 reservations=snapshot.reservations, advanced=advanced, errors=tuple(snapshot.errors),
                 as_of=getattr(snapshot, "as_of", ""), modules=modules)


# -- the validated request ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRequest:
    """A validated request: only these values ever reach a batch script or a command line."""

    partition: str
    cores: int
    memory: str
    runtime: str
    account: str | None = None
    nodes: int = 1
    gpus: int = 0
    reservation: str | None = None
    preset: str | None = None
    modules: tuple[str, ...] = ()  # in load order: the partition's, the preset's, then the user's

    @property
    def memory_mb(self) -> int:
        return memory_mb(self.memory)

    @property
    def core_hours(self) -> float:
        return self.nodes * self.cores * runtime_seconds(self.runtime) / 3600


class _CommonOptions(BaseModel):
    """The fields both kinds of request share; anything not declared is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cores: int | None = None
    account: str | None = None
    runtime: str | None = None
    modules: list[str] | None = None


class _PresetOptions(_CommonOptions):
    preset: str


class _AdvancedOptions(_CommonOptions):
    partition: str
    nodes: int | None = None
    memory: str | None = None
    gpus: int | None = None
    reservation: str | None = None


FIELD_WORDS = {"preset": "Preset", "cores": "Cores", "account": "Account", "runtime": "Runtime",
               "modules": "Modules"}
ADVANCED_WORDS = {"partition": "Partition", "account": "Account", "nodes": "Nodes", "cores": "Cores",
                  "memory": "Memory", "gpus": "GPUs", "runtime": "Runtime", "reservation": "Reservation",
                  "modules": "Modules"}


def unwrap(user_options) -> dict:
    """Accept both REST bodies: JupyterHub 5's bare options and 6's ``{"user_options": {...}}``."""
    if not isinstance(user_options, dict):
        raise OptionsError("user_options", "The request must be a JSON object of options.")
    if set(user_options) == {"user_options"} and isinstance(user_options["user_options"], dict):
        return user_options["user_options"]
    return user_options


def validate(user_options, presets: dict[str, Preset], accounts: tuple[str, ...] = (), *,
             facts: Facts | None = None) -> JobRequest:
    """Turn ``user_options`` into a :class:`JobRequest`, or raise :class:`OptionsError`.

    ``facts`` are what Slurm says (partitions and limits after the site's policy, the user's associations,
    reservations); without them only presets are offered and Slurm decides on accounts. ``accounts`` are the
    user's Slurm accounts when no facts are given (empty: not known).
    """
    options = unwrap(user_options)
    if not options:
        options = {"preset": next(iter(presets))}
    advanced = facts is not None and facts.advanced
    if "partition" in options and "preset" not in options:
        if not advanced:
            raise OptionsError("partition", "Advanced requests (partition) are not available on this hub.")
        return _validate_advanced(options, facts)
    if "preset" not in options:
        raise OptionsError("preset", "Choose a preset or a partition." if advanced else "Choose a preset.")
    if advanced and "partition" in options:
        raise OptionsError("partition", "Choose either a preset or a partition (advanced request), not both.")
    return _validate_preset(options, presets, accounts, facts)


def _parse(model, options: dict, words: dict[str, str]):
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error["loc"] else "user_options"
        if error["type"] == "extra_forbidden":
            raise OptionsError(field_name, f"Unknown option {_show(field_name)}; allowed are "
                                           f"{', '.join(words)}.") from None
        raise OptionsError(field_name, f"{words.get(field_name, field_name)}: {_plain(error)}.") from None


def _validate_preset(options, presets, accounts, facts) -> JobRequest:
    parsed = _parse(_PresetOptions, options, FIELD_WORDS)
    name = parsed.preset
    preset = presets.get(name)
    if preset is None:
        raise OptionsError("preset", f"Preset {_show(name)} does not exist; choose one of {', '.join(presets)}.")
    limits = None
    if facts is not None and facts.partitions is not None:
        limits = facts.partitions.get(preset.partition)
        if limits is None:
            raise OptionsError("preset", f"Preset {name} is not available: Slurm has no partition "
                                         f"{preset.partition}.")
    cores = preset.cores[0] if parsed.cores is None else parsed.cores
    if cores not in preset.cores:
        raise OptionsError("cores", f"Cores must be one of {', '.join(map(str, preset.cores))} for preset {name}.")
    runtime = preset.runtime if parsed.runtime is None else parsed.runtime
    try:
        seconds = runtime_seconds(runtime)
    except ValueError:
        raise OptionsError("runtime", "Runtime must look like HH:MM:SS or D-HH:MM:SS.") from None
    longest = runtime_seconds(preset.max_runtime)
    if limits is not None and limits.max_runtime is not None:
        longest = min(longest, limits.max_runtime)
    if not MIN_RUNTIME <= seconds <= longest:
        raise OptionsError("runtime", f"Runtime must be between {format_runtime(MIN_RUNTIME)} and "
                                      f"{format_runtime(longest)} for preset {name}.")
    memory = cores * memory_mb(preset.memory_per_core)
    if limits is not None:
        if cores > limits.max_cores:
            raise OptionsError("cores", f"Cores: partition {limits.name} allows at most {limits.max_cores} per "
                                        f"node, so preset {name} cannot have {cores}.")
        if limits.max_memory_mb and memory > limits.max_memory_mb:
            raise OptionsError("cores", f"Cores: {cores} cores of preset {name} need {memory}M of memory, more "
                                        f"than partition {limits.name} allows ({limits.max_memory_mb}M).")
    account = _check_account(parsed.account, accounts, facts, limits, preset.partition)
    modules = check_modules(parsed.modules, facts, (*(limits.modules if limits else ()), *preset.modules))
    return JobRequest(partition=preset.partition, cores=cores, memory=f"{memory}M", runtime=format_runtime(seconds),
                      account=account, preset=name, modules=modules)


def check_modules(requested, facts, admin_modules=()) -> tuple[str, ...]:
    """The modules to load: the admin's, then the user's, each once. A user's module must be one the cluster
    offers (``module -t avail``); the admin's were checked when the config was read. Without ``facts`` only
    the names' shape is checked (a kernelspec read before Slurm and Lmod are asked)."""
    chosen = list(dict.fromkeys(admin_modules))
    if not requested:
        return tuple(chosen)
    if len(requested) > MAX_MODULES:
        raise OptionsError("modules", f"Modules: at most {MAX_MODULES} may be loaded.")
    for name in requested:
        if not isinstance(name, str) or not MODULE.fullmatch(name):
            raise OptionsError("modules", f"Modules: {_show(str(name))} is not a module name "
                                          "(letters, digits and _ . + / -).")
    if facts is None:
        return tuple(dict.fromkeys([*chosen, *requested]))
    offered = facts.modules
    if offered is None:
        raise OptionsError("modules", "Modules: this hub offers no environment modules right now, so none can "
                                      "be loaded; leave the field empty.")
    for name in requested:
        if name not in offered:
            raise OptionsError("modules", f"Modules: {_show(name)} is not a module of this cluster "
                                          "(see `module avail`).")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def _check_account(account, accounts, facts, limits, partition: str) -> str | None:
    """The request's account: the one asked for if the user may charge it here, else the default one."""
    if account is not None and not NAME.fullmatch(account):
        raise OptionsError("account", "Account must be a Slurm account name (letters, digits, '_', '.', '-').")
    access = facts.access if facts is not None else None
    if access is None:
        if account is not None and accounts and account not in accounts:
            raise OptionsError("account", f"Account {account} is not one of yours ({', '.join(accounts)}).")
        return account
    mine = tuple(access.accounts)
    if not mine:
        raise OptionsError("account", "Account: you have no Slurm account on this cluster; please ask your "
                                      "project's administrator to add you.")
    allowed = [a for a in access.accounts_for(partition) if limits is None or limits.allows_account(a)]
    if account is None:
        if not allowed:
            raise OptionsError("account", f"Account: none of your accounts ({', '.join(mine)}) may be used in "
                                          f"partition {partition}.")
        return access.default_account if access.default_account in allowed else allowed[0]
    if account not in mine:
        raise OptionsError("account", f"Account {account} is not one of yours ({', '.join(mine)}).")
    if account not in allowed:
        there = f"yours there: {', '.join(allowed)}" if allowed else "none of yours may"
        raise OptionsError("account", f"Account {account} may not be used in partition {partition}; {there}.")
    return account


def _validate_advanced(options, facts: Facts) -> JobRequest:
    parsed = _parse(_AdvancedOptions, options, ADVANCED_WORDS)
    name = parsed.partition
    if not NAME.fullmatch(name):
        raise OptionsError("partition", "Partition must be a Slurm partition name (letters, digits, '_', '.', '-').")
    if facts.partitions is None:
        raise OptionsError("partition", "Partition: Slurm did not answer, so the request cannot be checked; "
                                        "please try again in a minute.")
    limits = facts.partitions.get(name)
    offered = [p.name for p in facts.visible()]
    if limits is None or limits.hidden:
        raise OptionsError("partition", f"Partition {_show(name)} is not offered here; choose one of "
                                        f"{', '.join(offered) or 'the presets'}.")
    if not limits.up:
        raise OptionsError("partition", f"Partition {name} is {limits.state.lower()} right now; choose another.")
    account = _check_account(parsed.account, (), facts, limits, name)

    nodes = 1 if parsed.nodes is None else parsed.nodes
    if not 1 <= nodes <= limits.max_nodes:
        raise OptionsError("nodes", f"Nodes must be between 1 and {limits.max_nodes} in partition {name}.")
    cores = limits.default_cores if parsed.cores is None else parsed.cores
    if not 1 <= cores <= limits.max_cores:
        raise OptionsError("cores", f"Cores must be between 1 and {limits.max_cores} per node in partition {name}.")

    if parsed.memory is None:
        default_mb = cores * limits.memory_per_core_mb
        memory = f"{min(default_mb, limits.max_memory_mb) if limits.max_memory_mb else default_mb}M"
    else:
        memory = parsed.memory
        try:
            mb = memory_mb(memory)
        except ValueError:
            raise OptionsError("memory", "Memory must be a size in Slurm's units, such as 500M or 8G.") from None
        if mb < 1:
            raise OptionsError("memory", "Memory must be at least 1M.")
        if limits.max_memory_mb and mb > limits.max_memory_mb:
            raise OptionsError("memory", f"Memory must be at most {limits.max_memory_mb}M "
                                         f"({human_memory(limits.max_memory_mb)}) per node in partition {name}.")
        if limits.max_memory_per_core_mb and mb > cores * limits.max_memory_per_core_mb:
            raise OptionsError("memory", f"Memory must be at most {limits.max_memory_per_core_mb}M per core in "
                                         f"partition {name}, so {cores * limits.max_memory_per_core_mb}M for "
                                         f"{cores} cores.")

    gpus = 0 if parsed.gpus is None else parsed.gpus
    if gpus and not limits.max_gpus:
        with_gpus = [p.name for p in facts.visible() if p.max_gpus]
        where = f"; choose {' or '.join(with_gpus)}" if with_gpus else ""
        raise OptionsError("gpus", f"GPUs: partition {name} has none{where}.")
    if not 0 <= gpus <= limits.max_gpus * nodes:
        raise OptionsError("gpus", f"GPUs must be between 0 and {limits.max_gpus * nodes} in partition {name}.")

    if parsed.runtime is None:
        seconds = limits.default_runtime
    else:
        try:
            seconds = runtime_seconds(parsed.runtime)
        except ValueError:
            raise OptionsError("runtime", "Runtime must look like HH:MM:SS or D-HH:MM:SS.") from None
    longest = limits.max_runtime
    if seconds < MIN_RUNTIME or (longest is not None and seconds > longest):
        upper = f"{format_runtime(longest)}" if longest is not None else "any length"
        raise OptionsError("runtime", f"Runtime must be between {format_runtime(MIN_RUNTIME)} and {upper} in "
                                      f"partition {name}.")

    reservation = parsed.reservation or None
    if reservation is not None:
        if not NAME.fullmatch(reservation):
            raise OptionsError("reservation", "Reservation must be a Slurm reservation name.")
        if facts.reservations is not None:
            found = {r.name: r for r in facts.reservations}.get(reservation)
            if found is None:
                raise OptionsError("reservation", f"Reservation {reservation} does not exist or has ended.")
            if not found.allows(facts.user, account):
                raise OptionsError("reservation", f"Reservation {reservation} is not open to you"
                                                  + (f" with account {account}." if account else "."))
    modules = check_modules(parsed.modules, facts, limits.modules)
    return JobRequest(partition=name, cores=cores, memory=memory, runtime=format_runtime(seconds),
                      account=account, nodes=nodes, gpus=gpus, reservation=reservation, modules=modules)


# -- form and URL input ------------------------------------------------------------------------------------
#: form fields of each mode; everything else in a form is passed on, so that validation refuses it
PRESET_FORM_FIELDS = ("preset", "preset_runtime")
ADVANCED_FORM_FIELDS = ("partition", "nodes", "cores", "memory", "gpus", "runtime", "reservation")
INTEGER_FIELDS = ("nodes", "cores", "gpus")
FORM_IGNORED = ("_xsrf",)
#: fields that may be sent several times (a multi-select) or as one comma-separated text
LIST_FIELDS = ("modules",)


def _single(form: dict, key: str):
    values = form[key]
    if not isinstance(values, (list, tuple)):
        return values
    if len(values) != 1:
        raise OptionsError(key, f"The field {_show(key)} must be sent exactly once.")
    return values[0]


def _integer(value):
    """A whole number typed in a form, else the text unchanged (validation then names the field)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value, re.ASCII):
        return int(value)
    return value


def _text(value):
    return value.strip(" \t") if isinstance(value, str) else value


def _names(values) -> list:
    """A multi-select's values, or comma-separated names in one field, as a list without empty entries."""
    values = values if isinstance(values, (list, tuple)) else [values]
    names = []
    for value in values:
        parts = value.split(",") if isinstance(value, str) else [value]
        names += [_text(part) for part in parts if _text(part) != ""]
    return names


def options_from_form(form: dict) -> dict:
    """The spawn form's fields (each a list of strings) as ``user_options`` with JSON types.

    ``mode`` picks the tab: ``preset`` uses ``preset`` (``name`` or ``name:cores``) and ``preset_runtime``;
    ``advanced`` uses ``partition``, ``nodes``, ``cores``, ``memory``, ``gpus``, ``runtime``, ``reservation`` and
    ``modules`` (several values), dropping the empty ones. ``account`` serves both; empty means the default account.
    """
    values = {key: _text(_single(form, key)) for key in form if key not in (*FORM_IGNORED, *LIST_FIELDS)}
    modules = _names(form.get("modules", []))
    mode = values.pop("mode", None)
    if mode is None:
        mode = "advanced" if "partition" in values and "preset" not in values else "preset"
    if mode not in ("preset", "advanced"):
        raise OptionsError("mode", "Mode must be preset or advanced.")
    account = values.pop("account", "")
    options = {}
    if mode == "preset":
        choice = values.pop("preset", "")
        name, sep, cores = choice.rpartition(":") if isinstance(choice, str) and ":" in choice else (choice, "", "")
        options["preset"] = name
        if sep:
            options["cores"] = _integer(cores)
        runtime = values.pop("preset_runtime", "")
        if runtime != "":
            options["runtime"] = runtime
        for key in ADVANCED_FORM_FIELDS:
            values.pop(key, None)
    else:
        for key in ADVANCED_FORM_FIELDS:
            value = values.pop(key, "")
            if value != "":
                options[key] = _integer(value) if key in INTEGER_FIELDS else value
        if modules:
            options["modules"] = modules
        for key in PRESET_FORM_FIELDS:
            values.pop(key, None)
    if account != "":
        options["account"] = account
    options.update(values)  # anything unknown: validation refuses it by name
    return options


def options_from_query(query: dict) -> dict:
    """Spawn-URL arguments (JupyterHub strips the ``opt-`` prefix) as ``user_options``.

    Keys are the ``user_options`` keys (``?opt-preset=shared&opt-cores=2``); empty values are dropped and
    ``nodes``, ``cores`` and ``gpus`` become numbers. A URL with ``mode`` is read like the form.
    """
    if "mode" in query:
        return options_from_form(query)
    options = {}
    for key in query:
        if key in LIST_FIELDS:
            if _names(query[key]):
                options[key] = _names(query[key])
            continue
        value = _text(_single(query, key))
        if value == "":
            continue
        options[key] = _integer(value) if key in INTEGER_FIELDS else value
    return options


# -- what the form preselects ------------------------------------------------------------------------------
def preselect(last_options, presets: dict[str, Preset], facts: Facts | None) -> dict:
    """The form's starting values: the server's last options, re-validated, each refused field falling back
    to its default. Returns ``mode``, ``preset``, ``cores`` (per preset), ``preset_runtime``, ``account``,
    and the advanced fields as the texts to show (``partition``, ``nodes``, ``cores_advanced``, ...)."""
    options = dict(last_options) if isinstance(last_options, dict) else {}
    try:
        options = dict(unwrap(options))
    except OptionsError:
        options = {}
    remembered = bool(options)
    for _ in range(len(options) + 1):
        if not options:
            break
        try:
            validate(options, presets, facts=facts)
            break
        except OptionsError as error:
            if error.field in options and error.field not in ("preset", "partition"):
                options.pop(error.field)
            else:
                options = {}
    advanced = "partition" in options and "preset" not in options
    first = next(iter(presets))
    chosen = options.get("preset", first) if not advanced else first
    cores = {key: preset.cores[0] for key, preset in presets.items()}
    if not advanced and "cores" in options:
        cores[chosen] = options["cores"]
    visible = facts.visible() if facts is not None else []
    access = facts.access if facts is not None else None
    default_account = getattr(access, "default_account", None) or ""

    def text(key):
        value = options.get(key) if advanced else None
        return "" if value is None else str(value)

    return {
        "mode": "advanced" if advanced else "preset",
        "remembered": remembered and bool(options),
        "preset": chosen,
        "cores": cores,
        "preset_runtime": "" if advanced else str(options.get("runtime") or ""),
        "account": options.get("account") or default_account,
        "partition": options.get("partition") if advanced else (visible[0].name if visible else ""),
        "nodes": text("nodes"),
        "cores_advanced": text("cores"),
        "memory": text("memory"),
        "gpus": text("gpus"),
        "runtime": text("runtime"),
        "reservation": text("reservation"),
        "modules": list(options.get("modules") or []) if advanced else [],
    }


def _show(value: str) -> str:
    """A user's string, shortened and with control characters made visible, for an error message."""
    text = repr(value[:40] + ("..." if len(value) > 40 else ""))
    return text


def _plain(error: dict) -> str:
    kind = error["type"]
    if kind in ("int_type", "int_parsing"):
        return "must be a whole number"
    if kind in ("string_type",):
        return "must be text"
    return error["msg"].lower()


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
