"""A user's Slurm accounts with the core-hours used and the budget left: from slurmdbd, cached for a short time.

- accounts and the default account: the spawn form's table of every user's associations (one
  ``sacctmgr show user withassoc`` for all users, :class:`~dkrzspawner.cluster.Cluster`);
- limits: the accounts' ``GrpTRESMins`` and ``GrpTRESRunMins`` (``cpu=``, in core-minutes) from
  ``sacctmgr show assoc``, on the account itself and on the user's own association;
- usage: ``sacct -X -a -T`` summing ``CPUTimeRAW`` (core-seconds) of every job charged to the accounts since
  the start of the budget period (default: 1 January of this year), running jobs up to now included.

Why sacct: it is current the moment a job ends (``sreport`` waits for slurmdbd's hourly rollup, and ``sshare``'s
RawUsage stays 0 under ``PriorityType=priority/basic``, as on the local cluster). The budget left is the
account's limit minus that usage; Slurm itself enforces ``GrpTRESMins`` only with ``priority/multifactor``,
against its own decayed usage, so the two can differ on such sites.

Core, used by both the spawn form and the accounts service (:mod:`dkrzspawner.services.accounts`): knows no web
framework and no JupyterHub, and imports only :mod:`dkrzspawner.slurm`, :mod:`dkrzspawner.cluster` (the
associations) and :mod:`dkrzspawner.cache`. The parsers are pure functions.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field

from .cache import TTLCache
from .cluster import Cluster
from .slurm import SlurmError, parsed


def limits_argv(accounts) -> tuple[str, ...]:
    """The accounts' associations with their core-minute limits (account rows have an empty user)."""
    return ("sacctmgr", "-n", "-P", "show", "assoc", "where", "account=" + ",".join(accounts),
            "format=Account,User,GrpTRESMins,GrpTRESRunMins")


def usage_argv(accounts, since: str) -> tuple[str, ...]:
    """Core-seconds of every job charged to the accounts since ``since`` (truncated to the period)."""
    return ("sacct", "-X", "-n", "-P", "-a", "-T", "-A", ",".join(accounts), "-S", since, "-E", "now",
            "-o", "Account,User,CPUTimeRAW")


def cpu_minutes(tres: str) -> int | None:
    """The ``cpu=`` part of a TRES list (``cpu=6000,mem=...``); None when there is none."""
    for part in tres.split(","):
        key, _, value = part.strip().partition("=")
        if key == "cpu" and value.isdigit():
            return int(value)
    return None


@dataclass(frozen=True)
class Limits:
    """Core-minute limits of one account: on the account, and on the user's own association (None: none)."""

    account: int | None = None
    account_running: int | None = None
    user: int | None = None


def parse_limits(user: str, text: str) -> dict[str, Limits]:
    """Parse ``sacctmgr -n -P show assoc where account=... format=Account,User,GrpTRESMins,GrpTRESRunMins``."""
    found: dict[str, Limits] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 4:
            raise ValueError(f"unexpected sacctmgr line: {line!r}")
        account, owner, minutes, running = (part.strip() for part in parts[:4])
        limits = found.get(account, Limits())
        if owner == "":
            limits = Limits(cpu_minutes(minutes), cpu_minutes(running), limits.user)
        elif owner == user:
            limits = Limits(limits.account, limits.account_running, cpu_minutes(minutes))
        found[account] = limits
    return found


@dataclass(frozen=True)
class Usage:
    """Core-seconds charged to one account in the period: by everyone, and by the user."""

    total: int = 0
    user: int = 0


def parse_usage(user: str, text: str) -> dict[str, Usage]:
    """Parse ``sacct -X -n -P -o Account,User,CPUTimeRAW`` into sums per account."""
    sums: dict[str, Usage] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 3 or not parts[2].strip().isdigit():
            raise ValueError(f"unexpected sacct line: {line!r}")
        account, owner, seconds = parts[0].strip(), parts[1].strip(), int(parts[2])
        before = sums.get(account, Usage())
        sums[account] = Usage(before.total + seconds, before.user + (seconds if owner == user else 0))
    return sums


def _hours(minutes: int | None) -> float | None:
    return None if minutes is None else minutes / 60


@dataclass(frozen=True)
class Budget:
    """One account of the user: core-hours used in the period and what is left."""

    account: str
    default: bool
    used_hours: float | None  # by everyone charging the account; None: sacct did not answer
    user_hours: float | None  # by this user
    limit_hours: float | None = None  # GrpTRESMins of the account
    running_limit_hours: float | None = None  # GrpTRESRunMins: core-hours of running jobs at once
    user_limit_hours: float | None = None  # GrpTRESMins of the user's own association

    @property
    def left_hours(self) -> float | None:
        """The tighter of the account's and the user's remaining budget; None without a limit (or usage)."""
        left = []
        if self.limit_hours is not None and self.used_hours is not None:
            left.append(self.limit_hours - self.used_hours)
        if self.user_limit_hours is not None and self.user_hours is not None:
            left.append(self.user_limit_hours - self.user_hours)
        return max(0.0, min(left)) if left else None

    def as_dict(self) -> dict:
        """The JSON form (core-hours, four decimals: a few core-seconds show)."""
        def rounded(value):
            return None if value is None else round(value, 4)
        return {"account": self.account, "default": self.default, "used_core_hours": rounded(self.used_hours),
                "your_core_hours": rounded(self.user_hours), "limit_core_hours": rounded(self.limit_hours),
                "running_limit_core_hours": rounded(self.running_limit_hours),
                "your_limit_core_hours": rounded(self.user_limit_hours), "left_core_hours": rounded(self.left_hours)}


