"""The spawner's side of the spawn page: cluster facts, the one validation, the form, and the pre-flight.

A mixin of :class:`~dkrzspawner.spawner.DKRZSpawner`. Every way to start a server (form, REST body, spawn URL)
ends in :meth:`SpawnPageMixin.validate_options` (from ``apply_user_options`` and again in ``start()``), and
every job is first submitted with ``sbatch --test-only`` (:meth:`SpawnPageMixin.preflight`).
"""

from __future__ import annotations

import html
from urllib.parse import unquote, urlparse

from traitlets import Bool, Dict, Float, Unicode, default, observe
from traitlets.config import Configurable

from . import cluster, form, options, reasons
from .offer import Facts, Offer, make_facts
from .errors import SpawnLinkToConfirm, spawn_error
from .budgets import Ledger
from .slurm import BadUserName, SlurmError, SlurmRejected, SlurmUnreachable, check_user_name, jobs

_clusters: dict[tuple, cluster.Cluster] = {}
_ledgers: dict[tuple, Ledger] = {}


class SpawnPageMixin(Configurable):
    """Options form, validation against Slurm's facts, and the ``sbatch --test-only`` pre-flight."""

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

    cluster_cache_ttl = Float(
        60.0,
        help="""Seconds the hub keeps Slurm's answers about partitions, free resources, users' accounts and
        reservations. All spawners share them, and concurrent requests share one query, so the form costs
        Slurm at most one ``scontrol``, one ``sinfo`` and one ``sacctmgr`` per user per this many seconds.""",
    ).tag(config=True)

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

    estimated_start = Unicode(
        None,
        allow_none=True,
        help="""When Slurm expects the job to start (``2026-11-22T05:40:00``), from the pre-flight
        ``sbatch --test-only`` of the current start; shown on the progress page. Not saved in the state.""",
    )

    @observe("partitions")
    def _partitions_changed(self, change):
        self._partition_settings = options.load_partition_settings(change["new"])

    @property
    def partition_settings(self) -> dict[str, options.PartitionSettings]:
        if not hasattr(self, "_partition_settings"):
            self._partition_settings = options.load_partition_settings(self.partitions)
        return self._partition_settings

    @property
    def cluster(self) -> cluster.Cluster:
        """The hub-wide cache of Slurm's answers (one per runner and TTL)."""
        runner = self.runner
        key = (id(runner), self.cluster_cache_ttl)
        if key not in _clusters:
            _clusters[key] = cluster.Cluster(runner, ttl=self.cluster_cache_ttl, timeout=min(self.slurm_timeout, 10.0))
        return _clusters[key]

    @property
    def ledger(self) -> Ledger:
        """The hub-wide cache of the users' account budgets (one per runner, TTL and period)."""
        key = (id(self.runner), self.cluster_cache_ttl, self.budget_period_start)
        if key not in _ledgers:
            _ledgers[key] = Ledger(self.runner, ttl=self.cluster_cache_ttl, timeout=min(self.slurm_timeout, 10.0),
                                   period=self.budget_period_start)
        return _ledgers[key]

    async def budgets(self) -> dict[str, dict]:
        """Budget per account of the user (the service's JSON fields), or {} when off or Slurm did not answer."""
        if not self.show_budgets:
            return {}
        try:
            statement = await self.ledger.statement(self.user.name)
        except SlurmError as exc:
            self.log.warning("%s: no account budgets for the form (%s)", self._log_name, exc.reason)
            return {}
        return {budget.account: budget.as_dict() for budget in statement.budgets}

    async def cluster_facts(self) -> Facts:
        """What Slurm says for this user, with the site's partition settings applied; never raises for Slurm."""
        snapshot = await self.cluster.snapshot(self.user.name)
        return make_facts(snapshot, self.partition_settings, advanced=self.advanced_options,
                          modules=await self.offered_modules())

    async def offer(self) -> Offer:
        """What this user is offered now: the site's settings, the group policy and the cluster's facts."""
        site = Offer(self.presets_checked, self.partition_settings, self.advanced_options, self.allowance())
        return site.with_facts(await self.cluster_facts())

    # -- the one validation -------------------------------------------------------------------------------
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
            self.check_server_counts(offer.allowance, request.partition)
        except options.OptionsError as exc:
            raise spawn_error(str(exc), reason="invalid_options") from None
        return request

    @staticmethod
    async def _apply_options(spawner, user_options):
        await spawner.validate_options(user_options)

    @default("options_from_form")
    def _options_from_form_default(self):
        return _options_from_form

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

    # -- the form -----------------------------------------------------------------------------------------
    @default("options_form")
    def _options_form_default(self):
        return _options_form

    async def render_options_form(self) -> str:
        """This server's form, with what the policy lets this user use, a spawn link's options or else its last
        options preselected (re-validated; defaults where they fail), and the maintenance message if spawns are
        closed."""
        try:
            check_user_name(self.user.name)
        except BadUserName as exc:  # no Slurm command for this name: no form either, only why
            return f'<p class="alert alert-danger" id="dkrz-spawn-error">{html.escape(str(exc))}</p>'
        offer = await self.offer()
        presets, facts = offer.presets, offer.facts
        link = self.link_options()
        selected = form.preselect(link or self.last_user_options(), presets, facts)
        if link:  # the link's options, not this server's last ones (the notice above the form says so)
            selected["remembered"] = False
        context = form.context(presets=presets, facts=facts, selected=selected, server_name=self.name,
                               refresh_seconds=self.cluster_cache_ttl, budgets=await self.budgets(),
                               maintenance=self.maintenance())
        return form.render(context, extra_paths=self.template_paths)

    def last_user_options(self):
        """The options this server was last started (or refused) with; JupyterHub keeps them in its database."""
        return self.orm_spawner.user_options if self.orm_spawner is not None else None

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

    # -- the pre-flight -----------------------------------------------------------------------------------
    async def preflight(self, text: str, env: dict) -> None:
        """``sbatch --test-only`` as the user with the very script: Slurm's refusal in plain words, or its
        estimated start (kept in :attr:`estimated_start`). Creates no job.

        When Slurm does not answer, the check is skipped: the real submission follows, and it knows how to
        find a job that a timed-out ``sbatch`` created anyway.
        """
        self.estimated_start = None
        try:
            estimate = await jobs.test_only(self.runner, text, user=self.user.name, env=env)
        except SlurmRejected as exc:
            raise spawn_error(f"Slurm would refuse this request: {reasons.explain_refusal(exc.reason)}.",
                              reason="slurm_rejected") from None
        except SlurmUnreachable as exc:
            self.log.warning("%s: pre-flight sbatch --test-only unanswered (%s); submitting anyway",
                             self._log_name, exc.reason)
            self._emit(5, f"Slurm did not answer the pre-flight check ({exc.reason}); submitting anyway.")
            return
        self.estimated_start = estimate
        if estimate:
            self._emit(5, f"Slurm accepts the request; it is {reasons.describe_start(estimate)}.")

    @property
    def start_estimate_text(self) -> str:
        """``expected to start at 05:40 (in 12 min)``, or '' without an estimate."""
        return reasons.describe_start(self.estimated_start) if self.estimated_start else ""


def _options_from_form(form_data, spawner=None):
    """``Spawner.options_from_form``: the form's fields as ``user_options`` with JSON types."""
    try:
        return form.options_from_form(form_data)
    except options.OptionsError as exc:
        raise spawn_error(str(exc), reason="invalid_options") from None


async def _options_form(spawner) -> str:
    """``Spawner.options_form``: our form, rendered for this spawner."""
    return await spawner.render_options_form()
