"""The spawner's side of the site policy: the config traits, the user's groups, the server counts, maintenance.

A mixin of :class:`~dkrzspawner.spawner.DKRZSpawner`; :mod:`dkrzspawner.policy` does the work, and
:meth:`~dkrzspawner.spawnpage.SpawnPageMixin.validate_options` applies it.
"""

from __future__ import annotations

import weakref

from traitlets import Dict, Unicode, observe
from traitlets.config import Configurable

from . import policy

#: every spawner object of this hub process, for the per-partition counts across all users
_live: weakref.WeakSet = weakref.WeakSet()


class PolicyMixin(Configurable):
    """Which presets, partitions and accounts each group may use, how many servers at once, maintenance."""

    policy = Dict(
        help="""Who may use what, by group, and how many servers may run at once. Checked when the config is
        read; an error names the entry. Example::

            c.DKRZSpawner.policy = {
                "groups": {
                    "students": {"presets": ["shared"], "partitions": [], "accounts": ["bb1234"],
                                 "max_servers": 2},
                    "gpu-users": {"partitions": ["gpu"]},
                },
                "default": {"presets": ["shared", "prepost"], "partitions": ["shared", "prepost"]},
                "max_servers_per_partition": {"gpu": 4},
            }

        ``groups`` maps a group name to a rule. A name matches a Unix group of the user on the hub host
        (primary or supplementary, as ``id USER`` shows them) and a JupyterHub group of the same name alike.
        A rule may list ``presets`` (names of ``presets``; at least one), ``partitions`` (what the
        Advanced tab may use; ``[]``: presets only; a preset may use its partition whatever this says),
        ``accounts`` (the Slurm accounts jobs may be charged to, on top of the user's Slurm associations) and
        ``max_servers`` (servers per user, named ones included, that may be starting or running at once).
        A list left out means "everything"; ``max_servers`` left out means no limit.

        A user in several listed groups gets the union of their rules (every list joined, the highest
        ``max_servers``; a rule without a list or limit lifts it). A user in none of them gets ``default``,
        which, left out, allows everything. ``max_servers_per_partition`` caps the servers of all users that
        may be starting or running in a partition at once (counted from the partition each server was
        started in). The form offers only what the user may use; anything else is refused with one sentence
        naming the field, and no job is submitted. Empty (the default): no restrictions.
        """,
    ).tag(config=True)

    maintenance_message = Unicode(
        "",
        help="""When not empty, new servers are refused with this message (REST: status 503), and the spawn
        page shows it above the form. Running servers go on; stopping and polling them are not affected.
        ``maintenance_file`` switches maintenance on without a hub restart.""",
    ).tag(config=True)

    maintenance_file = Unicode(
        "",
        help="""A file whose text, while it exists and is not empty, is the maintenance message, read at each
        spawn and each showing of the form; it takes precedence over ``maintenance_message``. Admins
        switch maintenance on and off by writing and removing it (``echo "Back at 14:00." > FILE``), no hub
        restart needed. Empty (the default): only ``maintenance_message`` counts.""",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.policy_checked = policy.load_policy(self.policy, self.presets_checked)  # with the presets it names
        _live.add(self)

    @observe("policy")
    def _policy_changed(self, change):
        if hasattr(self, "policy_checked"):  # a change after the config was read: checked at once too
            self.policy_checked = policy.load_policy(change["new"], self.presets_checked)

    def maintenance(self) -> str:
        """The maintenance message in force now, or '' when spawns are open."""
        if self.maintenance_file:
            try:
                with open(self.maintenance_file, encoding="utf-8", errors="replace") as file:
                    text = file.read(2000).strip()
            except FileNotFoundError:
                text = ""
            except OSError as exc:
                self.log.warning("maintenance file %s unreadable (%s); spawns stay open", self.maintenance_file, exc)
                text = ""
            if text:
                return text
        return self.maintenance_message.strip()

    def user_groups(self) -> set[str]:
        """The user's Unix groups on the hub host and JupyterHub groups, by name."""
        hub_groups = {group.name for group in getattr(self.user, "groups", None) or ()}
        return policy.unix_groups(self.user.name) | hub_groups

    def allowance(self) -> policy.Allowance:
        """What this user may use under :attr:`policy` (everything when the policy is empty)."""
        if not self.policy:
            return policy.Allowance()
        return policy.allowance_for(self.policy_checked, self.user_groups())

    def check_server_counts(self, allowance: policy.Allowance, partition: str) -> None:
        """Refuse this server when the user or ``partition`` has as many active servers as the policy allows."""
        mine, in_partition = [], 0
        if allowance.max_servers is not None:  # counted only where a limit applies
            mine = [spawner.name for spawner in self.user.spawners.values()
                    if spawner is not self and spawner.active]
        if partition in self.policy_checked.max_servers_per_partition:
            in_partition = sum(1 for spawner in list(_live)
                               if spawner is not self and spawner.active and spawner.job_partition == partition)
        policy.check_server_counts(allowance, self.policy_checked, partition, mine, in_partition)
