"""The group policy (``c.DKRZSpawner.policy``): who may use which presets, partitions and accounts, and how many
servers at once.

What lives here: :class:`Rule` and :class:`Policy` (the config, checked once by :func:`load_policy`),
:func:`unix_groups`, :class:`Allowance` (what one user's groups give, :func:`allowance_for`), which refuses a
request by name (:meth:`Allowance.check`) and narrows presets and facts (:meth:`Allowance.allowed_presets`,
:meth:`Allowance.allowed_facts`), and :func:`check_server_counts`. The validation under the policy is
:meth:`dkrzspawner.offer.Offer.validate`. Every refusal is an :class:`~dkrzspawner.options.OptionsError` whose
message is one sentence naming the field. Pure: imports :mod:`dkrzspawner.options` and
:mod:`dkrzspawner.units` only; looks up Unix groups, runs no command.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
from typing import TYPE_CHECKING, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .options import OptionsError, Preset
from .units import NAME

if TYPE_CHECKING:  # for annotations only: offer.py imports this module
    from .offer import Facts


class Rule(BaseModel):
    """What the members of one group may use; a list that is left out (None) means "everything"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    presets: tuple[str, ...] | None = Field(None, min_length=1)
    partitions: tuple[str, ...] | None = None  # for advanced requests; () means presets only
    accounts: tuple[str, ...] | None = None
    max_servers: int | None = Field(None, ge=1)  # per user, named servers included


