"""What Slurm says about the cluster: partitions and their limits, what is free right now, each user's
accounts, and the reservations; the facts a spawn form and its validation are built from (jobs are
:mod:`dkrzspawner.slurm.jobs`' business).

First the data classes, then their pure parsers (tested with recorded outputs), then :class:`Cluster`: the fact
queries, asked through the :class:`~dkrzspawner.slurm.SlurmRunner`, cached for a short time and shared (every
spawner of a hub reads the same answers, concurrent callers share one query). Knows no spawner and no
JupyterHub; imports only :mod:`dkrzspawner.slurm`, :mod:`dkrzspawner.cache` and :mod:`dkrzspawner.units`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from dataclasses import dataclass, field, replace

from .cache import TTLCache
from .slurm import SlurmError, check_user_name, parsed
from .units import slurm_duration_seconds, slurm_memory_mb, unset, value_or_none

log = logging.getLogger("dkrzspawner.cluster")

#: limits, defaults and access lists of every partition, one line each
PARTITIONS_ARGV = ("scontrol", "show", "partition", "-o")
#: one line per (node, partition): what each node has and what of it is in use
SINFO_FIELDS = ("PartitionName", "NodeList", "StateCompact", "CPUsState", "Memory", "AllocMem", "Gres", "GresUsed")
SINFO_ARGV = ("sinfo", "-h", "-N", "-O", ",".join(f"{name}:|" for name in SINFO_FIELDS))
RESERVATIONS_ARGV = ("scontrol", "show", "reservation", "-o")
#: every node's name and address, one line per (node, partition)
NODES_ARGV = ("sinfo", "-h", "-N", "-o", "%N|%o")


#: every user's default account and associations in one ``sacctmgr`` call: the table the form reads each user's from
ALL_ASSOCIATIONS_ARGV = ("sacctmgr", "-n", "-P", "show", "user", "withassoc",
                         "format=user,defaultaccount,account,partition")


def associations_argv(user: str) -> tuple[str, ...]:
    """The user's default account and associations in one ``sacctmgr`` call (the name checked first: sacctmgr
    splits it at commas and reads ``key=value``)."""
    return ("sacctmgr", "-n", "-P", "show", "user", check_user_name(user), "withassoc",
            "format=defaultaccount,account,partition")


# -- what Slurm says: the data classes ------------------------------------------------------------------------
class PartitionAccess:
    """The rules every view of a partition shares: is it up, may an account use it.

    Needs ``state``, ``allow_accounts`` (None: every account) and ``deny_accounts`` on the class using it.
    """

    state: str
    allow_accounts: tuple[str, ...] | None
    deny_accounts: tuple[str, ...]

    @property
    def up(self) -> bool:
        return self.state == "UP"

    def allows_account(self, account: str) -> bool:
        """Whether the partition's AllowAccounts/DenyAccounts let ``account`` in."""
        if account in self.deny_accounts:
            return False
        return self.allow_accounts is None or account in self.allow_accounts


@dataclass(frozen=True)
class Partition(PartitionAccess):
    """One Slurm partition: its limits (``scontrol``) and what its nodes have free right now (``sinfo``)."""

    name: str
    default: bool = False
    state: str = "UP"
    hidden: bool = False
    max_time: int | None = None  # seconds; None: unlimited
    default_time: int | None = None  # seconds; None: the MaxTime applies
    max_nodes: int | None = None
    total_nodes: int = 0
    total_cpus: int = 0
    max_cpus_per_node: int | None = None
    max_mem_per_node: int | None = None  # MB
    max_mem_per_cpu: int | None = None  # MB
    def_mem_per_cpu: int | None = None  # MB
    def_mem_per_node: int | None = None  # MB
    allow_accounts: tuple[str, ...] | None = None  # None: every account
    deny_accounts: tuple[str, ...] = ()
    # from sinfo, per node of the partition (the largest node: what one job can get at most)
    cpus_per_node: int = 0
    memory_per_node: int = 0  # MB
    gpus_per_node: int = 0
    # from sinfo, free right now (usable nodes only)
    idle_cpus: int = 0
    free_gpus: int = 0
    total_gpus: int = 0
    free_memory: int = 0  # MB, the most free on one node
    usable_nodes: int = 0


@dataclass
class NodeUsage:
    """What the nodes of one partition have (the largest node) and what of it is free (usable nodes only), from
    ``sinfo``; :func:`merge` puts it into the :class:`Partition`."""

    cpus: int = 0
    memory: int = 0
    gpus: int = 0
    idle_cpus: int = 0
    free_gpus: int = 0
    total_gpus: int = 0
    free_memory: int = 0
    usable_nodes: int = 0


