"""Helpers for drop-in files (the services' and the page templates'): add to a hub's configuration without
undoing what a site (or another drop-in) set.

JupyterHub loads each drop-in (``load_subconfig``) into a configuration of its own and merges it into the hub's
afterwards: a drop-in cannot see what other files set, and a list it assigns would replace theirs. So every
helper here only uses the config's lazy operations (``append``, ``update``, ``prepend``), which are applied to
whatever the other files set when the configurations are merged.
"""

from __future__ import annotations

import socket
import sys

from . import templates_path


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now: two hubs on one machine (demo and tests) get different ones."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_managed_service(c, name: str, module: str, environment: dict, **fields) -> None:
    """Append a service the hub starts and stops: ``python -m module`` with the hub's own Python, listening on
    a free port of 127.0.0.1, logging users in through the hub's OAuth without a confirmation page; every hub
    user may use it (``access:services!service=name``). ``fields`` are further service settings."""
    c.JupyterHub.services.append({
        "name": name,
        "url": f"http://127.0.0.1:{free_port()}",
        "command": [sys.executable, "-m", module],
        "environment": environment,
        "oauth_no_confirm": True,
        **fields,
    })
    grant_users(c, [f"access:services!service={name}"])


def define_scope(c, scope: str, description: str) -> None:
    """Declare a ``custom:`` scope in ``c.JupyterHub.custom_scopes``."""
    c.JupyterHub.custom_scopes.update({scope: {"description": description}})


#: the config section where :func:`grant_users` keeps the scopes on JupyterHub 5 (no ``extra_user_scopes``)
USER_SCOPES_SECTION = "DKRZUserScopes"


def grant_users(c, scopes) -> None:
    """Give every hub user ``scopes``: JupyterHub 6's ``c.JupyterHub.extra_user_scopes``.

    JupyterHub 5 has no ``extra_user_scopes``, and a drop-in cannot add to a ``user`` role that another file
    defines (a role defined twice stops the hub). There the scopes go to ``c.DKRZUserScopes.scopes`` (the same
    lazy update, so every drop-in's add up) and the hub's default ``user`` role gets them when it is loaded, as
    JupyterHub 6 does with ``extra_user_scopes``. On either version, a site that defines the ``user`` role's
    scopes in ``c.JupyterHub.load_roles`` lists these scopes there itself (its own list replaces the default).
    """
    from jupyterhub.app import JupyterHub

    if "extra_user_scopes" in JupyterHub.class_trait_names():
        c.JupyterHub.extra_user_scopes.update(set(scopes))
        return
    c[USER_SCOPES_SECTION].scopes.update(set(scopes))
    _extend_default_user_role()


def _extend_default_user_role() -> None:
    """Make JupyterHub 5's default ``user`` role carry the running hub's ``c.DKRZUserScopes.scopes``: wraps
    ``jupyterhub.roles.get_default_roles`` (once), which the hub reads when it loads its roles at start-up."""
    from jupyterhub import roles
    from jupyterhub.app import JupyterHub

    default_roles = roles.get_default_roles
    if getattr(default_roles, "dkrz_user_scopes", False):
        return

    def get_default_roles():
        found = default_roles()
        granted = (JupyterHub.instance().config[USER_SCOPES_SECTION].get("scopes")
                   if JupyterHub.initialized() else None)
        if hasattr(granted, "get_value"):  # the lazy update the drop-ins made
            granted = granted.get_value(set())
        for role in found:
            if role["name"] == "user":
                role["scopes"].extend(sorted(set(granted or ()) - set(role["scopes"])))
        return found

    get_default_roles.dkrz_user_scopes = True
    roles.get_default_roles = get_default_roles


def add_template_var(c, name: str, value) -> None:
    """Set one ``c.JupyterHub.template_vars`` entry, keeping the others."""
    c.JupyterHub.template_vars.update({name: value})


def use_page_templates(c) -> None:
    """Put dkrzspawner's page templates first in ``c.JupyterHub.template_paths`` (a site's folders stay)."""
    c.JupyterHub.template_paths.prepend([templates_path()])
