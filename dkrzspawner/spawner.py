"""DKRZSpawner: the JupyterHub glue. Its settings (by topic), its state, and hooks of a few lines each.

A spawn's data flows one way: the form or a REST body -> :meth:`DKRZSpawner.validate_options` (the user's
:class:`~dkrzspawner.siteconfig.Offer`, validated once in ``apply_user_options``; the :class:`JobRequest` is kept)
-> :mod:`dkrzspawner.script` (the batch script) -> :class:`~dkrzspawner.lifecycle.ServerJob` (pre-flight,
submission, queue, port, serving; the end; cancelling) -> :mod:`dkrzspawner.slurm` and the hub's
:class:`~dkrzspawner.watcher.JobWatcher`. The shared parts come from :data:`~dkrzspawner.registry.REGISTRY`.

The only modules that import JupyterHub are this one, :mod:`dkrzspawner.handlers` and :mod:`dkrzspawner.errors`.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import html
import os
import pwd
import re
import secrets
import sys
import time
import urllib.parse
from urllib.parse import unquote, urlparse

from jupyterhub.spawner import Spawner
from sqlalchemy.orm import object_session
from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, default, observe, validate

from . import (extension, form, handlers, jobcerts, metrics, options, policy, reasons, recent, schema, script,
               siteconfig)
from .offer import Offer
from .errors import SpawnLinkToConfirm, spawn_error
from .lifecycle import JobRecord, ServerJob, StartFailed, Submission, Timeouts
from .recent import RecentJob, RecentJobs
from .registry import REGISTRY
from .slurm import BadUserName, SlurmError, check_user_name, job_info, set_time_limit
from .units import format_runtime, runtime_seconds
from .modules import ModuleSettings


class DKRZSpawner(ModuleSettings, Spawner):
    """Starts each Jupyter server as a Slurm job of the user, from a preset or an advanced request."""

    # == presets, partitions and the site file ===============================================================
    presets = Dict(
        default_value=options.DKRZ_PRESETS,
        help="""Presets offered to users, by name (a lower-case slug, used in ``user_options["preset"]``).

        Each value has ``display_name``, ``description``, ``partition``, ``cores`` (the choices, the first is
        the default), ``memory_per_core`` (Slurm units, e.g. ``2500M``), ``runtime`` (default walltime),
        ``max_runtime`` and ``modules`` (environment modules the job loads, in order, after the partition's).
        The default is DKRZ's ``shared`` and ``prepost`` with 1, 2 or 4 cores and 2.5 GB per core.
        """,
    ).tag(config=True)

    partitions = Dict(
        help="""Adjust the partitions Slurm reports, by partition name; ``"*"`` applies to every partition.

        Each value may have ``hidden`` (not offered in the Advanced tab; presets may still use it),
        ``display_name``, ``description`` and ``hint`` (shown in the form), the limits ``max_nodes``,
        ``max_cores`` (per node), ``max_memory`` (per node, Slurm units), ``max_gpus`` (per node; 0 hides the
        GPU field for that partition) and ``max_runtime``, the defaults ``default_runtime``,
        ``default_cores`` and ``memory_per_core``, and ``modules`` (environment modules every job in the
        partition loads first). Limits only tighten what Slurm allows. Example::

            c.DKRZSpawner.partitions = {
                "*": {"max_gpus": 0},
                "gpu": {"max_gpus": 2, "description": "Nodes with GPUs"},
                "compute": {"hidden": True},
            }
        """,
    ).tag(config=True)

    advanced_options = Bool(
        True,
        help="""Offer the Advanced tab (a partition with nodes, cores, memory, GPUs, runtime, reservation) next
        to the presets. When False, only presets are accepted, from the form and from REST alike.""",
    ).tag(config=True)

    site_config_file = Unicode(
        "",
        help="""A TOML file (an absolute path) with the settings that decide what users may ask for, written once
        for the hub and the kernels: ``presets``, ``partitions``, ``policy``, ``advanced_options``,
        ``lmod_command``, ``module_path`` and ``modules_init``, under the names of the settings here (the
        package ships an example, ``share/site.toml.example``). The whole file is checked when the hub creates
        a user's spawner; a mistake is one sentence naming the file and the entry. The hub reads it once per
        process: restart the hub after changing it.

        Each job gets the path in ``DKRZSPAWNER_SITE_CONFIG`` (and the user's hub groups that the policy
        names in ``DKRZSPAWNER_HUB_GROUPS``), so that ``dkrz-kernel`` in the server's terminal and the Slurm
        kernel provisioner in the server check kernels against the same presets, partitions and policy; the
        file must be readable by the users on the compute nodes. With a file, these settings belong in it
        alone: setting one of them in the hub's configuration as well is refused, naming it. Empty (the
        default): the settings come from the hub's configuration, and kernels read
        ``/etc/dkrzspawner/site.toml`` if it exists, else use the built-in defaults.""",
    ).tag(config=True)

    # == group policy and maintenance ========================================================================
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

    extend_walltime = Bool(
        False,
        help="""Let users extend their running server's walltime (``POST /hub/api/dkrzspawner/extend``) within
        the partition's longest runtime, ``extend_max_runtime`` and the core-hours their job's account has left.
        Needs the hub's Slurm account to be a Slurm operator (``sacctmgr modify user NAME set
        adminlevel=operator``), which lets that account change and cancel every job of the cluster: read the
        security page first. Off by default.""",
    ).tag(config=True)

    extend_max_runtime = Dict(
        {},
        help="""The longest total runtime (``[D-]HH:MM:SS``) an extended server may reach, by partition name
        (``"*"``: every partition without an entry of its own); the partition's own longest runtime holds as
        well. Empty (the default): only the partition's.""",
    ).tag(config=True)

    # == budgets =============================================================================================
    show_budgets = Bool(
        False,
        help="""Show, next to the request's cost, the core-hours the chosen Slurm account has left, and warn when
        the request would use more. From slurmdbd (the accounts' ``GrpTRESMins`` and ``sacct``'s usage since
        ``budget_period_start``), cached like the other cluster facts. The accounts service's drop-in
        (the drop-in ``accounts``) switches it on. A warning only: Slurm decides.""",
    ).tag(config=True)

    budget_period_start = Unicode(
        "",
        help="""Start of the budget period for ``show_budgets``, an ISO date (``2026-01-01``); usage counts
        from there. Empty: 1 January of the current year.""",
    ).tag(config=True)

    # == Slurm and timing ====================================================================================
    sudo_command = List(
        ["sudo", "-n"],
        help="""Command prefix that runs a Slurm command as the user; ``-u USER`` and
        ``--preserve-env=NAMES`` are added. Never pass the whole environment (sudo's -E option): only the
        job's explicit names pass. The sudoers drop-in ``share/sudoers.d/dkrzspawner`` allows exactly what the
        spawner runs this way.""",
    ).tag(config=True)

    slurm_timeout = Float(
        30.0,
        help="Seconds any single Slurm command may take before it is stopped and counted as unanswered.",
    ).tag(config=True)

    slurm_concurrency = Integer(
        16,
        min=0,
        help="""The most Slurm commands (``sbatch``, its ``--test-only`` pre-flight, ``squeue``, ``sacctmgr``,
        ...) the hub runs at once, for all users together; more wait their turn, first come first served, and
        their ``slurm_timeout`` starts when they run. A class that logs in at once then reaches slurmctld,
        slurmdbd and sudo as a steady stream. 0: no bound.""",
    ).tag(config=True)

    watch_interval = Float(
        30.0,
        help="Seconds between the hub's batched Slurm queries while no job is starting or stopping.",
    ).tag(config=True)

    watch_fast_interval = Float(
        1.0,
        help="Seconds between the batched queries while any job is starting or stopping (still one query).",
    ).tag(config=True)

    watch_pending_interval = Float(
        5.0,
        help="""Seconds between the batched queries while starting jobs only wait in the queue. The server
        reports its port itself, so this only sets how soon the progress page shows a new pending reason.""",
    ).tag(config=True)

    watch_as_users = Bool(
        False,
        help="""Ask Slurm about each job as its owner (one ``squeue`` per user with jobs, through sudo) instead
        of one ``squeue`` for all jobs as the hub's account. Needed with ``PrivateData=jobs`` when the hub's
        account is not a Slurm operator; the better fix is ``sacctmgr modify user HUBACCOUNT set
        adminlevel=operator``, which keeps one query per interval.""",
    ).tag(config=True)

    watch_jitter = Float(
        0.1,
        help="Random fraction (plus or minus) applied to each interval, so hubs do not poll in lockstep.",
    ).tag(config=True)

    accounting = Bool(
        True,
        help="""Whether Slurm accounting (slurmdbd) is available: ``sacct`` then tells how a job ended once
        slurmctld has forgotten it. Without it, a job missing from two successful queries counts as ended.""",
    ).tag(config=True)

    cluster_cache_ttl = Float(
        60.0,
        help="""Seconds the hub keeps Slurm's answers about partitions, free resources, users' accounts and
        reservations. All spawners share them, and concurrent requests share one query, so the form costs
        Slurm at most one ``scontrol``, one ``sinfo`` and one ``sacctmgr`` per user per this many seconds.""",
    ).tag(config=True)

    # == the job =============================================================================================
    job_prefix = Unicode(
        sys.prefix,
        help="""Prefix of the Python environment on the compute nodes that holds jupyterhub-singleuser and
        dkrzspawner. Relative commands in ``Spawner.cmd`` are looked up in its ``bin/``. Default: the hub's
        own environment (``sys.prefix``), which must then be readable by the users on the compute nodes.
        """,
    ).tag(config=True)

    job_path = Unicode(
        "/usr/local/bin:/usr/bin:/bin",
        help="PATH inside the job, after the job environment's ``bin/``.",
    ).tag(config=True)

    bind_ip = Unicode(
        "0.0.0.0",
        help="Address the Jupyter server binds on the compute node; the hub connects to the node's name.",
    ).tag(config=True)

    lean_job_start = Bool(
        True,
        help="""Start the job's ``jupyterhub-singleuser`` through ``dkrzspawner-leanstart``, which defers
        the imports listed in ``job_deferred_imports`` to their first use, and pass it ``job_server_args``: the
        server answers sooner (see :ref:`admin-lean-start`). Off, or with a ``Spawner.cmd`` other than
        ``jupyterhub-singleuser``: the job runs ``Spawner.cmd`` as JupyterHub would, behind the wrapper that
        reports the port. The job environment (``job_prefix``) needs this dkrzspawner version or later.""",
    ).tag(config=True)

    job_deferred_imports = List(
        Unicode(),
        ["rfc3987_syntax"],
        help="""Modules that the lean start replaces by a stand-in until one of their functions is first called
        (each must be used only through its functions). The default, ``rfc3987_syntax``, is jsonschema's ``iri``
        format check, whose import builds a grammar (about a second) that no schema the server loads asks for.""",
    ).tag(config=True)

    job_server_args = List(
        Unicode(),
        ["--ServerApp.jpserver_extensions=jupyter_lsp=False",
         "--ServerApp.jpserver_extensions=notebook_shim=False",
         "--LabApp.extension_manager=readonly"],
        help="""Arguments the lean start gives the Jupyter server before ``Spawner.args`` (which can override
        them). The default switches off what a hub user cannot use in the job: ``jupyter_lsp`` (the job
        environment has no language servers), ``notebook_shim`` (no classic notebook server), and JupyterLab's
        PyPI extension manager (users cannot install into the shared environment; the read-only manager still
        lists what is installed). Set to ``[]`` to keep jupyter_server's and JupyterLab's defaults.""",
    ).tag(config=True)

    batch_script_template = Unicode(
        "batch_script.sh.j2",
        help="Name of the Jinja2 batch-script template, looked up in ``template_paths`` then the package's own.",
    ).tag(config=True)

    template_paths = List(
        Unicode(),
        help="Folders searched first for templates, so that sites can override a template or one of its blocks.",
    ).tag(config=True)

    output_path = Unicode(
        "{home}/.jupyterhub-slurm-%j.log",
        help="""The job's output file (``#SBATCH --output``). ``{home}`` and ``{username}`` are filled in by the
        hub; Slurm's own patterns such as ``%j`` (job id) and ``%x`` (job name) are left to Slurm. The folder
        must exist. Its last lines are shown to the user when a job ends before its server answers.""",
    ).tag(config=True)

    job_umask = Unicode(
        "0022",
        help="""The umask of the Jupyter server and everything it starts (octal, e.g. ``0027``). The job is
        submitted with umask 0077, so that Slurm creates its output file for the user alone; the batch script
        then sets this one before the server starts.""",
    ).tag(config=True)

    job_name_template = Unicode(
        "jupyterhub-{server}",
        help="Slurm job name; ``{server}`` is the named server's name or ``default``, ``{username}`` the user.",
    ).tag(config=True)

    # == the lifecycle =======================================================================================
    queue_timeout = Float(
        3600.0,
        help="""Seconds a job may wait in the queue before the spawn gives up and cancels it. Queue time is not
        counted against the server's start-up (``server_timeout``).""",
    ).tag(config=True)

    server_timeout = Float(
        300.0,
        help="Seconds from the job starting to run until its Jupyter server must answer.",
    ).tag(config=True)

    stop_timeout = Float(
        60.0,
        help="Seconds ``stop()`` waits for Slurm to confirm that a cancelled job has ended.",
    ).tag(config=True)

    server_end_confirm = Float(
        60.0,
        help="""Seconds the hub asks Slurm at the fast cadence (``watch_fast_interval``) after a job side said
        its server ended, until Slurm confirms the job's end; the route is dropped then, not at the next
        ``watch_interval``.""",
    ).tag(config=True)

    output_tail_lines = Integer(
        20,
        help="How many lines of a failed job's output the user is shown.",
    ).tag(config=True)

    # == checks and computed defaults ===========================================================================
    @validate("job_umask")
    def _octal_umask(self, proposal):
        if not re.fullmatch(r"0?[0-7]{3}", proposal.value):
            raise TraitError(f"job_umask must be an octal umask such as 0022, not {proposal.value!r}")
        return proposal.value

    @validate("extend_max_runtime")
    def _runtimes_by_partition(self, proposal):
        for key, value in proposal.value.items():
            try:
                runtime_seconds(value)
            except ValueError:
                raise TraitError(f"extend_max_runtime[{key!r}] must be a runtime such as 1-00:00:00, "
                                 f"not {value!r}") from None
        return proposal.value

    @validate("site_config_file")
    def _absolute_site_file(self, proposal):
        if proposal.value and not os.path.isabs(proposal.value):
            raise TraitError(f"site_config_file must be an absolute path (jobs read it elsewhere), not "
                             f"{proposal.value!r}")
        return proposal.value

    @default("start_timeout")
    def _start_timeout_default(self):
        # JupyterHub's own limit must not cut the queue wait short: ours are queue_timeout + server_timeout.
        return int(self.queue_timeout + self.server_timeout + 60)

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return DKRZSpawner._apply_options

    @default("options_form")
    def _options_form_default(self):
        return _options_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return _options_from_form

    @default("ssl_alt_names")
    def _ssl_alt_names_default(self):
        return DKRZSpawner._node_alt_names

    @default("server_token_scopes")
    def _server_token_scopes_default(self):
        return DKRZSpawner._token_scopes

    @observe("presets", "partitions", "policy")
    def _settings_changed(self, change):
        if self._checked is not None:  # a change after the config was read: checked at once too
            self._checked = None
            self.site_settings()

    # == state ==================================================================================================
    token_digest = Unicode(None, allow_none=True, help="SHA-256 of the server's API token (state).")

    #: the checked presets, partition settings and group policy (:meth:`site_settings`)
    _checked: siteconfig.SiteConfig | None = None
    #: the request that ``apply_user_options`` validated for the coming ``start()``
    job_request: options.JobRequest | None = None
    #: with internal_ssl, the server's key, certificate and CA bundle for the job's environment (``move_certs``)
    _job_certs: dict[str, str] = {}
    #: the task that asks Slurm after the job side said the server ended (a reference, so it runs to its end)
    _end_confirmation: asyncio.Future | None = None
    _life: ServerJob | None = None
    #: the request of the current start and its ``user_options``, for its entry in the recent jobs
    _starting: tuple[options.JobRequest, dict] | None = None

    def __init__(self, **kwargs):
        self.record = JobRecord()
        super().__init__(**kwargs)
        if self.site_config_file:
            siteconfig.apply(self, REGISTRY.site(self.site_config_file), siteconfig.SETTINGS)
        else:
            self._warn_kernels_differ()
        self.site_settings()  # a mistake in presets, partitions or policy is said now, naming the entry
        REGISTRY.spawners.add(self)
        if not handlers.registered() and REGISTRY.once("handlers missing"):
            self.log.error("The hub has no API handler for the job side's port report: load the spawner as "
                           'c.JupyterHub.spawner_class = "dkrz" (or "dkrzspawner.DKRZSpawner"), not by its module')

    def _warn_hub_unreachable_from_nodes(self) -> None:
        """Jobs run on compute nodes: a hub API on a loopback address is the node's own there (once per hub)."""
        host = urllib.parse.urlsplit(self.hub.api_url).hostname or ""
        if (host == "localhost" or host.startswith("127.") or host == "::1") and REGISTRY.once("hub on loopback"):
            self.log.warning("The hub's API is at %s, a loopback address: the Jupyter servers' jobs run on compute "
                             "nodes and cannot reach it there. Set c.JupyterHub.hub_connect_ip (or hub_bind_url) "
                             "to an address of this host that the compute nodes reach.", self.hub.api_url)

    def load_state(self, state):
        super().load_state(state)
        self.record.load(state)
        self.token_digest = state.get("token_digest", self.token_digest)
        self.life.watch()

    def get_state(self):
        state = super().get_state()
        state.update(self.record.to_state())
        if self.token_digest:
            state["token_digest"] = self.token_digest
        return state

    def clear_state(self):
        super().clear_state()
        if self.record.job_id:
            self.watcher.unwatch(self.record.job_id)
        self.record.forget_job()
        self.token_digest = None

    def _save_state(self):
        """Persist the record at once, so a hub restart during the queue wait finds the job (through the session
        holding the server's row: ``Spawner.db`` is deprecated, and a class of spawns would each log so)."""
        session = object_session(self.orm_spawner) if self.orm_spawner is not None else None
        if session is None:
            return
        self.orm_spawner.state = self.get_state()
        session.commit()

    @property
    def job_id(self) -> str | None:
        """The Slurm job of the current server."""
        return self.record.job_id

    @property
    def job_partition(self) -> str | None:
        """The partition of the current server's request."""
        return self.record.job_partition

    @property
    def estimated_start(self) -> str | None:
        """Slurm's estimated start from the pre-flight of the current start, or None."""
        return self.life.estimated_start

    @property
    def start_estimate_text(self) -> str:
        """``expected to start at 05:40 (in 12 min)``, or '' without an estimate (the progress page)."""
        return reasons.describe_start(self.estimated_start) if self.estimated_start else ""

    # == shared parts ===========================================================================================
    @property
    def runner(self):
        return REGISTRY.runner(sudo=self.sudo_command, timeout=self.slurm_timeout, log=self.log,
                               concurrency=self.slurm_concurrency or None)

    @property
    def watcher(self):
        return REGISTRY.watcher(self.runner, interval=self.watch_interval, fast_interval=self.watch_fast_interval,
                                pending_interval=self.watch_pending_interval, jitter=self.watch_jitter,
                                accounting=self.accounting, as_users=self.watch_as_users, log=self.log)

    @property
    def cluster(self):
        """The hub-wide cache of Slurm's answers about partitions, accounts and reservations."""
        return REGISTRY.cluster(self.runner, ttl=self.cluster_cache_ttl, timeout=self.slurm_timeout)

    @property
    def module_catalog(self):
        """The hub-wide cache of the modules the cluster offers."""
        return REGISTRY.modules(self.runner, self, timeout=self.slurm_timeout)

    @property
    def life(self) -> ServerJob:
        """This server's job: start attempts, the end, cancelling (:mod:`dkrzspawner.lifecycle`)."""
        if self._life is None:
            self._life = ServerJob(
                self.runner, self.watcher, self.record, user=self.user.name, accounting=self.accounting,
                timeouts=Timeouts(queue=self.queue_timeout, server=self.server_timeout, stop=self.stop_timeout,
                                  end_confirm=self.server_end_confirm),
                tail_lines=self.output_tail_lines, on_record=self._save_state, on_over=self._job_over,
                on_submitted=self._job_submitted, on_end=self._job_ended, log=self.log, name=self._log_name)
        return self._life

    # == the recent jobs (dkrzspawner.recent) ===================================================================
    @property
    def recent_jobs(self) -> RecentJobs | None:
        """The user's recent jobs in the hub's database, through the hub's own session (the one holding the
        user's row; ``Spawner.db`` is deprecated); None outside a hub."""
        orm_user = getattr(self.user, "orm_user", None)
        session = object_session(orm_user) if orm_user is not None else None
        if session is None or self._user_id() is None:
            return None
        return REGISTRY.recent(session)

    def _user_id(self) -> int | None:
        return getattr(getattr(self.user, "orm_user", None), "id", None)

    def _remember(self, what: str, change) -> None:
        """Run ``change(ledger, user_id)``; a database failure is logged, never the spawn's or the stop's."""
        ledger = None
        try:
            ledger = self.recent_jobs
            if ledger is not None:
                change(ledger, self._user_id())
        except Exception as exc:  # the hub's database went away or refused: the server itself is not affected
            self.log.warning("%s: the recent jobs could not be updated (%s): %s", self._log_name, what, exc)
            if ledger is not None:
                ledger.session.rollback()

    def _job_submitted(self, job_id: str) -> None:
        if self._starting is None:
            return
        request, user_options = self._starting
        entry = RecentJob(job_id=job_id, server=self.name, user_options=user_options,
                          summary=recent.describe(request), cores=request.total_cores,
                          submitted=recent.now())
        self._remember(f"job {job_id} submitted", lambda ledger, user_id: ledger.submitted(user_id, entry))

    def _job_ended(self, end: dict) -> None:
        def change(ledger, user_id):
            entry = ledger.get(user_id, end["job_id"])
            if entry is None:
                return
            ledger.update(user_id, end["job_id"], started=end["started"], ended=recent.now(), state=end["state"],
                          end_reason=end["reason"], core_hours=recent.core_hours(entry.cores, end["elapsed"]),
                          output_tail=end["tail"] if end["state"] not in recent.CLEAN_ENDS and end["tail"] else None)
        self._remember(f"job {end['job_id']} ended", change)

    def _recent_list(self) -> list[RecentJob]:
        """The user's recent jobs, newest first; [] (logged) when the database cannot say."""
        try:
            ledger = self.recent_jobs
            return ledger.list(self._user_id()) if ledger is not None else []
        except Exception as exc:  # the page and the form go on without them
            self.log.warning("%s: the recent jobs could not be read: %s", self._log_name, exc)
            return []

    def recent_options(self) -> tuple[dict, str] | None:
        """The ``user_options`` of this user's most recent job (any server) and that server's name, or None."""
        jobs = self._recent_list()
        return (jobs[0].user_options, jobs[0].server) if jobs else None

    def recent_servers(self) -> list[dict]:
        """The user's recent jobs for the home page and the API, newest first: each entry's fields
        (:class:`~dkrzspawner.recent.RecentJob`), ``start_again`` (the spawn link that fills in the form with its
        options) and ``active`` (a server of that name is starting or running now)."""
        jobs = self._recent_list()
        active = {name for name, spawner in self.user.spawners.items() if spawner.active}
        running = {spawner.record.job_id: spawner.record.job_started for spawner in self.user.spawners.values()
                   if getattr(spawner, "record", None) is not None and spawner.record.job_id}
        for job in jobs:  # a running job's start is in its server's record until it ends
            job.started = job.started or running.get(job.job_id)
        return [dict(job.as_dict(), active=job.server in active, failed=job.failed,
                     start_again=recent.start_again_url(self.hub.base_url, self.user.name, job.server,
                                                        job.user_options))
                for job in jobs]

    # == what this user is offered ==============================================================================
    def site_settings(self) -> siteconfig.SiteConfig:
        """The presets, partition settings and group policy, checked once (a mistake names the entry)."""
        if self._checked is None:
            self._checked = siteconfig.checked(
                {"presets": self.presets, "partitions": self.partitions, "policy": self.policy,
                 "advanced_options": self.advanced_options}, self.site_config_file)
        return self._checked

    async def offer(self) -> Offer:
        """What this user is offered now: the site's settings, their groups' policy and what Slurm says (a part
        Slurm did not answer for is left out; never raises for Slurm). Built once per validation or form."""
        hub_groups = [group.name for group in getattr(self.user, "groups", None) or ()]
        offer = self.site_settings().offer_for(self.user.name, hub_groups)
        snapshot = await self.cluster.snapshot(self.user.name)
        return offer.with_cluster(snapshot, modules=await self.module_catalog.offered(self.log))

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

    def _check_server_counts(self, offer: Offer, partition: str) -> None:
        """Refuse this server when the user or ``partition`` has as many active servers as the policy allows."""
        checked = self.site_settings().policy
        mine, in_partition = [], 0
        if offer.allowance.max_servers is not None:  # counted only where a limit applies
            mine = [s.name for s in self.user.spawners.values() if s is not self and s.active]
        if partition in checked.max_servers_per_partition:
            in_partition = sum(1 for s in list(REGISTRY.spawners)
                               if s is not self and s.active and s.job_partition == partition)
        policy.check_server_counts(offer.allowance, checked, partition, mine, in_partition)

    async def budgets(self) -> dict[str, dict]:
        """Budget per account of the user (the accounts service's fields), or {} when off or Slurm is silent."""
        if not self.show_budgets:
            return {}
        ledger = REGISTRY.budgets(self.runner, ttl=self.cluster_cache_ttl, timeout=self.slurm_timeout,
                                  period=self.budget_period_start)
        try:
            statement = await ledger.statement(self.user.name)
        except SlurmError as exc:
            self.log.warning("%s: no account budgets for the form (%s)", self._log_name, exc.reason)
            return {}
        return {budget.account: budget.as_dict() for budget in statement.budgets}

    def _warn_kernels_differ(self) -> None:
        """Say once per process that kernels cannot see what the hub's configuration sets."""
        own = [where for where in (siteconfig.configured(self, name) for name in siteconfig.SETTINGS) if where]
        if own and REGISTRY.once("kernels differ: " + ", ".join(own)):
            fallback = siteconfig.DEFAULT_PATH if os.path.exists(siteconfig.DEFAULT_PATH) else "the built-in defaults"
            self.log.warning("%s: kernels (dkrz-kernel, the Slurm kernel provisioner) do not see these and go by %s; "
                             "move them into a site file (c.DKRZSpawner.site_config_file) so both check the same",
                             ", ".join(own), fallback)

    # == the one validation =====================================================================================
    async def validate_options(self, user_options) -> options.JobRequest:
        """The one validation path for form, REST and URL options; raises a user-facing 400 error."""
        notice = self.maintenance()
        if notice:
            raise spawn_error(notice, reason="maintenance", status_code=503)
        try:
            check_user_name(self.user.name)
        except BadUserName as exc:
            raise spawn_error(str(exc), reason="invalid_user", status_code=403) from None
        offer = await self.offer()
        try:
            request = offer.validate(user_options)
            self._check_server_counts(offer, request.partition)
        except options.OptionsError as exc:
            raise spawn_error(str(exc), reason="invalid_options") from None
        return request

    @staticmethod
    async def _apply_options(spawner, user_options):
        """``Spawner.apply_user_options``: validate once; ``start()`` submits this very request."""
        spawner.job_request = await spawner.validate_options(user_options)

    async def options_schema(self) -> dict:
        """The JSON Schema of the ``user_options`` this user may send (:mod:`dkrzspawner.schema`), from the same
        offer as the validation; :class:`~dkrzspawner.slurm.BadUserName` for a name no command may carry."""
        check_user_name(self.user.name)
        return schema.options_schema(await self.offer())

    # == the form and spawn links ===============================================================================
    async def render_options_form(self) -> str:
        """This server's form, with what the policy lets this user use, a spawn link's options or else its last
        options preselected (re-validated; defaults where they fail), and the maintenance message if spawns are
        closed."""
        try:
            check_user_name(self.user.name)
        except BadUserName as exc:  # no Slurm command for this name: no form either, only why
            return f'<p class="alert alert-danger" id="dkrz-spawn-error">{html.escape(str(exc))}</p>'
        offer = await self.offer()
        link = self.link_options()
        last, remembered_from = self.last_user_options(), ""
        if not link and not last and self.name:  # a new named server: the user's most recent options
            last, server = self.recent_options() or (None, None)
            remembered_from = "" if server is None else server or "default"
        selected = form.preselect(link or last, offer.presets, offer.facts)
        selected["remembered_from"] = remembered_from
        if link:  # the link's options, not this server's last ones (the notice above the form says so)
            selected["remembered"] = False
        context = form.context(presets=offer.presets, facts=offer.facts, selected=selected, server_name=self.name,
                               refresh_seconds=self.cluster_cache_ttl, budgets=await self.budgets(),
                               maintenance=self.maintenance())
        return form.render(context, extra_paths=self.template_paths)

    def last_user_options(self):
        """The options this server was last started (or refused) with; JupyterHub keeps them in its database."""
        return self.orm_spawner.user_options if self.orm_spawner is not None else None

    async def options_from_query(self, query_data):
        """Spawn links (``/hub/spawn?opt-preset=shared&opt-cores=2``) pre-fill the form and never start a job
        by themselves: a top-level GET can come from a link on any web page. The link's options are validated
        as any request (a refusal is shown on the form, naming the field); then
        :class:`~dkrzspawner.errors.SpawnLinkToConfirm` is raised: JupyterHub shows the form, which
        :meth:`render_options_form` fills in from the link, and the user confirms with Start."""
        try:
            user_options = form.options_from_query(query_data)
        except options.OptionsError as exc:
            raise spawn_error(str(exc), reason="invalid_options") from None
        await self.validate_options(user_options)
        self.log.info("%s: a spawn link pre-fills the form; the user confirms with Start", self._log_name)
        raise SpawnLinkToConfirm()

    def link_options(self):
        """The ``user_options`` of the spawn link this form is shown for (``?opt-...`` of the current GET of
        the spawn page), or None. JupyterHub sets ``handler`` on the spawner before it renders the form."""
        request = getattr(getattr(self, "handler", None), "request", None)
        if request is None or request.method != "GET" or not request.query_arguments:
            return None
        query = {key: [value.decode("utf8", "replace") for value in values]
                 for key, values in request.query_arguments.items() if key not in ("next", "display_name")}
        prefixed = {key[4:]: value for key, value in query.items() if key.startswith("opt-") and key[4:]}
        try:
            return form.options_from_query(prefixed or query) or None
        except options.OptionsError:
            return None

    async def options_form_for_url(self, url: str) -> str:
        """The form of the server a ``/hub/spawn/<user>/<server>`` URL is about.

        Our ``spawn.html`` calls this after a refused request: JupyterHub 6.1 re-renders the form of the
        user's default server there, whichever named server the request was for.
        """
        target = self._spawner_for_url(url) or self
        return await target.render_options_form()

    def _spawner_for_url(self, url: str):
        prefix = self.hub.base_url.rstrip("/") + "/spawn"
        path = urlparse(url).path
        if not path.startswith(prefix):
            return None
        parts = [unquote(part) for part in path[len(prefix):].strip("/").split("/") if part]
        user_name = parts[0] if parts else self.user.name
        server_name = parts[1] if len(parts) > 1 else ""
        if user_name != self.user.name or server_name == self.name:
            return None
        if server_name and server_name not in self.user.orm_spawners:
            return None
        return self.user.spawners[server_name]

    # == the job's text =========================================================================================
    @property
    def server_label(self) -> str:
        """The server's name as it may appear in a job name and tag (JupyterHub 5 allows any name)."""
        return re.sub(r"[^A-Za-z0-9_.-]", "-", self.name)[:40] or "default"

    @property
    def job_name(self) -> str:
        return self.job_name_template.format(server=self.server_label, username=self.user.name)

    def _home(self) -> str:
        try:
            return pwd.getpwnam(self.user.name).pw_dir
        except KeyError:
            raise spawn_error(f"User {self.user.name} has no Unix account on this system.", reason="no_account")

    def _command(self) -> list[str]:
        """The job's command line. The job side's two steps are the environment's console scripts, not ``python
        -m``, which would put the job's working directory (the user's home) first on ``sys.path``: a
        ``~/socket.py`` would then stop the user's every server before it started."""
        prefix = self.job_prefix.rstrip("/")
        cmd = [c if "/" in c else f"{prefix}/bin/{c}" for c in self.cmd[:1]] + list(self.cmd[1:])
        if self.lean_job_start and os.path.basename(cmd[0]) == "jupyterhub-singleuser":
            deferred = [arg for name in self.job_deferred_imports for arg in ("--defer", name)]
            cmd = [f"{prefix}/bin/dkrzspawner-leanstart", *deferred, "--", *cmd, *self.job_server_args]
        return [f"{prefix}/bin/dkrzspawner-singleuser", "--", *cmd, *self.get_args()]

    def _job_env(self, home: str) -> dict[str, str]:
        env = {k: str(v) for k, v in self.get_env().items()}
        env.update(HOME=home, USER=self.user.name, LOGNAME=self.user.name, DKRZSPAWNER_BIND_IP=self.bind_ip)
        env.update(self.site_environment())
        env.update(self._job_certs)
        return env

    def site_environment(self) -> dict[str, str]:
        """The job's variables that lead its kernels to this hub's site file and the user's hub groups."""
        if not self.site_config_file:
            return {}
        env = {siteconfig.ENV_PATH: self.site_config_file}
        hub_groups = [group.name for group in getattr(self.user, "groups", None) or ()]
        groups = siteconfig.hub_groups_value(hub_groups, self.site_settings().policy)
        if groups:
            env[siteconfig.ENV_HUB_GROUPS] = groups
        return env

    def _output_file(self, home: str) -> str:
        return self.output_path.format(home=home, username=self.user.name)

    def submission(self, request: options.JobRequest) -> Submission:
        """``request`` as the job to submit: the batch script, its environment, its tag."""
        home = self._home()
        env = self._job_env(home)
        tag = f"dkrzspawner:{self.user.name}:{self.server_label}:{secrets.token_hex(6)}"
        output = self._output_file(home)
        text = script.render(
            self.batch_script_template, request=request, job_name=self.job_name, comment=tag, output=output,
            workdir=home, export_names=env.keys(), path=f"{self.job_prefix.rstrip('/')}/bin:{self.job_path}",
            command=self._command(), modules_init=self.modules_init, module_path=self.module_path,
            extra_paths=self.template_paths, umask=self.job_umask,
        )
        self.log.debug("Batch script for %s:\n%s", self._log_name, text)
        return Submission(user=self.user.name, script=text, env=env, tag=tag, partition=request.partition,
                          job_name=self.job_name, output=output,
                          summary=f"partition {request.partition}, {request.shape}, walltime {request.runtime}")

    # -- internal_ssl (see jobcerts) ---------------------------------------------------------------------------
    @staticmethod
    async def _node_alt_names(spawner) -> list[str]:
        """Every node of the cluster, and the hub's ``trusted_alt_names``: the job's node is not known yet."""
        return jobcerts.alt_names(await spawner.cluster.nodes()) + list(spawner.trusted_alt_names)

    # -- the server's own API token ------------------------------------------------------------------------------
    @staticmethod
    def _token_scopes(spawner) -> list[str]:
        """JupyterHub's ``server`` role, and extending this one server where extending is switched on and the hub
        defines the scope (the drop-in ``extend``): JupyterLab's status bar extends with this token. Nothing
        (JupyterHub then gives the ``server`` role) where extending is off."""
        from jupyterhub.orm import Role
        from jupyterhub.scopes import scope_definitions

        if not (spawner.extend_walltime and extension.SCOPE in scope_definitions):
            return []
        role = Role.find(object_session(spawner.orm_spawner), "server")
        return [*role.scopes, f"{extension.SCOPE}!server"]

    async def move_certs(self, paths):
        """The key, certificate and CA bundle go to the job through its environment; nothing stays on the hub."""
        self._job_certs = jobcerts.take(paths)
        return {}

    # == JupyterHub's hooks =====================================================================================
    async def start(self):
        started = time.monotonic()
        self._warn_hub_unreachable_from_nodes()
        request, self.job_request = self.job_request or await self.validate_options(self.user_options), None
        self._starting = (request, dict(options.unwrap(self.user_options or {})))
        self.token_digest = _digest(self.api_token)
        try:
            served = await self.life.start(self.submission(request))
        except StartFailed as exc:
            raise spawn_error(exc.message, reason=exc.reason, status_code=exc.status_code) from None
        # Cancelled: the hub is shutting down (the job is recovered after the restart) or the user
        # cancelled the spawn (the hub then calls stop(), which cancels the job).
        metrics.SPAWN_SECONDS.observe(time.monotonic() - started)
        return served

    async def progress(self):
        async for event in self.life.progress.follow():
            yield event

    async def get_url(self):
        """After a hub restart during a start: wait for the job and its server like start() does."""
        if self.record.job_port or not self.record.job_id:
            return await super().get_url()
        self._point_life_at_output()
        try:
            host, port = await self.life.resume()
        except StartFailed as exc:
            self.log.warning("%s: recovered job %s did not start: %s", self._log_name, self.record.job_id, exc)
            return await super().get_url()
        return f"http://{host}:{port}"

    def _point_life_at_output(self) -> None:
        """After a restart, the output file and job name of the recorded job (for its output tail)."""
        try:
            self.life.output, self.life.job_name = self._output_file(self._home()), self.job_name
        except Exception as exc:  # no Unix account any more: the tail is left out, the end still told
            self.log.warning("%s: the output of job %s cannot be found (%s)", self._log_name, self.record.job_id,
                             exc)

    async def poll(self):
        if self.record.job_id and not self.life.output:
            self._point_life_at_output()
        return await self.life.poll(wait=self.slurm_timeout * 3)

    def _job_over(self):
        """The watcher saw the job end: let the hub know now, not at its next poll."""
        polling = getattr(self, "_poll_callback", None)
        if polling is not None and polling.is_running():  # a running server, not a start or a stop
            asyncio.ensure_future(self.poll_and_notify())

    async def stop(self, now=False):
        await self.life.stop()

    # == the job side's reports (dkrzspawner.handlers) ==========================================================
    def owns_token(self, token: str) -> bool:
        """Whether ``token`` is the API token of this spawner's current server (kept only as a digest)."""
        return bool(self.token_digest) and hmac.compare_digest(self.token_digest, _digest(token))

    def receive_port(self, port: int) -> bool:
        """The job side's port report; False if this spawner is not waiting for a port."""
        return self.life.receive_port(port)

    def server_ended(self) -> bool:
        """Called by the ended handler: the job side says the server has ended. Only Slurm's word stops the
        server, so the watcher asks now and at the fast cadence until the job is over (at most
        ``server_end_confirm`` seconds); the watcher then tells the hub, which drops the route."""
        if not self.record.job_id:
            return False
        self.log.info("%s: the job side says the server has ended; asking Slurm about job %s now",
                      self._log_name, self.record.job_id)
        self._end_confirmation = asyncio.ensure_future(self.life.confirm_end(self.record.job_id))
        return True

    # == what the pages show ====================================================================================
    # == extending the running job (dkrzspawner.handlers, c.DKRZSpawner.extend_walltime) =======================
    async def extend(self, add: int) -> dict:
        """Add ``add`` seconds to this server's running job within the site's limits (:mod:`dkrzspawner.extension`)
        and return its ``job_id``, new ``time_limit``, ``end`` (Slurm's local time) and ``ends_at`` (seconds since
        the epoch, as the home page's countdown counts); OptionsError says why not, in one sentence."""
        if not self.extend_walltime:
            raise options.OptionsError("add", "Add: extending a running server is not switched on at this hub.")
        job = await job_info(self.runner, self.job_id, timeout=self.slurm_timeout) if self.job_id else None
        if job is None or job.state != "RUNNING" or not job.partition:
            raise options.OptionsError("add", "Add: this server has no running job to extend.")
        limit = extension.time_limit(job.start_time, job.end_time)
        offer = await self.offer()
        limits = (offer.facts.partitions or {}).get(job.partition) if offer.facts is not None else None
        if limit is None or limits is None:
            raise options.OptionsError("add", "Add: Slurm did not say when this server ends or what its partition "
                                              "allows; please try again in a minute.")
        site = self.extend_max_runtime.get(job.partition, self.extend_max_runtime.get("*"))
        new = extension.extended_limit(limit=limit, add=add, partition=job.partition, longest=limits.max_runtime,
                                       site_longest=runtime_seconds(site) if site else None, cpus=job.cpus or 1,
                                       account=job.account, left_hours=await self._hours_left(job.account))
        await set_time_limit(self.runner, job.job_id, new, timeout=self.slurm_timeout)
        ends = datetime.datetime.strptime(job.start_time, extension.STAMP) + datetime.timedelta(seconds=new)
        self.log.info("%s: job %s extended by %s to %s", self._log_name, job.job_id, format_runtime(add),
                      format_runtime(new))
        return {"job_id": job.job_id, "time_limit": format_runtime(new), "end": ends.strftime(extension.STAMP),
                "ends_at": int(ends.timestamp())}

    async def _hours_left(self, account: str | None) -> float | None:
        """The core-hours ``account`` has left for this user (None: no limit); refused when Slurm cannot say."""
        ledger = REGISTRY.budgets(self.runner, ttl=self.cluster_cache_ttl, timeout=self.slurm_timeout,
                                  period=self.budget_period_start)
        try:
            statement = await ledger.statement(self.user.name)
        except SlurmError:
            statement = None
        budget = next((b for b in statement.budgets if b.account == account), None) if statement else None
        if budget is None or (budget.limit_hours is not None and budget.used_hours is None):
            raise options.OptionsError("add", f"Add: Slurm did not say how many core-hours account {account} has "
                                              "left; please try again in a minute.")
        return budget.left_hours

    def job_summary(self) -> dict:
        """For the hub's home page: the job's state, node and walltime left, or how the last one ended."""
        return self.life.summary()


def _digest(token: str | None) -> str | None:
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def _options_from_form(form_data, spawner=None):
    """``Spawner.options_from_form``: the form's fields as ``user_options`` with JSON types."""
    try:
        return form.options_from_form(form_data)
    except options.OptionsError as exc:
        raise spawn_error(str(exc), reason="invalid_options") from None


async def _options_form(spawner) -> str:
    """``Spawner.options_form``: our form, rendered for this spawner."""
    return await spawner.render_options_form()