@dataclass(frozen=True)
class Access:
    """A user's Slurm associations: which accounts, in which partitions, and the default account."""

    user: str
    default_account: str | None = None
    associations: tuple[tuple[str, str], ...] = ()  # (account, partition or "" for every partition)

    @property
    def accounts(self) -> tuple[str, ...]:
        """Every account of the user, the default first."""
        seen = [self.default_account] if self.default_account in {a for a, _ in self.associations} else []
        for account, _ in self.associations:
            if account not in seen:
                seen.append(account)
        return tuple(seen)

    def accounts_for(self, partition: str) -> tuple[str, ...]:
        """The accounts the user may charge a job in ``partition`` to, the default first."""
        allowed = {account for account, part in self.associations if part in ("", partition)}
        return tuple(account for account in self.accounts if account in allowed)


@dataclass(frozen=True)
class Reservation:
    """A Slurm reservation and who may use it."""

    name: str
    state: str = "ACTIVE"
    start: str = ""
    end: str = ""
    partition: str | None = None
    users: tuple[str, ...] | None = None  # None: no user list
    users_excluded: bool = False  # the list names who may NOT use it (``Users=-bob``)
    accounts: tuple[str, ...] | None = None
    accounts_excluded: bool = False
    flags: tuple[str, ...] = ()

    def allows(self, user: str, account: str | None) -> bool:
        """Whether ``user`` charging ``account`` may use it: every list Slurm has must match."""
        if self.users is None and self.accounts is None:
            return False  # group-only or license-only reservations: not offered, Slurm would decide
        if self.users is not None and (user in self.users) == self.users_excluded:
            return False
        if self.accounts is not None:
            if account is None or (account in self.accounts) == self.accounts_excluded:
                return False
        return True

    def ended(self, now: datetime.datetime) -> bool:
        """Whether its end time has passed; an end Slurm did not print readably counts as not passed (it is
        offered, and Slurm decides)."""
        try:
            return datetime.datetime.strptime(self.end, "%Y-%m-%dT%H:%M:%S") <= now
        except ValueError:
            return False


@dataclass(frozen=True)
class Snapshot:
    """Everything the cluster says for one user; a part is None when Slurm did not answer for it."""

    user: str
    partitions: dict[str, Partition] | None = None
    access: Access | None = None
    reservations: tuple[Reservation, ...] | None = None
    errors: tuple[str, ...] = field(default=())
    as_of: str = ""  # wall-clock time (HH:MM:SS) of the partition data


# -- parsers of recorded output (pure) ------------------------------------------------------------------------
_PAIR = re.compile(r"(\w+)=(\S*)")


def pairs(line: str) -> dict[str, str]:
    """``Key=Value`` tokens of one ``scontrol ... -o`` line (the first occurrence of a key wins)."""
    found: dict[str, str] = {}
    for key, value in _PAIR.findall(line):
        found.setdefault(key, value)
    return found


def _count(text: str) -> int | None:
    """An integer field, None for UNLIMITED and the like."""
    return None if unset(text) else int(text.strip())


