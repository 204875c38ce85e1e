"""The site configuration: presets, partitions, group policy and module settings, written once.

One TOML file (``site.toml``; an example is ``share/site.toml.example``) holds the settings that decide what a
user may ask for, under the names of the ``c.DKRZSpawner`` settings (:data:`SETTINGS`). Both sides read it:

- the hub, when ``c.DKRZSpawner.site_config_file`` names it (:mod:`dkrzspawner.spawnsite`); it then passes the
  path to every job in ``DKRZSPAWNER_SITE_CONFIG`` (:data:`ENV_PATH`), with the user's hub groups that the
  policy names in ``DKRZSPAWNER_HUB_GROUPS`` (:data:`ENV_HUB_GROUPS`);
- the kernels (``dkrz-kernel`` and the Slurm kernel provisioner): the file ``DKRZSPAWNER_SITE_CONFIG`` names,
  else :data:`DEFAULT_PATH` if it exists (login nodes), else the built-in defaults (:func:`for_kernels`).

:func:`load` checks the whole file once; a mistake is a :class:`SiteConfigError` of one sentence that names the
file and the entry. :meth:`SiteConfig.offer` and :func:`kernel_offer` give what one user is offered, an
:class:`~dkrzspawner.offer.Offer` (the site's presets and partition settings, narrowed by their groups'
:class:`~dkrzspawner.policy.Allowance`); :func:`apply`, :func:`configured` and :func:`refuse_retired` set and
guard the ``c.DKRZSpawner``/``c.SlurmProvisioner`` settings the file holds. May import
:mod:`dkrzspawner.options`, :mod:`dkrzspawner.policy`, :mod:`dkrzspawner.offer` and (for the module catalogue
it hands out, not to run it) :mod:`dkrzspawner.modules`; no command is run here.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from . import modules, policy
from .offer import Offer
from .options import DKRZ_PRESETS, PartitionSettings, Preset, load_partition_settings, load_presets
from .policy import Allowance, Policy, allowance_for, load_policy

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: the settings a site file may hold: the ``c.DKRZSpawner`` settings of the same names, in the order applied
SETTINGS = ("presets", "partitions", "policy", "advanced_options", "lmod_command", "module_path", "modules_init")
#: the environment-module settings, which the kernel provisioner has as well (``c.SlurmProvisioner``)
MODULE_SETTINGS = ("lmod_command", "module_path", "modules_init")
#: where the kernels look when no hub told them (a login node's file)
DEFAULT_PATH = "/etc/dkrzspawner/site.toml"
#: the job's variable with the hub's site file
ENV_PATH = "DKRZSPAWNER_SITE_CONFIG"
#: the job's variable with the user's hub groups that the policy names, comma-separated
ENV_HUB_GROUPS = "DKRZSPAWNER_HUB_GROUPS"
#: a group name that may travel in ENV_HUB_GROUPS (Unix and usual JupyterHub group names)
GROUP = re.compile(r"[A-Za-z0-9_.@+-]{1,64}", re.ASCII)


class SiteConfigError(ValueError):
    """A site file that cannot be used; the message names the file and the entry."""


class _SiteFile(BaseModel):
    """The file's top level; every table is checked further by the loader of its setting."""

    model_config = ConfigDict(extra="forbid", strict=True)

    presets: dict[str, dict] | None = None
    partitions: dict[str, dict] | None = None
    policy: dict | None = None
    advanced_options: bool | None = None
    lmod_command: str | None = None
    module_path: list[str] | None = None
    modules_init: str | None = None


@dataclasses.dataclass(frozen=True)
class SiteConfig:
    """A checked site file (``path`` '' : none, the built-in defaults)."""

    path: str = ""
    #: what the file sets, as the ``c.DKRZSpawner`` settings of the same names take it
    settings: dict = dataclasses.field(default_factory=dict)
    presets: dict[str, Preset] = dataclasses.field(default_factory=lambda: load_presets(DKRZ_PRESETS))
    partitions: dict[str, PartitionSettings] = dataclasses.field(default_factory=dict)
    policy: Policy = Policy()

    @property
    def advanced(self) -> bool:
        return self.settings.get("advanced_options", True)

    def allowance(self, groups: Iterable[str]) -> Allowance:
        """What members of ``groups`` may use (everything without a policy)."""
        if not self.settings.get("policy"):
            return Allowance()
        return allowance_for(self.policy, groups)

    def offer(self, groups: Iterable[str]) -> Offer:
        """What a member of ``groups`` is offered (without the cluster's facts: see
        :meth:`~dkrzspawner.offer.Offer.with_cluster`)."""
        return Offer(self.presets, self.partitions, self.advanced, self.allowance(groups))

    def offer_for(self, user: str, hub_groups: Iterable[str] = ()) -> Offer:
        """What ``user`` is offered: the policy knows them by their Unix groups on this host and ``hub_groups``
        (their JupyterHub groups; in a job, those the hub passed). Without a policy, groups are not looked up."""
        if not self.settings.get("policy"):
            return self.offer(())
        return self.offer(policy.unix_groups(user) | set(hub_groups))

    def module_catalog(self, runner) -> modules.ModuleCatalog:
        """The modules the cluster offers, asked with the site's Lmod and module path."""
        return modules.ModuleCatalog(runner, lmod_command=self.settings.get("lmod_command", modules.DEFAULT_LMOD),
                                     module_path=self.settings.get("module_path"))


