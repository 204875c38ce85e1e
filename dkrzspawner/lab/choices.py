"""What this user may choose for a kernel (``GET dkrzspawner/api/offer``): the presets and partitions the hub offers
them (the same site file and offer, :func:`dkrzspawner.siteconfig.for_kernels`), their accounts and reservations,
the site's modules, their environments. Read-only Slurm queries through the kernels' own
:func:`~dkrzspawner.kernels.templates.cluster_facts`; imports the core and :mod:`dkrzspawner.kernels.templates`."""

from __future__ import annotations

import getpass

from .. import siteconfig
from ..kernels import templates


def _presets(offer) -> list[dict]:
    return [{"name": name, "display_name": preset.display_name, "description": preset.description,
             "partition": preset.partition, "cores": list(preset.cores), "memory_per_core": preset.memory_per_core,
             "runtime": preset.runtime, "max_runtime": preset.max_runtime}
            for name, preset in offer.presets.items()]


def _partitions(facts) -> list[dict]:
    return [{"name": part.name, "display_name": part.display_name, "max_nodes": part.max_nodes,
             "max_cores": part.max_cores, "max_memory_mb": part.max_memory_mb, "max_gpus": part.max_gpus,
             "max_runtime": part.max_runtime, "default_runtime": part.default_runtime}
            for part in facts.visible() if part.up] if facts.advanced else []


async def offered(runner) -> dict:
    """The user's choices; what Slurm did not answer is in ``errors`` (and that part is empty or null)."""
    user = getpass.getuser()
    try:
        site = siteconfig.for_kernels()
    except siteconfig.SiteConfigError as exc:
        return {"presets": [], "partitions": [], "advanced": False, "accounts": [], "default_account": None,
                "reservations": [], "modules": None, "environments": templates.environments(),
                "errors": [str(exc)]}
    offer = siteconfig.kernel_offer(site, user)
    facts = offer.with_facts(await templates.cluster_facts(runner, user, site, offer)).facts
    accounts = list(facts.access.accounts) if facts.access is not None else []
    reservations = [r.name for r in facts.reservations or ()
                    if any(r.allows(user, account) for account in accounts or [None])]
    return {"presets": _presets(offer), "partitions": _partitions(facts), "advanced": bool(facts.advanced),
            "accounts": accounts, "default_account": facts.access.default_account if facts.access else None,
            "reservations": reservations, "modules": list(facts.modules) if facts.modules is not None else None,
            "environments": templates.environments(), "errors": list(facts.errors)}