class Policy(BaseModel):
    """``c.DKRZSpawner.policy`` once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, Rule] = {}
    default: Rule = Rule()
    max_servers_per_partition: dict[str, int] = {}


def load_policy(config: dict, presets: dict[str, Preset]) -> Policy:
    """Check the admin's policy once; a bad entry is named (``policy: groups.students.presets: ...``)."""
    try:
        policy = Policy.model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ValueError(f"policy: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None
    rules = {f"groups.{name}": rule for name, rule in policy.groups.items()}
    rules["default"] = policy.default
    for where, rule in rules.items():
        for preset in rule.presets or ():
            if preset not in presets:
                raise ValueError(f"policy: {where}.presets: no preset {preset!r} (presets: {', '.join(presets)})")
        for kind in ("partitions", "accounts"):
            for name in getattr(rule, kind) or ():
                if not NAME.fullmatch(name):
                    raise ValueError(f"policy: {where}.{kind}: {name!r} is not a Slurm name")
    for name, limit in policy.max_servers_per_partition.items():
        if not NAME.fullmatch(name) or limit < 1:
            raise ValueError(f"policy: max_servers_per_partition.{name}: needs a partition name and a limit >= 1")
    return policy


def unix_groups(user: str) -> set[str]:
    """Names of the Unix groups of ``user`` on the hub host (primary and supplementary); none if unknown."""
    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        return set()
    names = set()
    for group_id in os.getgrouplist(user, gid):
        try:
            names.add(grp.getgrgid(group_id).gr_name)
        except KeyError:
            continue
    return names


def _union(values: Iterable[tuple[str, ...] | None]) -> frozenset[str] | None:
    merged: set[str] = set()
    for value in values:
        if value is None:
            return None
        merged.update(value)
    return frozenset(merged)


@dataclasses.dataclass(frozen=True)
class Allowance:
    """What one user may use: the union of the rules of their groups. None means no restriction."""

    presets: frozenset[str] | None = None
    partitions: frozenset[str] | None = None
    accounts: frozenset[str] | None = None
    max_servers: int | None = None
    groups: tuple[str, ...] = ()  # the policy's groups the user is in (for messages and logs)

    def allowed_presets(self, presets: dict[str, Preset]) -> dict[str, Preset]:
        """The presets this user may pick, in the site's order."""
        return {k: p for k, p in presets.items() if self.presets is None or k in self.presets}

    def allowed_facts(self, facts: Facts) -> Facts:
        """``facts`` as this user may use them: other partitions hidden from advanced requests (presets may
        still use them), other accounts left out (so the default account is an allowed one)."""
        partitions = facts.partitions
        if partitions is not None and self.partitions is not None:
            partitions = {name: p if name in self.partitions else dataclasses.replace(p, hidden=True)
                          for name, p in partitions.items()}
        access = facts.access
        if access is not None and self.accounts is not None:
            kept = tuple((a, part) for a, part in access.associations if a in self.accounts)
            default = access.default_account if access.default_account in self.accounts else None
            access = dataclasses.replace(access, associations=kept, default_account=default)
        return dataclasses.replace(facts, partitions=partitions, access=access)

    def account_for(self, account: str | None) -> str | None:
        """Fail closed where the policy limits accounts: a request left without an account (Slurm did not say
        which accounts the user has, so no default could be chosen) gets the one account allowed, or is refused;
        without an account Slurm would charge the user's default one, whichever it is."""
        if account is not None or self.accounts is None:
            return account
        if len(self.accounts) == 1:
            return next(iter(self.accounts))
        allowed = ", ".join(sorted(self.accounts)) or "none"
        raise OptionsError("account", f"Account: Slurm did not say which accounts you have, and this hub lets you "
                                      f"charge only these: {allowed}; choose one, or try again in a minute.")

    def check(self, options: dict, presets: dict[str, Preset]) -> None:
        """Refuse a preset, partition or account the user's groups do not allow (``options`` unwrapped,
        ``presets`` all the site's); the rest is for the validation, given :meth:`allowed_presets` and
        :meth:`allowed_facts` (:meth:`dkrzspawner.offer.Offer.validate`)."""
        allowed = self.allowed_presets(presets)  # never empty: every rule names at least one preset
        preset = options.get("preset")
        if isinstance(preset, str) and preset in presets and preset not in allowed:
            raise OptionsError("preset", f"Preset {preset} is not open to you; yours are {', '.join(allowed)}.")
        partition = options.get("partition")
        if ("preset" not in options and isinstance(partition, str) and NAME.fullmatch(partition)
                and self.partitions is not None and partition not in self.partitions):
            yours = f"yours are {', '.join(sorted(self.partitions))}" if self.partitions else "use a preset"
            raise OptionsError("partition", f"Partition {partition} is not open to you; {yours}.")
        account = options.get("account")
        if (isinstance(account, str) and NAME.fullmatch(account) and self.accounts is not None
                and account not in self.accounts):
            yours = ", ".join(sorted(self.accounts)) or "none"
            raise OptionsError("account", f"Account {account} may not be used on this hub by you; allowed: {yours}.")


def allowance_for(policy: Policy, groups: Iterable[str]) -> Allowance:
    """The union of the rules of every policy group in ``groups``; ``default`` if there is none."""
    mine = tuple(sorted(name for name in set(groups) if name in policy.groups))
    rules = [policy.groups[name] for name in mine] or [policy.default]
    limits = [rule.max_servers for rule in rules]
    return Allowance(
        presets=_union(rule.presets for rule in rules),
        partitions=_union(rule.partitions for rule in rules),
        accounts=_union(rule.accounts for rule in rules),
        max_servers=None if None in limits else max(limits),
        groups=mine,
    )


def check_server_counts(allowance: Allowance, policy: Policy, partition: str, mine: list[str],
                        in_partition: int) -> None:
    """Refuse one more server when the user already has ``allowance.max_servers`` (``mine``: the names of
    their active servers) or ``partition`` already holds its limit (``in_partition`` active servers)."""
    if allowance.max_servers is not None and len(mine) >= allowance.max_servers:
        names = ", ".join(name or "default" for name in sorted(mine))
        raise OptionsError("server", f"Servers: you already have {len(mine)} running or starting ({names}), the "
                                     f"most allowed per user here; stop one first.")
    limit = policy.max_servers_per_partition.get(partition)
    if limit is not None and in_partition >= limit:
        raise OptionsError("partition", f"Partition {partition} already has {in_partition} servers running or "
                                        "starting, the most this hub allows there; choose another or try later.")
