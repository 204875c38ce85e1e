"""The configuration reference, by topic, generated from the traits' help texts.

:data:`TOPICS` is the declared table of contents: each topic (presets and partitions, group policy, Slurm and
timing, ...) names its settings in reading order, whichever class or mixin defines them. One generator serves the
docs (``docs/_ext/dkrzdocs.py`` puts :func:`render_topic` on one page per topic and :func:`render_index` on the
reference's index at build time) and the test that checks every configurable trait is in exactly one topic
(``tests/unit/test_config_reference.py``); the docs build fails too when the table and the classes disagree
(:func:`problems`).

Only the settings that dkrzspawner defines are listed: those of :class:`~dkrzspawner.spawner.DKRZSpawner`
(``c.DKRZSpawner.NAME``), of the kernel provisioner
:class:`~dkrzspawner.kernels.provisioner.SlurmProvisioner` (``c.SlurmProvisioner.NAME``) and of the JupyterLab
extension's server side :class:`~dkrzspawner.lab.config.DKRZLab` (``c.DKRZLab.NAME``). JupyterHub's inherited
``Spawner`` settings are documented by JupyterHub; the ones whose default dkrzspawner computes are named by
:func:`changed_defaults`. The classes are imported when first asked for, so importing this module runs nothing.
"""

from __future__ import annotations

import importlib
import inspect
import pprint
import sys
from dataclasses import dataclass

from traitlets import TraitType
from traitlets.traitlets import DefaultHandler


@dataclass(frozen=True)
class Section:
    """A configuration section, ``c.<name>``: the class whose settings it holds, and the class it inherits settings
    from that are documented elsewhere (JupyterHub's ``Spawner``, jupyter_client's provisioner base)."""

    name: str
    class_path: str  # "module:Class"
    base_path: str
    label_prefix: str  # the settings' reference labels: label_prefix + NAME

    @staticmethod
    def _load(path: str) -> type:
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def cls(self) -> type:
        """The class whose settings this section sets."""
        return self._load(self.class_path)

    @property
    def base(self) -> type:
        """The class whose settings are inherited and documented by its own project."""
        return self._load(self.base_path)


SPAWNER = Section("DKRZSpawner", "dkrzspawner.spawner:DKRZSpawner", "jupyterhub.spawner:Spawner", "config-")
PROVISIONER = Section("SlurmProvisioner", "dkrzspawner.kernels.provisioner:SlurmProvisioner",
                      "jupyter_client.provisioning:KernelProvisionerBase", "config-provisioner-")
LAB = Section("DKRZLab", "dkrzspawner.lab.config:DKRZLab", "traitlets.config:Configurable", "config-lab-")
SECTIONS = (SPAWNER, PROVISIONER, LAB)


@dataclass(frozen=True)
class Topic:
    """One page of the reference: a slug (the page's name and its label ``config-topic-SLUG``), a title, a
    paragraph for site admins and the settings of ``section`` in reading order."""

    slug: str
    title: str
    intro: str
    names: tuple[str, ...]
    section: Section = SPAWNER

    @property
    def label(self) -> str:
        """The reference label of the topic's page."""
        return f"config-topic-{self.slug}"


