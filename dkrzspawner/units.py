"""Units and names: sizes, durations and the name patterns every input is checked against.

The lowest layer of the package: pure functions and compiled patterns, importing nothing of dkrzspawner. Two
directions for each unit: what a *user* may type (strict: ``memory_mb``, ``runtime_seconds``) and what *Slurm*
prints (lenient, with its words for "no limit": ``slurm_memory_mb``, ``slurm_duration_seconds``), both read by
the same parser; Slurm's own text for a checked value (``format_memory``, ``format_runtime``); and the words people
read (``human_memory``, ``human_runtime``). :func:`account_allowed` is a partition's account rule, shared by
:mod:`dkrzspawner.cluster` (what Slurm says) and :mod:`dkrzspawner.offer` (what a user is offered).
"""

from __future__ import annotations

import re

# -- names -------------------------------------------------------------------------------------------------
#: a preset's name: a lower-case slug
SLUG = re.compile(r"[a-z][a-z0-9_-]{0,31}", re.ASCII)
#: a Slurm name as users may send it: partition, account, reservation
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
#: a module name as ``module load`` takes it (``python3/2023.01-gcc-11.2.0``, ``netcdf-c/4.8.1``)
MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+/-]{0,127}", re.ASCII)
#: what a user name must look like before it reaches sudo or a Slurm command: a Unix login name (letters,
#: digits, ``_ . @ -``; not starting with a digit, ``-`` or ``.``; at most 64 characters; a trailing ``$`` as
#: Samba's machine accounts have). No comma, ``=``, white space, ``#``, ``:`` or ``/``.
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]{0,63}\$?", re.ASCII)

#: the words Slurm prints for a value that is not set or not limited (compared in upper case)
UNSET_WORDS = frozenset({"", "N/A", "NONE", "(NULL)", "UNKNOWN", "UNLIMITED", "INFINITE"})


def account_allowed(account: str, allow_accounts: tuple[str, ...] | None, deny_accounts: tuple[str, ...]) -> bool:
    """Whether a partition's ``AllowAccounts`` (None: every account) and ``DenyAccounts`` let ``account`` in."""
    if account in deny_accounts:
        return False
    return allow_accounts is None or account in allow_accounts


def unset(text: str | None) -> bool:
    """Whether Slurm's ``text`` means "not set" / "no limit" (``N/A``, ``(null)``, ``UNLIMITED``, ...)."""
    return text is None or text.strip().upper() in UNSET_WORDS


def value_or_none(text: str | None) -> str | None:
    """Slurm's ``text`` stripped, or None when it means "not set" (:func:`unset`)."""
    return None if unset(text) else text.strip()


# -- sizes -------------------------------------------------------------------------------------------------
#: memory as users write it: a whole number and an optional unit (``500M``, ``8G``; no unit means MB)
MEMORY = re.compile(r"([0-9]{1,9})([KMGT]?)", re.ASCII)
_REPORTED_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)([KMGTP]?)", re.ASCII)
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def _mb(match: re.Match) -> int:
    return int(float(match.group(1)) * _MB_PER_UNIT[match.group(2)])


def memory_mb(text: str) -> int:
    """Memory as users write it (``500M``, ``8G``; no unit means MB) in MB; ValueError if malformed."""
    match = MEMORY.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(text)
    return _mb(match)


def slurm_memory_mb(text: str) -> int | None:
    """Memory as Slurm prints it (``16000``, ``16000M``, ``15.62G``) in MB; None for ``UNLIMITED`` and the like;
    ValueError if malformed."""
    if unset(text):
        return None
    match = _REPORTED_MEMORY.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a Slurm memory size: {text!r}")
    return _mb(match)


def format_memory(mb: int) -> str:
    """MB as Slurm's size text, as Slurm prints it itself: whole gigabytes as ``8G``, else ``7680M``."""
    return f"{mb // 1024}G" if mb and mb % 1024 == 0 else f"{mb}M"


def human_memory(mb: int) -> str:
    """MB for people: ``2.5 GB``, ``16 GB``, ``500 MB``."""
    if mb < 1000:
        return f"{mb} MB"
    return f"{mb / 1000:.1f}".rstrip("0").rstrip(".") + " GB"


# -- durations ---------------------------------------------------------------------------------------------
#: a runtime as users write it: ``HH:MM:SS`` or ``D-HH:MM:SS``
RUNTIME = re.compile(r"(?:([0-9]{1,2})-)?([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])", re.ASCII)
#: a duration as Slurm prints it: ``7-00:00:00``, ``12:00:00``, ``30:00``, ``90`` (minutes), ``2-12``
_DURATION = re.compile(r"(?:([0-9]+)-)?([0-9]+)(?::([0-9]+))?(?::([0-9]+))?", re.ASCII)


def slurm_duration_seconds(text: str) -> int | None:
    """A duration as Slurm prints it (``7-00:00:00``, ``12:00:00``, ``30:00``, ``90``, ``2-12``) in seconds; None
    for ``UNLIMITED``/``NONE``; ValueError if malformed. A bare number is minutes, as in Slurm."""
    if unset(text):
        return None
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a Slurm duration: {text!r}")
    days, first, second, third = match.groups()
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if third is not None:  # hours:minutes:seconds
        return (int(first) * 60 + int(second)) * 60 + int(third)
    if second is not None:  # minutes:seconds
        return int(first) * 60 + int(second)
    return int(first) * 60  # minutes


def runtime_seconds(text: str) -> int:
    """A runtime as users write it (``[D-]HH:MM:SS``) in seconds; ValueError if malformed."""
    if not isinstance(text, str) or not RUNTIME.fullmatch(text):
        raise ValueError(text)
    return slurm_duration_seconds(text)


def format_runtime(seconds: int) -> str:
    """Seconds as Slurm's ``[D-]HH:MM:SS``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_clock(seconds: int) -> str:
    """Seconds as a clock for people: ``0:01:00``, ``12:00:00``, ``2-00:00:00``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours}:{minutes:02d}:{secs:02d}"


def human_runtime(seconds: int | None) -> str:
    """``12 h``, ``7 days``, ``90 min``, ``unlimited``."""
    if seconds is None:
        return "unlimited"
    if seconds % 86400 == 0 and seconds >= 86400:
        days = seconds // 86400
        return f"{days} day" + ("s" if days > 1 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return format_runtime(seconds)