def checked(settings: Mapping, path: str = "") -> SiteConfig:
    """``settings`` (``presets``, ``partitions``, ``policy`` and the others of :data:`SETTINGS`, each optional)
    checked by their loaders; raises their ValueError, which names the entry (``policy: groups.x.presets: ...``)."""
    presets = load_presets(settings.get("presets", DKRZ_PRESETS))
    return SiteConfig(path=path, settings={k: settings[k] for k in SETTINGS if k in settings}, presets=presets,
                      partitions=load_partition_settings(settings.get("partitions", {})),
                      policy=load_policy(settings.get("policy", {}), presets))


def from_settings(settings: Mapping, path: str = "") -> SiteConfig:
    """Check ``settings`` (a parsed site file) at once; raises :class:`SiteConfigError` naming the entry."""
    where = f"Site config {path or '(no file)'}"
    try:
        _SiteFile.model_validate(settings)
    except ValidationError as exc:
        error = exc.errors()[0]
        entry = ".".join(map(str, error["loc"])) or "(top level)"
        if error["type"] == "extra_forbidden":
            raise SiteConfigError(f"{where}: unknown setting {entry!r}; a site file may set "
                                  f"{', '.join(SETTINGS)}.") from None
        raise SiteConfigError(f"{where}: {entry}: {error['msg'].lower()}.") from None
    try:
        return checked(settings, path)
    except ValueError as exc:
        raise SiteConfigError(f"{where}: {exc}.") from None


def load(path: str) -> SiteConfig:
    """Read and check the site file ``path``; raises :class:`SiteConfigError` naming the file and the entry."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise SiteConfigError(f"Site config {path}: cannot be read ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteConfigError(f"Site config {path}: not valid TOML: {exc}.") from None
    return from_settings(data, path)


def for_kernels(environ: Mapping[str, str] | None = None) -> SiteConfig:
    """The site file a kernel goes by: the one its hub named (``DKRZSPAWNER_SITE_CONFIG``), else
    :data:`DEFAULT_PATH` if it exists, else the built-in defaults (DKRZ's presets, no partition settings or
    group policy)."""
    environ = os.environ if environ is None else environ
    path = environ.get(ENV_PATH, "")
    if path:
        return load(path)
    if os.path.exists(DEFAULT_PATH):
        return load(DEFAULT_PATH)
    return SiteConfig()


def passed_hub_groups(environ: Mapping[str, str] | None = None) -> set[str]:
    """The hub groups the hub passed to the job (:data:`ENV_HUB_GROUPS`; none on a login node)."""
    environ = os.environ if environ is None else environ
    return {name for name in environ.get(ENV_HUB_GROUPS, "").split(",") if GROUP.fullmatch(name)}


def kernel_offer(site: SiteConfig, user: str, environ: Mapping[str, str] | None = None) -> Offer:
    """What the hub offers ``user`` (the one a kernel runs as) under ``site``: their Unix groups here and the hub
    groups the hub passed to the job."""
    return site.offer_for(user, passed_hub_groups(environ))


def hub_groups_value(hub_groups: Iterable[str], checked: Policy) -> str:
    """The value of :data:`ENV_HUB_GROUPS`: those of ``hub_groups`` that the policy names, sorted."""
    return ",".join(sorted(name for name in set(hub_groups) if name in checked.groups and GROUP.fullmatch(name)))


def configured(configurable, name: str) -> str | None:
    """Where the configuration (``jupyterhub_config.py``, a ``jupyter_server_config.py``) sets ``name`` for
    ``configurable``: ``c.SECTION.name`` of its class or one of its bases; None if it does not."""
    for cls in type(configurable).__mro__:
        if f"{cls.__name__}.{name}" in configurable.config:
            return f"c.{cls.__name__}.{name}"
    return None


def refuse_retired(configurable, names: Iterable[str]) -> None:
    """Refuse settings that are no longer read (``c.SlurmProvisioner.presets``, ``partitions``): they moved into
    the site file, and a kernel that went by the built-in defaults instead would surprise the site."""
    retired = [where for where in (configured(configurable, name) for name in names) if where]
    if retired:
        raise SiteConfigError(f"{', '.join(retired)} is no longer read: kernels go by the site file (the hub's, "
                              f"or {DEFAULT_PATH}); move it there.")


def apply(configurable, site: SiteConfig, names: Iterable[str]) -> None:
    """Set what ``site`` holds of ``names`` on ``configurable``. With a site file, these settings belong there
    alone: a name that the configuration sets as well is refused, naming both places."""
    names = list(names)
    both = [where for where in (configured(configurable, name) for name in names) if where]
    if both:
        raise SiteConfigError(f"Site config {site.path}: with a site file, these settings belong in it alone; "
                              f"remove {', '.join(both)} from the configuration.")
    for name in names:
        if name in site.settings:
            setattr(configurable, name, site.settings[name])