TOPICS: tuple[Topic, ...] = (
    Topic(
        "presets", "Presets and partitions",
        """What users can ask for. Presets are ready-made requests (a partition, a choice of cores, memory per
        core, a runtime); the Advanced tab offers the partitions Slurm reports, with Slurm's limits, which
        ``partitions`` can narrow, describe or hide, and ``advanced_options`` switches that tab off. Written in
        the site file (``site_config_file``), these settings and the policy and module ones are read alike by the
        hub and by the kernels, which then refuse exactly the same requests. How they fit together, with
        examples: :doc:`/admin/presets`.""",
        ("presets", "partitions", "advanced_options", "site_config_file"),
    ),
    Topic(
        "policy", "Group policy and maintenance",
        """Who may use what, by Unix or JupyterHub group: which presets, partitions and accounts, and how many
        servers may run at once, per user and per partition. Every request, from the form, a spawn URL or REST,
        is checked against it before anything is submitted. Maintenance refuses new servers with a message of
        yours while running ones go on; the file switches it on and off without a hub restart. Extending running
        servers is off by default (it needs the hub's Slurm account to be an operator). Examples and the
        refusals users read: :ref:`admin-policy`, :ref:`admin-maintenance` and :ref:`admin-extend`.""",
        ("policy", "maintenance_message", "maintenance_file", "extend_walltime", "extend_max_runtime"),
    ),
    Topic(
        "budgets", "Budgets",
        """The spawn form can show, next to a request's cost in core-hours, how many core-hours the chosen Slurm
        account has left in the budget period, from slurmdbd, and warn when the request would use more; Slurm
        alone decides whether a job runs. The accounts service shows users the same budgets
        (:doc:`/user/services`); its drop-in switches ``show_budgets`` on (:ref:`dropins`).""",
        ("show_budgets", "budget_period_start"),
    ),
    Topic(
        "slurm", "Slurm and timing",
        """How the hub talks to Slurm: the sudo prefix that runs a command as the user, how long one command may
        take and how many run at once, how often the one batched ``squeue`` for all jobs runs (faster while a job starts or stops),
        whether ``sacct`` can tell how a job ended, and how long Slurm's answers about partitions, free
        resources, accounts and reservations are kept. What this costs Slurm: :doc:`/admin/operations`; the
        sudoers rules: :doc:`/admin/install`.""",
        ("sudo_command", "slurm_timeout", "slurm_concurrency", "watch_interval", "watch_fast_interval", "watch_pending_interval",
         "watch_as_users", "watch_jitter", "accounting", "cluster_cache_ttl"),
    ),
    Topic(
        "job", "The job and its lifecycle",
        """The Slurm job that runs a user's Jupyter server: the environment it starts from, its batch script (a
        Jinja2 template a site can extend, see :ref:`admin-templates`), its output file, umask and name; then how
        long a start may take (the queue, then the server's first answer), how long a stop waits for Slurm, and
        what a user is shown when a job ends early. The timeouts in context: :doc:`/admin/operations`.""",
        ("job_prefix", "job_path", "bind_ip", "lean_job_start", "job_deferred_imports", "job_server_args",
         "batch_script_template", "template_paths", "output_path",
         "job_umask", "job_name_template", "queue_timeout", "server_timeout", "stop_timeout",
         "server_end_confirm", "output_tail_lines"),
    ),
    Topic(
        "modules", "Environment modules",
        """Environment modules (Lmod) that presets, partitions and Advanced requests load in the job: where Lmod
        is, which folders of modulefiles it reads, the shell file that defines ``module`` in the job, and how long
        the hub keeps the list of modules the cluster offers. With a site file, the first three belong in it.
        How modules are offered and loaded: :ref:`admin-modules`.""",
        ("lmod_command", "module_path", "modules_init", "modules_cache_ttl"),
    ),
    Topic(
        "kernels", "Kernels",
        """The Slurm kernel provisioner (``dkrz-slurm-provisioner``, see :doc:`/user/kernels`) runs in the
        user's Jupyter server, not in the hub: its settings go in that server's configuration, for example a
        ``jupyter_server_config.py`` in the job environment's ``etc/jupyter/``, as ``c.SlurmProvisioner.NAME``.
        Presets, partitions and policy come from the site file, which kernels read like the hub
        (:ref:`site-file`); the module settings here count only without one. Kernels the site provides:
        :doc:`/admin/kernels`.""",
        ("connection_dir", "slurm_timeout", "srun", "queue_poll_interval", "lmod_command", "module_path",
         "modules_init", "modules_cache_ttl"),
        PROVISIONER,
    ),
    Topic(
        "lab", "JupyterLab extension",
        """What the JupyterLab extension offers in the user's JupyterLab (see :doc:`/admin/lab`): like the
        provisioner's, these settings go in the Jupyter server's configuration in the job environment, for example
        a ``jupyter_server_config.py`` in its ``etc/jupyter/``, as ``c.DKRZLab.NAME``; they apply to every user of
        that environment.""",
        ("templates", "statusbar", "panel", "notify_minutes"),
        LAB,
    ),
)


@dataclass(frozen=True)
class Setting:
    """One configurable trait as the reference shows it: ``c.<section>.<name>``."""

    section: Section
    name: str
    trait: TraitType

    @property
    def label(self) -> str:
        """The reference label, ``config-NAME`` for the spawner's settings."""
        return self.section.label_prefix + self.name

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


def configurable(section: Section) -> dict[str, TraitType]:
    """The ``config=True`` traits of ``section``'s class, by name, less those it inherits from its base class."""
    inherited = section.base.class_traits(config=True)
    return {name: trait for name, trait in section.cls.class_traits(config=True).items()
            if inherited.get(name) is not trait}