def _names(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated list; None when Slurm puts no restriction (``ALL``, or unset: ``(null)``)."""
    if unset(text) or text.strip() == "ALL":
        return None
    return tuple(name for name in text.split(",") if name)


def gpu_count(gres: str) -> int:
    """GPUs in a gres string: ``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:a100:1(IDX:0),gpu:v100:2``; 0 for none."""
    total = 0
    for entry in re.sub(r"\([^)]*\)", "", gres or "").split(","):
        parts = entry.strip().split(":")
        if parts[0] != "gpu":
            continue
        total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def parse_partitions(text: str) -> dict[str, Partition]:
    """Parse ``scontrol show partition -o``; ValueError on a line that does not fit."""
    partitions = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        values = pairs(line)
        name = values.get("PartitionName")
        if not name:
            raise ValueError(f"unexpected scontrol line: {line[:80]!r}")
        try:
            partitions[name] = Partition(
                name=name,
                default=values.get("Default") == "YES",
                state=values.get("State", "UP"),
                hidden=values.get("Hidden") == "YES",
                max_time=slurm_duration_seconds(values.get("MaxTime", "UNLIMITED")),
                default_time=slurm_duration_seconds(values.get("DefaultTime", "NONE")),
                max_nodes=_count(values.get("MaxNodes", "UNLIMITED")),
                total_nodes=_count(values.get("TotalNodes", "0")) or 0,
                total_cpus=_count(values.get("TotalCPUs", "0")) or 0,
                max_cpus_per_node=_count(values.get("MaxCPUsPerNode", "UNLIMITED")),
                max_mem_per_node=slurm_memory_mb(values.get("MaxMemPerNode", "UNLIMITED")),
                max_mem_per_cpu=slurm_memory_mb(values.get("MaxMemPerCPU", "UNLIMITED")),
                def_mem_per_cpu=slurm_memory_mb(values.get("DefMemPerCPU", "UNLIMITED")),
                def_mem_per_node=slurm_memory_mb(values.get("DefMemPerNode", "UNLIMITED")),
                allow_accounts=_names(values.get("AllowAccounts")),
                deny_accounts=_names(values.get("DenyAccounts")) or (),
            )
        except ValueError as exc:
            raise ValueError(f"partition {name}: {exc}") from None
    return partitions


_UNUSABLE_NODE = re.compile(r"down|drain|drng|fail|maint|reserved|resv|unk|npc|pow|boot|inval|futr|plnd", re.I)


def parse_sinfo(text: str) -> dict[str, NodeUsage]:
    """Parse ``sinfo -h -N -O SINFO_FIELDS`` (``|``-separated) into per-partition capacity and free resources."""
    usage: dict[str, NodeUsage] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) < len(SINFO_FIELDS):
            raise ValueError(f"unexpected sinfo line: {line!r}")
        partition, _node, state, cpus_state, memory, alloc_mem, gres, gres_used = parts[: len(SINFO_FIELDS)]
        try:
            _alloc, idle, _other, total = (int(n) for n in cpus_state.split("/"))
            node_memory = slurm_memory_mb(memory) or 0
            allocated_memory = slurm_memory_mb(alloc_mem) or 0
        except ValueError:
            raise ValueError(f"unexpected sinfo line: {line!r}") from None
        gpus, used_gpus = gpu_count(gres), gpu_count(gres_used)
        entry = usage.setdefault(partition.rstrip("*"), NodeUsage())
        entry.cpus = max(entry.cpus, total)
        entry.memory = max(entry.memory, node_memory)
        entry.gpus = max(entry.gpus, gpus)
        entry.total_gpus += gpus
        if _UNUSABLE_NODE.search(state):
            continue
        entry.usable_nodes += 1
        entry.idle_cpus += idle
        entry.free_gpus += max(gpus - used_gpus, 0)
        entry.free_memory = max(entry.free_memory, node_memory - allocated_memory)
    return usage


def merge(partitions: dict[str, Partition], usage: dict[str, NodeUsage]) -> dict[str, Partition]:
    """Partitions with their nodes' capacity and free resources filled in."""
    merged = {}
    for name, partition in partitions.items():
        use = usage.get(name, NodeUsage())
        merged[name] = replace(
            partition, cpus_per_node=use.cpus, memory_per_node=use.memory, gpus_per_node=use.gpus,
            idle_cpus=use.idle_cpus, free_gpus=use.free_gpus, total_gpus=use.total_gpus,
            free_memory=use.free_memory, usable_nodes=use.usable_nodes,
        )
    return merged


def parse_associations(user: str, text: str) -> Access:
    """Parse ``sacctmgr -n -P show user U withassoc format=defaultaccount,account,partition``."""
    default = None
    associations = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 3:
            raise ValueError(f"unexpected sacctmgr line: {line!r}")
        default = parts[0].strip() or default
        account, partition = parts[1].strip(), parts[2].strip()
        if account and (account, partition) not in associations:
            associations.append((account, partition))
    return Access(user=user, default_account=default, associations=tuple(associations))


def parse_all_associations(text: str) -> dict[str, Access]:
    """Parse :data:`ALL_ASSOCIATIONS_ARGV`'s answer (``user|defaultaccount|account|partition``) into each
    user's :class:`Access`, as :func:`parse_associations` reads one user's."""
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        user, sep, rest = line.partition("|")
        if not sep or not user.strip():
            raise ValueError(f"unexpected sacctmgr line: {line!r}")
        lines.setdefault(user.strip(), []).append(rest)
    return {user: parse_associations(user, "\n".join(rows)) for user, rows in lines.items()}


def _signed_names(text: str | None) -> tuple[tuple[str, ...] | None, bool]:
    names = _names(text)
    if names and names[0].startswith("-"):
        return tuple(name.lstrip("-") for name in names), True
    return names, False


def parse_nodes(text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``sinfo -h -N -o %N|%o``: each node's (name, address) once, in Slurm's order."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, address = (part.strip() for part in line.partition("|"))
        if not sep or not name:
            raise ValueError(f"unexpected sinfo line: {line!r}")
        if (name, address) not in nodes:
            nodes.append((name, address))
    return tuple(nodes)


def parse_reservations(text: str) -> tuple[Reservation, ...]:
    """Parse ``scontrol show reservation -o`` (``No reservations in the system`` gives none)."""
    reservations = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("No reservations"):
            continue
        values = pairs(line)
        if "ReservationName" not in values:
            raise ValueError(f"unexpected scontrol line: {line[:80]!r}")
        users, users_excluded = _signed_names(values.get("Users"))
        accounts, accounts_excluded = _signed_names(values.get("Accounts"))
        reservations.append(Reservation(
            name=values["ReservationName"], state=values.get("State", ""), start=values.get("StartTime", ""),
            end=values.get("EndTime", ""), partition=value_or_none(values.get("PartitionName")), users=users,
            users_excluded=users_excluded, accounts=accounts,
            accounts_excluded=accounts_excluded, flags=_names(values.get("Flags")) or (),
        ))
    return tuple(reservations)


# -- the shared, cached fact queries --------------------------------------------------------------------------
class Cluster:
    """Cached, shared answers from Slurm. One instance per runner serves every spawner of the hub.

    ``all_users``: read each user's accounts from one table of every user's associations (a hub, serving
    many users); False: one query per user (a kernel's process, which only ever asks about its own user).
    """

    def __init__(self, runner, *, ttl: float = 60.0, timeout: float = 10.0, error_ttl: float = 5.0,
                 all_users: bool = True):
        self.runner = runner
        self.all_users = all_users
        self.timeout = timeout
        self.cache = TTLCache(ttl, error_ttl=error_ttl, stale_ttl=max(600.0, 10 * ttl))
        #: when the partition data was last read from Slurm (HH:MM:SS, local time)
        self.partitions_as_of = ""

    async def _run(self, argv) -> str:
        return (await self.runner.run(list(argv), timeout=self.timeout)).stdout

    async def partitions(self) -> dict[str, Partition]:
        """Every partition with its limits and free resources: one ``scontrol`` and one ``sinfo`` per refresh."""
        async def load():
            limits, usage = await asyncio.gather(self._run(PARTITIONS_ARGV), self._run(SINFO_ARGV))
            found = merge(parsed(parse_partitions, limits, PARTITIONS_ARGV), parsed(parse_sinfo, usage, SINFO_ARGV))
            self.partitions_as_of = datetime.datetime.now().strftime("%H:%M:%S")
            return found
        return await self.cache.get("partitions", load)

    async def associations(self) -> dict[str, Access]:
        """Every user's accounts: one ``sacctmgr`` per refresh for all users, however many open the form."""
        async def load():
            return parsed(parse_all_associations, await self._run(ALL_ASSOCIATIONS_ARGV), ALL_ASSOCIATIONS_ARGV)
        return await self.cache.get("associations", load)

    async def access(self, user: str) -> Access:
        """The user's accounts and the partitions each may be used in: their rows of :meth:`associations`; a
        user not in that table (added in Slurm since, or without any association) is asked about alone, so
        the answer is never older than it was with one query per user."""
        check_user_name(user)
        table = await self.associations() if self.all_users else {}
        if user in table:
            return table[user]

        async def load():
            argv = associations_argv(user)
            return parsed(lambda text: parse_associations(user, text), await self._run(argv), argv)
        return await self.cache.get(("access", user), load)

    async def reservations(self) -> tuple[Reservation, ...]:
        """Reservations that have not ended."""
        async def load():
            found = parsed(parse_reservations, await self._run(RESERVATIONS_ARGV), RESERVATIONS_ARGV)
            now = datetime.datetime.now()
            return tuple(r for r in found if not r.ended(now))
        return await self.cache.get("reservations", load)

    async def nodes(self) -> tuple[tuple[str, str], ...]:
        """Every node's (name, address): what a certificate for a job whose node is not known yet must name."""
        async def load():
            return parsed(parse_nodes, await self._run(NODES_ARGV), NODES_ARGV)
        return await self.cache.get("nodes", load)

    async def snapshot(self, user: str) -> Snapshot:
        """Partitions, the user's access and reservations, asked concurrently; failures leave a part None."""
        results = await asyncio.gather(self.partitions(), self.access(user), self.reservations(),
                                       return_exceptions=True)
        errors = []
        for result in results:
            if isinstance(result, SlurmError):
                errors.append(result.reason)
            elif isinstance(result, BaseException):
                raise result
        partitions, access, reservations = (None if isinstance(r, SlurmError) else r for r in results)
        if errors:
            log.warning("Slurm did not answer every cluster query for %s: %s", user, "; ".join(errors))
        return Snapshot(user=user, partitions=partitions, access=access, reservations=reservations,
                        errors=tuple(errors), as_of=self.partitions_as_of if partitions is not None else "")
