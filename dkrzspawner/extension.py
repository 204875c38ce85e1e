"""Extending a running server's walltime (``c.DKRZSpawner.extend_walltime``, off by default): the request and
whether it may be granted.

What lives here: :func:`parse_request` (``{"add": "01:00:00"}``, the time to add as users type a runtime),
:func:`time_limit` (a running job's limit from Slurm's start and end) and :func:`extended_limit`, which refuses by
name, in one sentence each, what a site does not allow: past the partition's longest runtime (Slurm's, tightened
by the site's partition settings), past the site's longest total runtime for extended servers
(``c.DKRZSpawner.extend_max_runtime``), or more core-hours than the job's account has left. Every refusal is an
:class:`~dkrzspawner.options.OptionsError` of field ``add``. Pure: imports :mod:`dkrzspawner.options` and
:mod:`dkrzspawner.units`; the spawner asks Slurm and applies the result (:meth:`DKRZSpawner.extend
<dkrzspawner.spawner.DKRZSpawner.extend>`).

:data:`SCOPE` is the hub's custom scope that lets a server's own token extend that server (JupyterLab's status-bar
item asks with it): the drop-in ``extend`` defines it and grants it to every user on their own servers; the
spawner then puts it into each server's token (filtered to that one server).
"""

from __future__ import annotations

import datetime

from .options import MIN_RUNTIME, OptionsError
from .units import format_runtime, runtime_seconds

#: the custom scope of extending a server (``!server=USER/NAME`` on a server's token, ``!user`` on users)
SCOPE = "custom:dkrzspawner:extend"
#: its definition for ``c.JupyterHub.custom_scopes``
SCOPES = {SCOPE: {"description": "Extend the walltime of your running Jupyter servers' Slurm jobs, within the "
                                 "site's limits."}}
#: Slurm's time stamps (``squeue %S``/``%e``)
STAMP = "%Y-%m-%dT%H:%M:%S"


def parse_request(body) -> int:
    """The seconds to add: exactly ``{"add": "[D-]HH:MM:SS"}``, at least a minute; else OptionsError."""
    if not isinstance(body, dict) or set(body) != {"add"}:
        raise OptionsError("add", 'The request must be {"add": "HH:MM:SS"}: the time to add.')
    add = body["add"]
    try:
        seconds = runtime_seconds(add)
    except ValueError:
        raise OptionsError("add", "Add must look like HH:MM:SS or D-HH:MM:SS.") from None
    if seconds < MIN_RUNTIME:
        raise OptionsError("add", f"Add must be at least {format_runtime(MIN_RUNTIME)}.")
    return seconds


def time_limit(start: str | None, end: str | None) -> int | None:
    """A running job's time limit in seconds, from Slurm's start and end times; None when either is unreadable."""
    try:
        began, ends = (datetime.datetime.strptime(stamp or "", STAMP) for stamp in (start, end))
    except ValueError:
        return None
    return int((ends - began).total_seconds())


def extended_limit(*, limit: int, add: int, partition: str, longest: int | None, site_longest: int | None,
                   cpus: int, account: str | None, left_hours: float | None) -> int:
    """The new time limit (``limit + add`` seconds), or OptionsError saying which limit it passes: the
    partition's ``longest`` runtime, the site's ``site_longest`` for extended servers (None: no such limit), or
    the ``left_hours`` of ``account`` (None: no budget) for ``cpus`` cores."""
    new = limit + add
    for top, whose in ((longest, f"partition {partition}"), (site_longest, "this hub")):
        if top is not None and new > top:
            more = f"at most {format_runtime(top - limit)} more" if top > limit else "no more"
            raise OptionsError("add", f"Add: {whose} lets a server run at most {format_runtime(top)}; this one "
                                      f"has {format_runtime(limit)} already, so {more}.")
    needed = cpus * add / 3600
    if left_hours is not None and needed > left_hours:
        raise OptionsError("add", f"Add: {needed:.1f} more core-hours are needed, and account {account} has "
                                  f"{max(left_hours, 0):.1f} left.")
    return new
