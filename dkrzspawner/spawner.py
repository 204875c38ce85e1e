"""DKRZSpawner: thin glue between JupyterHub and the parts that validate, render, submit and watch."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import pwd
import re
import secrets
import sys
import time

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, default, observe, validate

from . import handlers, jobcerts, metrics, options, reasons, script
from .errors import quiet_link_confirmations, spawn_error
from .modules import ModuleCatalog, ModuleSettings
from .spawnpage import SpawnPageMixin
from .spawnpolicy import PolicyMixin
from .spawnsite import SiteFileMixin
from .slurm import SlurmError, SlurmRejected, SlurmRunner, SlurmUnreachable, check_user_name, output_tail
from .slurm.jobs import SACCT_FORMAT, parse_sacct
from .watcher import JobWatcher

handlers.register()
quiet_link_confirmations()

_shared: dict[tuple, tuple[SlurmRunner, JobWatcher]] = {}
_module_catalogs: dict[tuple, ModuleCatalog] = {}


class DKRZSpawner(SiteFileMixin, SpawnPageMixin, PolicyMixin, ModuleSettings, Spawner):
    """Starts each Jupyter server as a Slurm job of the user, from a preset or an advanced request."""

    presets = Dict(
        default_value=options.DKRZ_PRESETS,
        help="""Presets offered to users, by name (a lower-case slug, used in ``user_options["preset"]``).

        Each value has ``display_name``, ``description``, ``partition``, ``cores`` (the choices, the first is
        the default), ``memory_per_core`` (Slurm units, e.g. ``2500M``), ``runtime`` (default walltime),
        ``max_runtime`` and ``modules`` (environment modules the job loads, in order, after the partition's).
        The default is DKRZ's ``shared`` and ``prepost`` with 1, 2 or 4 cores and 2.5 GB per core.
        """,
    ).tag(config=True)

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

    @validate("job_umask")
    def _octal_umask(self, proposal):
        if not re.fullmatch(r"0?[0-7]{3}", proposal.value):
            raise TraitError(f"job_umask must be an octal umask such as 0022, not {proposal.value!r}")
        return proposal.value

    job_name_template = Unicode(
        "jupyterhub-{server}",
        help="Slurm job name; ``{server}`` is the named server's name or ``default``, ``{username}`` the user.",
    ).tag(config=True)

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

    @default("start_timeout")
    def _start_timeout_default(self):
        # JupyterHub's own limit must not cut the queue wait short: ours are queue_timeout + server_timeout.
        return int(self.queue_timeout + self.server_timeout + 60)

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return DKRZSpawner._apply_options

    @observe("presets")
    def _presets_changed(self, change):
        self._presets = options.load_presets(change["new"])

    # -- state ------------------------------------------------------------------------------------
    job_id = Unicode(None, allow_none=True, help="The Slurm job of the current server (state).")
    job_host = Unicode(None, allow_none=True, help="The node the job runs on, from Slurm (state).")
    job_port = Integer(0, help="The port the job's server reported (state).")
    job_comment = Unicode(None, allow_none=True, help="The tag given to the job with --comment (state).")
    job_partition = Unicode(None, allow_none=True,
                            help="The partition of the current server's request, for the policy's counts (state).")
    token_digest = Unicode(None, allow_none=True, help="SHA-256 of the server's API token (state).")
    last_end = Dict(help="How the last job of this server ended: job_id, state, reason, at (state).")

    _STATE_KEYS = ("job_id", "job_host", "job_port", "job_comment", "job_partition", "token_digest", "last_end")

    def load_state(self, state):
        super().load_state(state)
        for key in self._STATE_KEYS:
            if key in state:
                setattr(self, key, state[key])
        if self.job_id:
            self.watcher.watch(self.job_id, on_over=self._job_over, user=self.user.name)

    def get_state(self):
        state = super().get_state()
        for key in self._STATE_KEYS:
            if getattr(self, key):
                state[key] = getattr(self, key)
        return state

    def clear_state(self):
        super().clear_state()
        if self.job_id:
            self.watcher.unwatch(self.job_id)
        self.job_id = self.job_host = self.job_comment = self.job_partition = self.token_digest = None
        self.job_port = 0

    def _save_state(self):
        """Persist the job id at once, so a hub restart during the queue wait finds the job."""
        if self.orm_spawner is None or self.db is None:
            return
        self.orm_spawner.state = self.get_state()
        self.db.commit()

    # -- shared parts -----------------------------------------------------------------------------
    @property
    def presets_checked(self) -> dict[str, options.Preset]:
        if not hasattr(self, "_presets"):
            self._presets = options.load_presets(self.presets)
        return self._presets

    def _shared_parts(self):
        key = (tuple(self.sudo_command), self.slurm_timeout, self.watch_interval, self.watch_fast_interval,
               self.watch_pending_interval, self.watch_jitter, self.accounting, self.watch_as_users)
        if key not in _shared:
            runner = SlurmRunner(sudo=self.sudo_command, timeout=self.slurm_timeout, log=self.log)
            watcher = JobWatcher(runner, interval=self.watch_interval, fast_interval=self.watch_fast_interval,
                                 pending_interval=self.watch_pending_interval, jitter=self.watch_jitter,
                                 accounting=self.accounting, as_users=self.watch_as_users, log=self.log)
            _shared[key] = (runner, watcher)
        return _shared[key]

    @property
    def runner(self) -> SlurmRunner:
        return self._shared_parts()[0]

    @property
    def watcher(self) -> JobWatcher:
        return self._shared_parts()[1]

    @property
    def module_catalog(self) -> ModuleCatalog:
        """The hub-wide cache of the modules the cluster offers."""
        key = (id(self.runner), *self.module_catalog_key)
        if key not in _module_catalogs:
            _module_catalogs[key] = self.new_module_catalog(self.runner, timeout=min(self.slurm_timeout, 10.0))
        return _module_catalogs[key]

    async def offered_modules(self) -> tuple[str, ...] | None:
        """The modules users may pick, or None when none are offered (no Lmod) or Lmod did not answer."""
        return await self.module_catalog.offered(self.log)

    # -- options: validate_options, the form and the pre-flight are in spawnpage.SpawnPageMixin -------

    # -- naming -----------------------------------------------------------------------------------
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
        prefix = self.job_prefix.rstrip("/")
        cmd = [c if "/" in c else f"{prefix}/bin/{c}" for c in self.cmd[:1]] + list(self.cmd[1:])
        return [f"{prefix}/bin/python", "-m", "dkrzspawner.singleuser", "--", *cmd, *self.get_args()]

    def _job_env(self, home: str) -> dict[str, str]:
        env = {k: str(v) for k, v in self.get_env().items()}
        env.update(HOME=home, USER=self.user.name, LOGNAME=self.user.name, DKRZSPAWNER_BIND_IP=self.bind_ip)
        env.update(self.site_environment())
        env.update(self._job_certs)
        return env

    # -- internal_ssl (see jobcerts) ---------------------------------------------------------------
    @default("ssl_alt_names")
    def _ssl_alt_names_default(self):
        return DKRZSpawner._node_alt_names

    @staticmethod
    async def _node_alt_names(spawner) -> list[str]:
        """Every node of the cluster, and the hub's ``trusted_alt_names``: the job's node is not known yet."""
        result = await spawner.runner.run(list(jobcerts.NODES_ARGV), timeout=spawner.slurm_timeout)
        return jobcerts.alt_names(result.stdout) + list(spawner.trusted_alt_names)

    #: with internal_ssl, the server's key, certificate and CA bundle for the job's environment (``move_certs``)
    _job_certs: dict[str, str] = {}

    async def move_certs(self, paths):
        """The key, certificate and CA bundle go to the job through its environment; nothing stays on the hub."""
        self._job_certs = jobcerts.take(paths)
        return {}

    def _output_file(self, home: str) -> str:
        return self.output_path.format(home=home, username=self.user.name)

    # -- progress ---------------------------------------------------------------------------------
    def _emit(self, progress: int, message: str):
        self.log.info("%s: %s", self._log_name, message)
        self._events.append({"progress": progress, "message": message})
        self._events_changed.set()

    async def progress(self):
        seen = 0
        while True:
            events = getattr(self, "_events", [])
            while seen < len(events):
                yield events[seen]
                seen += 1
            if getattr(self, "_start_done", True):
                return
            self._events_changed.clear()
            await self._events_changed.wait()

    def _begin_waiting(self):
        """Fresh progress events and a fresh port slot, for start() or a recovery after a restart."""
        self._events, self._events_changed, self._start_done = [], asyncio.Event(), False
        self._port = asyncio.get_running_loop().create_future()
        self._submitted_at = None  # set by a submission of this start; not after a hub restart

    def _seen_running(self):
        """The job runs: its queue wait goes into the metrics, once per submission."""
        if getattr(self, "_submitted_at", None) is not None:
            metrics.QUEUE_WAIT_SECONDS.labels(partition=self.job_partition or "unknown").observe(
                time.monotonic() - self._submitted_at)
            self._submitted_at = None

    # -- start ------------------------------------------------------------------------------------
    async def start(self):
        started = time.monotonic()
        request = await self.validate_options(self.user_options)
        self._begin_waiting()
        self.job_id = self.job_host = None
        self.job_port = 0
        self.job_partition = request.partition
        self.token_digest = _digest(self.api_token)
        try:
            await self._submit(request)
            served = await self._serve()
            metrics.SPAWN_SECONDS.observe(time.monotonic() - started)
            return served
        except Exception:
            if self.job_id:  # our own failure: the job must not outlive the spawn
                await self._cancel_quietly()
            raise
        # Cancelled: the hub is shutting down (the job is recovered after the restart) or the user
        # cancelled the spawn (the hub then calls stop(), which cancels the job).
        finally:
            self._start_done = True
            self._events_changed.set()

    async def _serve(self) -> tuple[str, int]:
        """Wait (queue, then server start) until the job's server listens; remember where."""
        with self.watcher.urgent(self.job_id):
            host, port = await self._wait_until_serving()
        self.job_host, self.job_port = host, port
        self._save_state()
        self._emit(100, f"Jupyter server of job {self.job_id} answers on {host}:{port}.")
        return host, port

    async def _submit(self, request: options.JobRequest):
        home = self._home()
        env = self._job_env(home)
        self.job_comment = f"dkrzspawner:{self.user.name}:{self.server_label}:{secrets.token_hex(6)}"
        text = script.render(
            self.batch_script_template, request=request, job_name=self.job_name, comment=self.job_comment,
            output=self._output_file(home), workdir=home, export_names=env.keys(),
            path=f"{self.job_prefix.rstrip('/')}/bin:{self.job_path}", command=self._command(),
            modules_init=self.modules_init, module_path=self.module_path, extra_paths=self.template_paths,
            umask=self.job_umask,
        )
        self.log.debug("Batch script for %s:\n%s", self._log_name, text)
        await self.preflight(text, env)  # sbatch --test-only: Slurm's refusal in plain words, or its estimate
        self._save_state()  # the tag first: a hub restart mid-sbatch can still find the job
        try:
            result = await self.runner.run(["sbatch", "--parsable"], user=self.user.name, env=env, stdin=text)
            self.job_id = result.stdout.strip().split(";")[0]
        except SlurmRejected as exc:
            raise spawn_error(f"Slurm refused the job: {exc.reason}", reason="slurm_rejected") from None
        except SlurmUnreachable as exc:
            self._emit(5, f"Slurm did not answer the submission ({exc.reason}); looking for the job.")
            self.job_id = await self._find_tagged_job(give_up_after=self.queue_timeout)
            if self.job_id is None:
                raise spawn_error(f"Slurm did not take the job ({exc.reason}); no job was started. "
                                  "Please try again.", reason="slurm_unreachable", status_code=503) from None
            self.log.warning("sbatch for %s failed (%s) but created job %s: adopting it",
                             self._log_name, exc.reason, self.job_id)
        self._submitted_at = time.monotonic()
        self._save_state()
        self.watcher.watch(self.job_id, on_over=self._job_over, user=self.user.name)
        self._emit(10, f"Submitted Slurm job {self.job_id}: partition {request.partition}, {request.cores} "
                       f"cores, {request.memory} memory, walltime {request.runtime}.")

    async def _find_tagged_job(self, give_up_after: float) -> str | None:
        """The job carrying this spawn's tag, asked until Slurm answers; None if Slurm says there is none."""
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                result = await self.runner.run(["squeue", "-h", "-t", "all", "-u", check_user_name(self.user.name),
                                                "-o", "%i|%k"])
            except SlurmUnreachable:
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(2)
                continue
            except SlurmError:
                return None
            for line in result.stdout.splitlines():
                job_id, _, comment = line.partition("|")
                if comment.strip() == self.job_comment:
                    return job_id.strip()
            return None

    def owns_token(self, token: str) -> bool:
        """Whether ``token`` is the API token of this spawner's current server (kept only as a digest)."""
        return bool(self.token_digest) and hmac.compare_digest(self.token_digest, _digest(token))

    def receive_port(self, port: int) -> bool:
        """Called by the port handler; False if this spawner is not waiting for a port.

        The same port reported again (a retry after a lost reply) is accepted again."""
        future = getattr(self, "_port", None)
        if future is None:
            return False
        if future.done():
            return not future.cancelled() and future.result() == port
        future.set_result(port)
        return True

    #: the task that asks Slurm after the job side said the server ended (a reference, so it runs to its end)
    _end_confirmation: asyncio.Future | None = None

    def server_ended(self) -> bool:
        """Called by the ended handler: the job side says the server has ended. Only Slurm's word stops the
        server, so the watcher asks now and at the fast cadence until the job is over (at most
        ``server_end_confirm`` seconds); :meth:`_job_over` then tells the hub, which drops the route."""
        if not self.job_id:
            return False
        self.log.info("%s: the job side says the server has ended; asking Slurm about job %s now",
                      self._log_name, self.job_id)
        self._end_confirmation = asyncio.ensure_future(self._confirm_end(self.job_id))  # kept: not collected
        return True

    async def _confirm_end(self, job_id: str) -> None:
        with self.watcher.urgent(job_id):
            deadline = time.monotonic() + self.server_end_confirm
            while time.monotonic() < deadline and self.job_id == job_id:
                status = self.watcher.status(job_id)
                if status is not None and status.over:
                    return
                await self.watcher.refresh(job_id)

    async def _wait_until_serving(self) -> tuple[str, int]:
        queued_since = time.monotonic()
        running_since = None
        last = None
        while not self._port.done():
            status = self.watcher.status(self.job_id)
            if status is not None:
                if status.over:
                    await self._fail_ended(status)
                message = self._status_message(status)
                if message != last:
                    last = message
                    self._emit(50 if status.running else 20, message)
                if status.running and running_since is None:
                    running_since = time.monotonic()
                    self._seen_running()
            now = time.monotonic()
            if running_since is None and now - queued_since > self.queue_timeout:
                raise spawn_error(f"Job {self.job_id} waited longer than {self.queue_timeout:g} s in the queue; "
                                  "it was cancelled.", reason="queue_timeout")
            if running_since is not None and now - running_since > self.server_timeout:
                raise spawn_error(f"The Jupyter server of job {self.job_id} did not start within "
                                  f"{self.server_timeout:g} s.", reason="server_timeout")
            poll = asyncio.ensure_future(self.watcher.next_poll())
            await asyncio.wait([poll, self._port], return_when=asyncio.FIRST_COMPLETED)
            poll.cancel()
        port = self._port.result()
        self._emit(80, f"Jupyter server of job {self.job_id} reported port {port}.")
        host = await self._batch_host()
        await self._wait_listening(host, port, running_since or time.monotonic())
        return host, port

    def _status_message(self, status) -> str:
        """The progress line for what Slurm says now (one message per change)."""
        if status.state == "PENDING":
            position = self.watcher.position(self.job_id)
            place, total = position if position else (None, None)
            return reasons.pending_message(self.job_id, status.reason, status.start_time, place, total)
        if status.running:
            return f"Job {self.job_id} is running on {status.host}; starting the Jupyter server."
        return f"Job {self.job_id} is {status.state.lower()}."

    async def _batch_host(self) -> str:
        """The node running the job, from Slurm (never from the job)."""
        while True:
            status = self.watcher.status(self.job_id)
            if status is not None and status.over:
                await self._fail_ended(status)
            if status is not None and status.running and status.host:
                self._seen_running()
                return status.host
            await self.watcher.refresh()

    async def _wait_listening(self, host: str, port: int, running_since: float):
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                writer.close()
                return
            except (OSError, asyncio.TimeoutError):
                pass
            status = self.watcher.status(self.job_id)
            if status is not None and status.over:
                await self._fail_ended(status)
            if time.monotonic() - running_since > self.server_timeout:
                raise spawn_error(f"The Jupyter server of job {self.job_id} did not start within "
                                  f"{self.server_timeout:g} s.", reason="server_timeout")
            await asyncio.sleep(0.02)

    async def _fail_ended(self, status):
        tail = await self._output_tail()
        end = await self._record_end(status, tail)
        message = f"Job {self.job_id} ended before its Jupyter server started: {end['reason']}"
        if tail:  # indented: no line of the user's output can pass for a line of the hub's log
            message += " Last lines of its output:\n" + "\n".join("    " + line for line in tail.splitlines())
        raise spawn_error(message, reason="job_ended")

    async def _output_tail(self) -> str:
        """The last lines of the job's output (bounded, control characters removed; see slurm.output_tail)."""
        path = self._output_file(self._home()).replace("%j", str(self.job_id)).replace("%x", self.job_name)
        try:
            return await output_tail(self.runner, self.user.name, path, self.output_tail_lines)
        except SlurmError as exc:
            self.log.warning("%s: cannot read the output of job %s (%s): %s", self._log_name, self.job_id, path,
                             exc)
            return ""

    async def _record_end(self, status, tail: str | None = None) -> dict:
        """Remember (state, log) why the job ended, in words; sacct has the final word when Slurm is done."""
        final = status
        if status.state == "COMPLETING" or (self.accounting and status.exit_code is None):
            final = await self._sacct_final(status)
        if tail is None and final.state == "FAILED":
            tail = await self._output_tail()
        by = _user_of_uid(final.cancelled_by) if final.cancelled_by else None
        self.last_end = {
            "job_id": self.job_id, "state": final.state,
            "reason": reasons.explain_end(final.state, final.exit_code, by, tail or ""),
            "at": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        self.log.info("%s: job %s ended (%s): %s", self._log_name, self.job_id, final.state,
                      self.last_end["reason"])
        return self.last_end

    async def _sacct_final(self, status):
        """sacct's record of how the job ended; the watcher's status if sacct cannot tell (yet)."""
        if not self.accounting:
            return status
        for _ in range(5):
            try:
                out = await self.runner.run(["sacct", "-X", "-n", "-P", "-j", str(self.job_id), "-o", SACCT_FORMAT])
                final = parse_sacct(out.stdout).get(str(self.job_id))
            except (SlurmError, ValueError):
                final = None
            if final is not None and final.ended:
                return final
            await asyncio.sleep(1)
        return status

    # -- recovery after a hub restart -------------------------------------------------------------
    async def get_url(self):
        """After a hub restart during a start: wait for the job and its server like start() does."""
        if self.job_port or not self.job_id:
            return await super().get_url()
        self.log.info("%s: resuming the start of job %s after a hub restart", self._log_name, self.job_id)
        self._begin_waiting()
        try:
            host, port = await self._serve()
        except web.HTTPError as exc:
            self.log.warning("%s: recovered job %s did not start: %s", self._log_name, self.job_id, exc)
            return await super().get_url()
        finally:
            self._start_done = True
        return f"http://{host}:{port}"

    # -- poll and stop ----------------------------------------------------------------------------
    async def poll(self):
        if not self.job_id:
            if self.job_comment:  # an sbatch that did not answer, then the hub restarted: no orphans
                await self._cancel_unconfirmed()
            return 0
        self.watcher.watch(self.job_id, on_over=self._job_over, user=self.user.name)
        status = self.watcher.status(self.job_id)
        if status is None:
            # Nothing heard yet (e.g. just after a hub restart): ask, batched with all other spawners.
            try:
                await asyncio.wait_for(self.watcher.refresh(self.job_id), self.slurm_timeout * 3)
            except asyncio.TimeoutError:
                return None
            status = self.watcher.status(self.job_id)
        if status is None or not status.over:
            return None  # running, pending, or not known yet: never "stopped" on a failed query
        if self.last_end.get("job_id") != self.job_id:
            await self._record_end(status)
            self._save_state()
        return 0 if self.last_end.get("state") == "COMPLETED" else 1

    def _job_over(self):
        """The watcher saw the job end: let the hub know now, not at its next poll."""
        polling = getattr(self, "_poll_callback", None)
        if polling is not None and polling.is_running():  # a running server, not a start or a stop
            asyncio.ensure_future(self.poll_and_notify())

    async def _cancel_unconfirmed(self):
        job_id = await self._find_tagged_job(give_up_after=0)
        if job_id:
            self.log.warning("%s: cancelling job %s, submitted before a hub restart but never confirmed",
                             self._log_name, job_id)
            self.job_id = job_id
            await self._cancel_quietly()
        self.job_id = self.job_comment = None
        self._save_state()

    async def stop(self, now=False):
        job_id = self.job_id
        if not job_id:
            return
        with self.watcher.urgent(job_id):
            status = self.watcher.status(job_id)
            if status is None or not status.ended:
                await self._cancel_job()
            deadline = time.monotonic() + self.stop_timeout
            while time.monotonic() < deadline and self.job_id == job_id:
                status = self.watcher.status(job_id)
                if status is not None and status.ended:
                    if self.last_end.get("job_id") != job_id:
                        await self._record_end(status)
                    return
                await self.watcher.refresh()
        if self.job_id == job_id:
            self.log.warning("%s: Slurm has not confirmed the end of job %s within %g s",
                             self._log_name, job_id, self.stop_timeout)

    async def _cancel_job(self):
        await self.runner.run(["scancel", str(self.job_id)], user=self.user.name)

    async def _cancel_quietly(self):
        try:
            await asyncio.shield(self._cancel_job())
        except (SlurmError, asyncio.CancelledError) as exc:
            self.log.error("%s: could not cancel job %s: %s", self._log_name, self.job_id, exc)

    # -- what the pages show ----------------------------------------------------------------------
    def job_summary(self) -> dict:
        """For the hub's home page: the job's state, node and walltime left, or how the last one ended."""
        status = self.watcher.status(self.job_id) if self.job_id else None
        summary = {"job_id": self.job_id, "state": status.state if status else None, "host": self.job_host,
                   "time_left": "", "waiting": "", "last_end": self.last_end or None}
        if status is not None and status.running:
            summary["time_left"] = reasons.format_remaining(reasons.parse_slurm_time(status.end_time))
        elif status is not None and status.state == "PENDING":
            summary["waiting"] = reasons.explain_pending(status.reason)
        return summary


def _digest(token: str | None) -> str | None:
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def _user_of_uid(uid: str) -> str:
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return uid
