"""Helpers for drop-in files (the services' and the page templates'): add to a hub's configuration without
undoing what a site (or another drop-in) set before. Every function takes the drop-in's config object ``c``.
"""

from __future__ import annotations

import socket

from traitlets.config import LazyConfigValue

from . import templates_path


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now: two hubs on one machine (demo and tests) get different ones."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _existing(section, name: str, empty):
    """What the config holds for ``name`` so far (``c.X.y.append(...)`` leaves a lazy value), or ``empty``."""
    value = section[name] if name in section else empty
    return value.get_value(empty) if isinstance(value, LazyConfigValue) else value


def add_service(c, entry: dict) -> None:
    """Append a service to ``c.JupyterHub.services`` (replacing one of the same name)."""
    services = [s for s in _existing(c.JupyterHub, "services", []) if s.get("name") != entry["name"]]
    c.JupyterHub.services = [*services, entry]


def define_scope(c, scope: str, description: str) -> None:
    """Declare a ``custom:`` scope in ``c.JupyterHub.custom_scopes``."""
    c.JupyterHub.custom_scopes = {**_existing(c.JupyterHub, "custom_scopes", {}), scope: {"description": description}}


def _add_to_role(c, name: str, defaults: list[str], scopes) -> None:
    """Add ``scopes`` to role ``name`` in ``c.JupyterHub.load_roles``: to its entry there, or to a new entry
    with the role's default scopes (JupyterHub replaces a default role's scopes by the configured ones)."""
    roles = [dict(role) for role in _existing(c.JupyterHub, "load_roles", [])]
    role = next((r for r in roles if r.get("name") == name), None)
    if role is None:
        role = {"name": name, "scopes": list(defaults)}
        roles.append(role)
    role["scopes"] = [*role.get("scopes", defaults), *(s for s in scopes if s not in role.get("scopes", defaults))]
    c.JupyterHub.load_roles = roles


def _default_scopes(role: str) -> list[str]:
    from jupyterhub.roles import get_default_roles

    return next(r["scopes"] for r in get_default_roles() if r["name"] == role)


def grant_users(c, scopes) -> None:
    """Give every hub user ``scopes``: ``extra_user_scopes`` (JupyterHub >= 6), else the ``user`` role."""
    from jupyterhub.app import JupyterHub

    if "extra_user_scopes" in JupyterHub.class_trait_names():
        c.JupyterHub.extra_user_scopes = {*_existing(c.JupyterHub, "extra_user_scopes", set()), *scopes}
    else:
        _add_to_role(c, "user", _default_scopes("user"), scopes)


def grant_admins(c, scopes) -> None:
    """Give the hub's admins (the ``admin`` role) ``scopes`` as well."""
    _add_to_role(c, "admin", _default_scopes("admin"), scopes)


def add_template_var(c, name: str, value) -> None:
    """Set one ``c.JupyterHub.template_vars`` entry, keeping the others."""
    c.JupyterHub.template_vars = {**_existing(c.JupyterHub, "template_vars", {}), name: value}


def use_page_templates(c) -> None:
    """Put dkrzspawner's page templates first in ``c.JupyterHub.template_paths`` (keeping a site's folders)."""
    ours = templates_path()
    theirs = [path for path in _existing(c.JupyterHub, "template_paths", []) if path != ours]
    c.JupyterHub.template_paths = [ours, *theirs]