def problems(topics: tuple[Topic, ...] = TOPICS) -> list[str]:
    """What keeps ``topics`` from listing every setting exactly once: a setting in no topic or in several, a
    topic naming a setting its section does not have, a slug used twice, an unknown section. Empty when the
    table is right."""
    found = []
    slugs = [topic.slug for topic in topics]
    found += [f"topic slug {slug!r} is used {slugs.count(slug)} times" for slug in sorted(set(slugs))
              if slugs.count(slug) > 1]
    found += [f"topic {topic.slug!r} is in no section of {[section.name for section in SECTIONS]}" for topic in topics
              if topic.section not in SECTIONS]
    for section in SECTIONS:
        traits = configurable(section)
        places: dict[str, list[str]] = {name: [] for name in traits}
        for topic in (topic for topic in topics if topic.section == section):
            for name in topic.names:
                if name in places:
                    places[name].append(topic.slug)
                else:
                    found.append(f"topic {topic.slug!r} names {section.name}.{name}, "
                                 "which dkrzspawner does not define")
        for name, slugs_of in sorted(places.items()):
            if len(slugs_of) != 1:
                where = f"in {len(slugs_of)} topics ({', '.join(slugs_of)})" if slugs_of else "in no topic"
                found.append(f"{section.name}.{name} is {where}")
    return found


def _checked() -> None:
    found = problems()
    if found:
        raise ValueError("The configuration reference's topics (config_reference.TOPICS) do not match the "
                         "settings: " + "; ".join(found))


def topic_by_slug(slug: str) -> Topic:
    """The topic of that slug; ValueError naming the slugs there are."""
    for candidate in TOPICS:
        if candidate.slug == slug:
            return candidate
    raise ValueError(f"no topic {slug!r} (topics: {', '.join(t.slug for t in TOPICS)})")


def settings(topic: Topic) -> list[Setting]:
    """The topic's settings, in its reading order; ValueError while :func:`problems` finds any."""
    _checked()
    traits = configurable(topic.section)
    return [Setting(topic.section, name, traits[name]) for name in topic.names]


def changed_defaults(section: Section = SPAWNER) -> list[str]:
    """Names of inherited (JupyterHub) settings whose default ``section``'s class computes."""
    inherited = section.base.class_traits(config=True)
    base_classes = set(section.base.__mro__)
    names = {value.trait_name for klass in section.cls.__mro__ if klass not in base_classes
             for value in vars(klass).values()
             if isinstance(value, DefaultHandler) and value.trait_name in inherited}
    return sorted(names)


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line if line else "" for line in text.splitlines())


def render_setting(setting: Setting) -> str:
    """One setting as reStructuredText: its label, a title, the line to set it, type, default and help."""
    if not setting.help:
        raise ValueError(f"{setting.section.name}.{setting.name} has no help text")
    title = f"``{setting.name}``"
    default = setting.default_text()
    lines = [
        f".. _{setting.label}:",
        "",
        title,
        "-" * len(title),
        "",
        f":Setting: ``c.{setting.section.name}.{setting.name}``",
        f":Type: ``{setting.type_name}``",
    ]
    if "\n" in default:
        lines += [":Default: see below", "", setting.help, "", "Default:", "", ".. code-block:: python", "",
                  _indent(default), ""]
    else:
        lines += [f":Default: ``{default}``", "", setting.help, ""]
    return "\n".join(lines)


def render_topic(slug: str) -> str:
    """One topic's page as reStructuredText: its label and title, the paragraph, then each setting."""
    chosen = topic_by_slug(slug)
    heading = [f".. _{chosen.label}:", "", chosen.title, "=" * len(chosen.title), "", inspect.cleandoc(chosen.intro),
               ""]
    return "\n".join(heading + [render_setting(setting) for setting in settings(chosen)])


def render_index() -> str:
    """Every setting from A to Z with its topic, then the JupyterHub settings whose default dkrzspawner computes."""
    rows = sorted(((setting, chosen) for chosen in TOPICS for setting in settings(chosen)),
                  key=lambda row: (row[0].name, row[0].section.name))
    lines = ["All settings", "------------", "", ".. list-table::", "   :header-rows: 1", "   :widths: 1 1", "",
             "   * - Setting", "     - Topic"]
    for setting, chosen in rows:
        lines += [f"   * - :ref:`c.{setting.section.name}.{setting.name} <{setting.label}>`",
                  f"     - :ref:`{chosen.title} <{chosen.label}>`"]
    inherited = changed_defaults()
    if inherited:
        heading = "JupyterHub settings with a different default"
        names = ", ".join(f"``{name}``" for name in inherited)
        lines += ["", heading, "-" * len(heading), "",
                  f"{SPAWNER.name} computes the default of these settings of JupyterHub's ``Spawner``: {names}. "
                  "Setting them yourself overrides what it computes.", ""]
    return "\n".join(lines)