@dataclass(frozen=True)
class Statement:
    """Everything the ledger knows for one user; ``errors`` names what Slurm did not answer."""

    user: str
    default_account: str | None
    period_start: str
    budgets: tuple[Budget, ...] = ()
    errors: tuple[str, ...] = field(default=())

    def budget(self, account: str) -> Budget | None:
        """The budget of ``account``, if it is one of the user's."""
        return next((b for b in self.budgets if b.account == account), None)

    def as_dict(self) -> dict:
        """The JSON form the service answers with."""
        return {"user": self.user, "default_account": self.default_account, "period_start": self.period_start,
                "accounts": [budget.as_dict() for budget in self.budgets], "errors": list(self.errors)}


def period_start(text: str = "", today: datetime.date | None = None) -> str:
    """The start of the budget period as Slurm takes it (``2026-01-01T00:00:00``); '' means 1 January of this
    year. ValueError for anything that is not an ISO date or date and time."""
    if not text:
        return f"{(today or datetime.date.today()).year}-01-01T00:00:00"
    return datetime.datetime.fromisoformat(text).replace(tzinfo=None).isoformat(timespec="seconds")


class Ledger:
    """Cached statements per user, built from answers shared by every user: the accounts from the
    :class:`~dkrzspawner.cluster.Cluster`'s table of all users' associations, then one ``sacctmgr`` (limits)
    and one ``sacct`` (usage) concurrently per set of accounts, at most once per ``ttl`` seconds (concurrent
    callers share one load). A thousand users of the same accounts cost Slurm what one does."""

    def __init__(self, runner, *, ttl: float = 30.0, timeout: float = 10.0, period: str = "",
                 cluster: Cluster | None = None):
        self.runner = runner
        self.timeout = timeout
        period_start(period)  # checked now: a bad setting fails at start, not on every request
        self.period = period  # '' follows the calendar: 1 January of the current year
        self.cache = TTLCache(ttl, error_ttl=5.0, stale_ttl=max(600.0, 10 * ttl))
        #: where the accounts come from (the hub shares its own; the accounts service makes one)
        self.cluster = cluster or Cluster(runner, ttl=ttl, timeout=timeout)

    async def statement(self, user: str) -> Statement:
        """The user's accounts, usage and limits; raises :class:`~dkrzspawner.slurm.SlurmError` only when
        Slurm could not even say which accounts the user has."""
        return await self.cache.get(user, lambda: self._load(user))

    async def _text(self, argv) -> str:
        """``argv``'s output, cached: every user with the same accounts reads the same answer."""
        async def load():
            return (await self.runner.run(list(argv), timeout=self.timeout)).stdout
        return await self.cache.get(("text", *argv), load)

    async def _load(self, user: str) -> Statement:
        access = await self.cluster.access(user)
        accounts = access.accounts
        since = period_start(self.period)
        if not accounts:
            return Statement(user, access.default_account, since)
        limits_text, usage_text = await asyncio.gather(self._text(limits_argv(accounts)),
                                                       self._text(usage_argv(accounts, since)),
                                                       return_exceptions=True)
        errors = []
        limits = _part(lambda text: parse_limits(user, text), limits_text, limits_argv(accounts), errors)
        usage = _part(lambda text: parse_usage(user, text), usage_text, usage_argv(accounts, since), errors)
        budgets = []
        for account in accounts:
            limit = limits.get(account, Limits()) if limits is not None else Limits()
            used = usage.get(account, Usage()) if usage is not None else None
            budgets.append(Budget(
                account=account, default=account == access.default_account,
                used_hours=None if used is None else used.total / 3600,
                user_hours=None if used is None else used.user / 3600,
                limit_hours=_hours(limit.account), running_limit_hours=_hours(limit.account_running),
                user_limit_hours=_hours(limit.user),
            ))
        return Statement(user, access.default_account, since, tuple(budgets), tuple(errors))


def _part(parse, result, argv, errors: list):
    """Parse one concurrent query's answer; a failure is noted in ``errors`` and gives None."""
    try:
        if isinstance(result, BaseException):
            raise result
        return parsed(parse, result, argv)
    except SlurmError as exc:
        errors.append(f"{argv[0]}: {exc.reason}")
        return None
