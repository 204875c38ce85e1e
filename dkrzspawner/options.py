"""Presets and the validation of ``user_options`` into a :class:`JobRequest`: one code path for every input.

Pure: reads the facts it is given, runs no command. Every refusal is an :class:`OptionsError` whose message is
one sentence naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RUNTIME = re.compile(r"^(?:(\d{1,2})-)?(\d{1,2}):([0-5]\d):([0-5]\d)$")
MEMORY = re.compile(r"^(\d{1,9})([KMGT]?)$")
_MEMORY_FACTOR = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


class OptionsError(ValueError):
    """A request that is refused; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def runtime_seconds(text: str) -> int:
    """``[D-]HH:MM:SS`` in seconds; ValueError if malformed."""
    match = RUNTIME.match(text)
    if not match:
        raise ValueError(text)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_runtime(seconds: int) -> str:
    """Seconds as Slurm's ``[D-]HH:MM:SS``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def memory_mb(text: str) -> int:
    """Slurm memory units (``500M``, ``8G``; no unit means MB) in MB; ValueError if malformed."""
    match = MEMORY.match(text)
    if not match:
        raise ValueError(text)
    return int(int(match.group(1)) * _MEMORY_FACTOR[match.group(2)])


class Preset(BaseModel):
    """A ready-made request that users pick with one click."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    display_name: str
    description: str = ""
    partition: str = Field(pattern=NAME.pattern)
    cores: tuple[int, ...] = (1, 2, 4)
    memory_per_core: str = "2500M"
    runtime: str = "06:00:00"
    max_runtime: str = "12:00:00"

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
        if not SLUG.match(str(key)):
            raise ValueError(f"preset name {key!r} must be a lower-case slug")
        try:
            presets[key] = Preset.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"preset {key!r}: {_first_error(exc)}") from None
    if not presets:
        raise ValueError("at least one preset is needed")
    return presets


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

    @property
    def memory_mb(self) -> int:
        return memory_mb(self.memory)

    @property
    def core_hours(self) -> float:
        return self.nodes * self.cores * runtime_seconds(self.runtime) / 3600


class _PresetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    preset: str
    cores: int | None = None
    account: str | None = None
    runtime: str | None = None


FIELD_WORDS = {"preset": "Preset", "cores": "Cores", "account": "Account", "runtime": "Runtime"}


def unwrap(user_options) -> dict:
    """Accept both REST bodies: JupyterHub 5's bare options and 6's ``{"user_options": {...}}``."""
    if not isinstance(user_options, dict):
        raise OptionsError("user_options", "The request must be a JSON object of options.")
    if set(user_options) == {"user_options"} and isinstance(user_options["user_options"], dict):
        return user_options["user_options"]
    return user_options


def validate(user_options, presets: dict[str, Preset], accounts: tuple[str, ...] = ()) -> JobRequest:
    """Turn ``user_options`` into a :class:`JobRequest`, or raise :class:`OptionsError`.

    ``accounts`` are the user's Slurm accounts (empty: not known, Slurm decides).
    """
    options = unwrap(user_options)
    if not options:
        options = {"preset": next(iter(presets))}
    if "preset" not in options:
        if "partition" in options:
            raise OptionsError("partition", "Advanced requests (partition) are not available on this hub.")
        raise OptionsError("preset", "Choose a preset.")
    try:
        parsed = _PresetOptions.model_validate(options)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "user_options"
        if error["type"] == "extra_forbidden":
            raise OptionsError(field, f"Unknown option {_show(field)}; allowed are {', '.join(FIELD_WORDS)}.") from None
        raise OptionsError(field, f"{FIELD_WORDS.get(field, field)}: {_plain(error)}.") from None

    preset = presets.get(parsed.preset)
    if preset is None:
        raise OptionsError("preset", f"Preset {_show(parsed.preset)} does not exist; choose one of {', '.join(presets)}.")
    cores = preset.cores[0] if parsed.cores is None else parsed.cores
    if cores not in preset.cores:
        raise OptionsError("cores", f"Cores must be one of {', '.join(map(str, preset.cores))} for preset {parsed.preset}.")
    runtime = preset.runtime if parsed.runtime is None else parsed.runtime
    try:
        seconds = runtime_seconds(runtime)
    except ValueError:
        raise OptionsError("runtime", "Runtime must look like HH:MM:SS or D-HH:MM:SS.") from None
    if not 60 <= seconds <= runtime_seconds(preset.max_runtime):
        raise OptionsError("runtime", f"Runtime must be between 00:01:00 and {preset.max_runtime} for preset {parsed.preset}.")
    account = parsed.account
    if account is not None:
        if not NAME.match(account):
            raise OptionsError("account", "Account must be a Slurm account name (letters, digits, '_', '.', '-').")
        if accounts and account not in accounts:
            raise OptionsError("account", f"Account {account} is not one of yours ({', '.join(accounts)}).")
    return JobRequest(
        partition=preset.partition,
        cores=cores,
        memory=f"{cores * memory_mb(preset.memory_per_core)}M",
        runtime=format_runtime(seconds),
        account=account,
        preset=parsed.preset,
    )


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
