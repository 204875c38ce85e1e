"""The configuration reference, generated from the traits' help texts.

One generator for the docs (``docs/_ext/dkrzdocs.py`` puts :func:`render` into the reference page at build
time) and for the test that checks every configurable trait is there (``tests/unit/test_config_reference.py``).

Only the settings that dkrzspawner's own classes define are listed: those of :class:`DKRZSpawner` and of its
mixins. JupyterHub's inherited ``Spawner`` settings are documented by JupyterHub; the ones whose default
dkrzspawner computes are named by :func:`changed_defaults`.
"""

from __future__ import annotations

import inspect
import pprint
import sys
from dataclasses import dataclass

from traitlets import TraitType
from traitlets.traitlets import DefaultHandler

PACKAGE = __name__.split(".")[0]


@dataclass(frozen=True)
class Setting:
    """One configurable trait as the reference shows it."""

    owner: type  # the class that defines the trait
    name: str
    trait: TraitType

    @property
    def help(self) -> str:
        """The help text without its source indentation; '' if there is none."""
        return inspect.cleandoc(self.trait.help or "")

    @property
    def type_name(self) -> str:
        """``Dict``, ``List of Unicode``, ``Unicode or None``, ..."""
        name = type(self.trait).__name__
        inner = getattr(self.trait, "_trait", None)
        if inner is not None:
            name += f" of {type(inner).__name__}"
        if self.trait.allow_none:
            name += " or None"
        return name

    def default_text(self) -> str:
        """The default as Python source; the hub's own ``sys.prefix`` is shown by name, not by this machine's path."""
        value = self.trait.default()
        if isinstance(value, str) and value == sys.prefix:
            return "sys.prefix"
        if isinstance(value, dict) and not value:
            return "{}"
        return pprint.pformat(value, width=72, sort_dicts=False)


def _own_classes(cls: type) -> list[type]:
    """The classes of ``cls``'s MRO that belong to this package, ``cls`` first."""
    return [klass for klass in cls.__mro__ if klass.__module__.split(".")[0] == PACKAGE]


def settings(cls: type | None = None) -> list[Setting]:
    """Every ``config=True`` trait that this package's classes in ``cls``'s MRO define, class by class in MRO
    order, each class's traits in source order. ``cls`` defaults to :class:`~dkrzspawner.spawner.DKRZSpawner`.
    """
    cls = cls or _spawner_class()
    found = []
    for klass in _own_classes(cls):
        for name, value in vars(klass).items():
            if isinstance(value, TraitType) and value.metadata.get("config"):
                found.append(Setting(owner=klass, name=name, trait=value))
    return found


def changed_defaults(cls: type | None = None) -> list[str]:
    """Names of inherited (JupyterHub) settings whose default this package's classes compute."""
    cls = cls or _spawner_class()
    own = {setting.name for setting in settings(cls)}
    names = []
    for klass in _own_classes(cls):
        for value in vars(klass).values():
            if isinstance(value, DefaultHandler) and value.trait_name not in own and value.trait_name not in names:
                names.append(value.trait_name)
    return sorted(names)


def _spawner_class() -> type:
    from .spawner import DKRZSpawner

    return DKRZSpawner


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line if line else "" for line in text.splitlines())


def render_setting(setting: Setting, section: str) -> str:
    """One setting as reStructuredText: a label ``config-NAME``, a title, type, default and help."""
    if not setting.help:
        raise ValueError(f"{setting.owner.__name__}.{setting.name} has no help text")
    title = f"``{setting.name}``"
    default = setting.default_text()
    lines = [
        f".. _config-{setting.name}:",
        "",
        title,
        "-" * len(title),
        "",
        f":Setting: ``c.{section}.{setting.name}``",
        f":Type: ``{setting.type_name}``",
    ]
    if "\n" in default:
        lines += [":Default: see below", "", setting.help, "", "Default:", "", ".. code-block:: python", "",
                  _indent(default), ""]
    else:
        lines += [f":Default: ``{default}``", "", setting.help, ""]
    return "\n".join(lines)


def render(cls: type | None = None) -> str:
    """The whole reference as reStructuredText: one section per defining class, one subsection per setting.

    Settings are written as ``c.<cls name>.<setting>``, whichever of our classes defines them.
    """
    cls = cls or _spawner_class()
    parts = []
    current = None
    for setting in settings(cls):
        if setting.owner is not current:
            current = setting.owner
            heading = current.__qualname__
            doc = inspect.getdoc(current) or ""
            summary = doc.splitlines()[0] if doc else ""
            parts.append(f"{heading}\n{'=' * len(heading)}\n\n{summary} (``{current.__module__}``)\n")
        parts.append(render_setting(setting, cls.__name__))
    inherited = changed_defaults(cls)
    if inherited:
        heading = "JupyterHub settings with a different default"
        names = ", ".join(f"``{name}``" for name in inherited)
        parts.append(f"{heading}\n{'=' * len(heading)}\n\n{cls.__name__} computes the default of these settings "
                     f"of JupyterHub's ``Spawner``: {names}. Setting them yourself overrides what it computes.\n")
    return "\n".join(parts)
