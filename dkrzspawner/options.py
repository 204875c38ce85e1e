"""Presets, the site's partition settings, and the validation of ``user_options`` into a :class:`JobRequest`.

What lives here: the admin's presets (:class:`Preset`, :func:`load_presets`) and partition settings
(:class:`PartitionSettings`, ``c.DKRZSpawner.partitions``, :func:`load_partition_settings`); the input models
with their constraints declared (:class:`PresetOptions`, :class:`AdvancedOptions`: types, Slurm names, memory
and runtime formats), :func:`parse_fields` that turns a model's refusal into one sentence naming the field; and
:func:`validate` / :func:`request_from`, the one code path from ``user_options`` to a :class:`JobRequest`, in
which only the checks against a partition's limits are written by hand. Every refusal is an
:class:`OptionsError`. Pure: imports only :mod:`dkrzspawner.units` (and pydantic); runs no command. The cluster
facts it checks against come as an :class:`~dkrzspawner.offer.Facts`, built by :mod:`dkrzspawner.offer`, which
imports this module (never the reverse); the form's parsing lives in :mod:`dkrzspawner.form`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from .units import (MODULE, NAME, SLUG, format_memory, format_runtime, human_memory, memory_mb, runtime_seconds)

if TYPE_CHECKING:  # for annotations only: offer.py imports this module
    from .offer import Facts

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


# -- partitions: the site's adjustments to what Slurm has -------------------------------------------------
class PartitionSettings(BaseModel):
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


def load_partition_settings(config: dict) -> dict[str, PartitionSettings]:
    """Check the admin's partition config once; ``"*"`` applies to every partition, named entries on top."""
    settings = {}
    for key, value in config.items():
        if key != "*" and not NAME.fullmatch(str(key)):
            raise ValueError(f"partition name {key!r} is not a Slurm partition name")
        try:
            settings[key] = PartitionSettings.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"partition {key!r}: {_first_error(exc)}") from None
    return settings


# -- the validated request ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRequest:
    """A validated request: only these values ever reach a batch script or a command line.

    ``nodes`` nodes, each with ``cores`` cores, ``memory_mb`` of memory and ``gpus`` GPUs: ``cores``,
    ``memory_mb`` and ``gpus`` are per node, as Slurm's ``--cpus-per-task`` (of one task per node), ``--mem`` and
    ``--gpus-per-node`` take them. What the whole job holds (and what it costs) is :attr:`total_cores`,
    :attr:`total_gpus`, :attr:`total_memory_mb` and :attr:`core_hours`, the one definition the form's cost, the
    budget warning and the descriptions use. Memory and runtime are kept as numbers; :attr:`memory` and
    :attr:`runtime` are Slurm's text for them.
    """

    partition: str
    cores: int
    memory_mb: int
    runtime_seconds: int
    account: str | None = None
    nodes: int = 1
    gpus: int = 0
    reservation: str | None = None
    preset: str | None = None
    modules: tuple[str, ...] = ()  # in load order: the partition's, the preset's, then the user's

    @property
    def memory(self) -> str:
        """``--mem`` as Slurm takes it: ``8G``, ``5000M``."""
        return format_memory(self.memory_mb)

    @property
    def runtime(self) -> str:
        """``--time`` as Slurm takes it: ``[D-]HH:MM:SS``."""
        return format_runtime(self.runtime_seconds)

    @property
    def total_cores(self) -> int:
        """The cores of all the job's nodes together."""
        return self.nodes * self.cores

    @property
    def total_gpus(self) -> int:
        """The GPUs of all the job's nodes together."""
        return self.nodes * self.gpus

    @property
    def total_memory_mb(self) -> int:
        """The memory of all the job's nodes together, in MB."""
        return self.nodes * self.memory_mb

    @property
    def core_hours(self) -> float:
        """What the job charges its account for the whole runtime: all its cores times hours."""
        return self.total_cores * self.runtime_seconds / 3600

    @property
    def shape(self) -> str:
        """The request in words, the one wording of the progress page and the recent servers: ``4 cores, 10 GB
        memory`` or ``2 nodes, each 4 cores, 10 GB memory, 1 GPU``."""
        each = [f"{self.cores} core{'s' if self.cores != 1 else ''}", f"{human_memory(self.memory_mb)} memory"]
        if self.gpus:
            each.append(f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}")
        if self.nodes == 1:
            return ", ".join(each)
        return f"{self.nodes} nodes, each " + ", ".join(each)


# -- the input models: types and formats declared, refusals in one sentence --------------------------------
def _refused(message: str) -> PydanticCustomError:
    """A constraint's refusal whose message is the whole sentence users see (see :func:`parse_fields`)."""
    return PydanticCustomError("refused", message)


def _slurm_name(message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not NAME.fullmatch(value):
            raise _refused(message)
        return value
    return AfterValidator(check)


def _reservation(value: str) -> str | None:
    if value == "":
        return None
    if not NAME.fullmatch(value):
        raise _refused("Reservation must be a Slurm reservation name.")
    return value


def _seconds(value: str) -> int:
    try:
        return runtime_seconds(value)
    except ValueError:
        raise _refused("Runtime must look like HH:MM:SS or D-HH:MM:SS.") from None


def _megabytes(value: str) -> int:
    try:
        mb = memory_mb(value)
    except ValueError:
        raise _refused("Memory must be a size in Slurm's units, such as 500M or 8G.") from None
    if mb < 1:
        raise _refused("Memory must be at least 1M.")
    return mb


#: a partition's name as users send it
PartitionName = Annotated[str, _slurm_name("Partition must be a Slurm partition name (letters, digits, '_', '.', '-').")]
#: an account's name as users send it
AccountName = Annotated[str, _slurm_name("Account must be a Slurm account name (letters, digits, '_', '.', '-').")]
#: a reservation's name; '' means none (the form's empty field)
ReservationName = Annotated[str, AfterValidator(_reservation)]
#: a runtime typed as ``[D-]HH:MM:SS``, kept as seconds
RuntimeText = Annotated[str, AfterValidator(_seconds)]
#: memory typed in Slurm's units (``500M``, ``8G``), kept as MB (at least 1)
MemoryText = Annotated[str, AfterValidator(_megabytes)]


class CommonOptions(BaseModel):
    """The fields both kinds of request share; anything not declared is refused. After parsing, ``runtime``
    is in seconds."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cores: int | None = None
    account: AccountName | None = None
    runtime: RuntimeText | None = None
    modules: list[str] | None = None


class PresetOptions(CommonOptions):
    """A preset request: ``preset`` and what the preset lets users choose."""

    preset: str


class AdvancedOptions(CommonOptions):
    """An advanced request: a partition and the job's shape. After parsing, ``memory`` is in MB and
    ``reservation`` None when none was asked for; the ranges depend on the partition (:func:`validate`)."""

    partition: PartitionName
    nodes: int | None = None
    memory: MemoryText | None = None
    gpus: int | None = None
    reservation: ReservationName | None = None


FIELD_WORDS = {"preset": "Preset", "cores": "Cores", "account": "Account", "runtime": "Runtime",
               "modules": "Modules"}
ADVANCED_WORDS = {"partition": "Partition", "account": "Account", "nodes": "Nodes", "cores": "Cores",
                  "memory": "Memory", "gpus": "GPUs", "runtime": "Runtime", "reservation": "Reservation",
                  "modules": "Modules"}


def parse_fields(model: type[BaseModel], options: dict, words: dict[str, str]):
    """``options`` as ``model``, or :class:`OptionsError` naming the first wrong field in one sentence
    (``words``: the field names as users read them; an unknown key lists them)."""
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error["loc"] else "user_options"
        if error["type"] == "extra_forbidden":
            raise OptionsError(field_name, f"Unknown option {shown(field_name)}; allowed are "
                                           f"{', '.join(words)}.") from None
        if error["type"] == "refused":
            raise OptionsError(field_name, error["msg"]) from None
        raise OptionsError(field_name, f"{words.get(field_name, field_name)}: {plain(error)}.") from None


# -- the validation ----------------------------------------------------------------------------------------
def unwrap(user_options) -> dict:
    """Accept both REST bodies: JupyterHub 5's bare options and 6's ``{"user_options": {...}}``."""
    if not isinstance(user_options, dict):
        raise OptionsError("user_options", "The request must be a JSON object of options.")
    if set(user_options) == {"user_options"} and isinstance(user_options["user_options"], dict):
        return user_options["user_options"]
    return user_options


def validate(user_options, presets: dict[str, Preset], accounts: tuple[str, ...] = (), *,
             facts: Facts | None = None) -> JobRequest:
    """Turn ``user_options`` (a REST body, see :func:`unwrap`) into a :class:`JobRequest`, or raise
    :class:`OptionsError`; :func:`request_from` of the unwrapped options."""
    return request_from(unwrap(user_options), presets, accounts, facts=facts)


def request_from(options: dict, presets: dict[str, Preset], accounts: tuple[str, ...] = (), *,
                 facts: Facts | None = None) -> JobRequest:
    """Options (already unwrapped) as a :class:`JobRequest`, or :class:`OptionsError`.

    ``facts`` are what Slurm says (partitions and limits after the site's settings, the user's associations,
    reservations); without them only presets are offered and Slurm decides on accounts. ``accounts`` are the
    user's Slurm accounts when no facts are given (empty: not known).
    """
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


def _validate_preset(options, presets, accounts, facts) -> JobRequest:
    parsed = parse_fields(PresetOptions, options, FIELD_WORDS)
    name = parsed.preset
    preset = presets.get(name)
    if preset is None:
        raise OptionsError("preset", f"Preset {shown(name)} does not exist; choose one of {', '.join(presets)}.")
    limits = None
    if facts is not None and facts.partitions is not None:
        limits = facts.partitions.get(preset.partition)
        if limits is None:
            raise OptionsError("preset", f"Preset {name} is not available: Slurm has no partition "
                                         f"{preset.partition}.")
    cores = preset.cores[0] if parsed.cores is None else parsed.cores
    if cores not in preset.cores:
        raise OptionsError("cores", f"Cores must be one of {', '.join(map(str, preset.cores))} for preset {name}.")
    seconds = runtime_seconds(preset.runtime) if parsed.runtime is None else parsed.runtime
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
    return JobRequest(partition=preset.partition, cores=cores, memory_mb=memory, runtime_seconds=seconds,
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
            raise OptionsError("modules", f"Modules: {shown(str(name))} is not a module name "
                                          "(letters, digits and _ . + / -).")
    if facts is None:
        return tuple(dict.fromkeys([*chosen, *requested]))
    offered = facts.modules
    if offered is None:
        raise OptionsError("modules", "Modules: this hub offers no environment modules right now, so none can "
                                      "be loaded; leave the field empty.")
    for name in requested:
        if name not in offered:
            raise OptionsError("modules", f"Modules: {shown(name)} is not a module of this cluster "
                                          "(see `module avail`).")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def _check_account(account, accounts, facts, limits, partition: str) -> str | None:
    """The request's account: the one asked for if the user may charge it here, else the default one."""
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
    parsed = parse_fields(AdvancedOptions, options, ADVANCED_WORDS)
    name = parsed.partition
    if facts.partitions is None:
        raise OptionsError("partition", "Partition: Slurm did not answer, so the request cannot be checked; "
                                        "please try again in a minute.")
    limits = facts.partitions.get(name)
    offered = [p.name for p in facts.visible()]
    if limits is None or limits.hidden:
        raise OptionsError("partition", f"Partition {shown(name)} is not offered here; choose one of "
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
        memory = min(default_mb, limits.max_memory_mb) if limits.max_memory_mb else default_mb
    else:
        memory = parsed.memory
        if limits.max_memory_mb and memory > limits.max_memory_mb:
            raise OptionsError("memory", f"Memory must be at most {limits.max_memory_mb}M "
                                         f"({human_memory(limits.max_memory_mb)}) per node in partition {name}.")
        if limits.max_memory_per_core_mb and memory > cores * limits.max_memory_per_core_mb:
            raise OptionsError("memory", f"Memory must be at most {limits.max_memory_per_core_mb}M per core in "
                                         f"partition {name}, so {cores * limits.max_memory_per_core_mb}M for "
                                         f"{cores} cores.")

    gpus = 0 if parsed.gpus is None else parsed.gpus
    if gpus and not limits.max_gpus:
        with_gpus = [p.name for p in facts.visible() if p.max_gpus]
        where = f"; choose {' or '.join(with_gpus)}" if with_gpus else ""
        raise OptionsError("gpus", f"GPUs: partition {name} has none{where}.")
    if not 0 <= gpus <= limits.max_gpus:
        raise OptionsError("gpus", f"GPUs must be between 0 and {limits.max_gpus} per node in partition {name}.")

    seconds = limits.default_runtime if parsed.runtime is None else parsed.runtime
    longest = limits.max_runtime
    if seconds < MIN_RUNTIME or (longest is not None and seconds > longest):
        upper = f"{format_runtime(longest)}" if longest is not None else "any length"
        raise OptionsError("runtime", f"Runtime must be between {format_runtime(MIN_RUNTIME)} and {upper} in "
                                      f"partition {name}.")

    reservation = parsed.reservation
    if reservation is not None and facts.reservations is not None:
        found = {r.name: r for r in facts.reservations}.get(reservation)
        if found is None:
            raise OptionsError("reservation", f"Reservation {reservation} does not exist or has ended.")
        if not found.allows(facts.user, account):
            raise OptionsError("reservation", f"Reservation {reservation} is not open to you"
                                              + (f" with account {account}." if account else "."))
    modules = check_modules(parsed.modules, facts, limits.modules)
    return JobRequest(partition=name, cores=cores, memory_mb=memory, runtime_seconds=seconds,
                      account=account, nodes=nodes, gpus=gpus, reservation=reservation, modules=modules)


# -- messages ----------------------------------------------------------------------------------------------
def shown(value: str) -> str:
    """A user's string, shortened and with control characters made visible, for an error message."""
    return repr(value[:40] + ("..." if len(value) > 40 else ""))


def plain(error: dict) -> str:
    """A pydantic error (one of ``ValidationError.errors()``) in the words of a refusal: ``must be text``."""
    kind = error["type"]
    if kind in ("int_type", "int_parsing"):
        return "must be a whole number"
    if kind in ("string_type",):
        return "must be text"
    return error["msg"].lower()


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
