"""A jupyter_client kernel provisioner that runs kernels on Slurm compute nodes.

:class:`SlurmProvisioner` and what it keeps per process: the allocations kernels run in (:data:`ALLOCATIONS`)
and the ``salloc`` that holds each one it made (:class:`Keeper`). The Slurm commands themselves are
:mod:`dkrzspawner.slurm.allocations`' (and :func:`dkrzspawner.slurm.jobs.cancel`); the options are checked by
:mod:`.kernelspec`, the job step's program is :mod:`.step`'s. Imports jupyter_client, jupyter_core,
traitlets and the core (options, site file, cluster facts, modules, reasons, slurm); never JupyterHub.

Entry point ``dkrz-slurm-provisioner`` (group ``jupyter_client.kernel_provisioners``). A kernelspec uses it with::

    "metadata": {"kernel_provisioner": {"provisioner_name": "dkrz-slurm-provisioner",
                                        "config": {"preset": "shared", "cores": 2}}}

What happens, all asynchronously (asyncio subprocesses with argument lists, never a shell):

1. the options are checked for shape (no Slurm), then validated against the cluster's facts with the
   spawner's own options model;
2. ``salloc --kill-command=HUP ... cat`` asks for the allocation as the current user and keeps running: it holds
   the allocation (see *Allocations end with their owner*). The job id is known as soon as Slurm assigns it
   (``salloc: Pending job allocation N``); while the job waits, its pending reason and estimated start go to
   the log, one line per change, and to :attr:`SlurmProvisioner.status`. Or ``job_id`` names an existing
   allocation;
3. the allocation's first node comes from ``squeue`` (or ``node`` picks one of an existing allocation's nodes);
   the connection file (in the user's Jupyter runtime dir, on the shared file system) gets that node's address,
   and the kernel binds there;
4. ``srun --jobid=ID --overlap`` runs the kernel as a named job step of one task; the step gives the kernel the
   allocation's tasks and CPUs per task (:data:`.step.JOB_VIEW`), so ``srun`` in a cell uses all of them.
   Signals (interrupt) go to that step with ``scancel --signal=INT ID.STEP``; the step ends when the kernel ends
   or when the allocation does, and ``poll()`` then reports the kernel dead;
5. when the last kernel of an allocation this process created ends, the allocation is given back (unless job
   steps of other processes run in it, or Slurm cannot say whether they do). An allocation named by ``job_id``
   that this process did not create is never cancelled.

No allocation the user did not ask for
--------------------------------------
Every Jupyter server runs jupyter_client's kernel restarter: when a kernel's process ends, it calls
``restart_kernel(now=True)``. When the kernel's job step has ended, ``poll()`` asks Slurm once whether the
allocation still runs:

* it runs (the kernel crashed or exited): the restart runs a new kernel in the same allocation;
* it has ended (time limit, scancel, node failure, preemption): the kernel is reported dead with Slurm's reason
  in words (the kernel manager's ``execution_state`` and ``reason``, which jupyter_server's REST API shows) and
  the automatic restart is refused: :meth:`~SlurmProvisioner.pre_launch` raises :class:`KernelStartError` with
  that reason and asks Slurm for nothing. The restarter stays stopped (jupyter_client stopped it for the
  restart and starts it again only after a successful start), so nothing retries; connected JupyterLabs, which
  reconnect after the restarter's "restarting" message, are told that the kernel is dead and show the reason.
  The kernel stays in the server's list, so that it can be restarted. jupyter_client and tornado log the
  refusal; their lines keep the reason and lose the traceback, which would say nothing more.

A restart the user asks for (JupyterLab's *Restart Kernel*, ``POST /api/kernels/ID/restart``) is a graceful
one: jupyter_client calls :meth:`~SlurmProvisioner.shutdown_requested` with ``restart=True`` first, which the
restarter never does. Only such a restart, and only when the old allocation has ended, asks Slurm for a new
allocation; while the old one runs, it is kept.

Allocations end with their owner
--------------------------------
salloc starts ``cat`` on this host once the allocation is granted; its stdin is a pipe from this process. salloc
holds the allocation while ``cat`` runs and gives it back when ``cat`` exits. The provisioner gives an
allocation back by closing the pipe. When this process dies, however it dies (even SIGKILL), the kernel closes
the pipe: ``cat`` reads end of file and salloc gives the allocation back within a second. When the Jupyter
server's own Slurm job ends, Slurm signals its processes, ``cat`` among them, with the same result. None of
this depends on where the allocation's nodes are. When Slurm ends the allocation, ``--kill-command=HUP`` ends
``cat``, and salloc exits.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pwd
import shutil
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from jupyter_core.paths import jupyter_data_dir
from traitlets import Float, Unicode

from ..cluster import Cluster
from .. import siteconfig
from ..modules import ModuleCatalog, ModuleSettings, job_environment
from ..offer import Facts, Offer
from ..options import OptionsError, check_modules
from ..reasons import explain_allocation_end, explain_pending, parse_slurm_time, pending_message
from ..slurm import BASE_ENV, JobUnknown, SlurmError, SlurmRunner, allocations, cancel
from . import kernelspec, step

PROVISIONER_NAME = "dkrz-slurm-provisioner"


class KernelStartError(RuntimeError):
    """The kernel could not be started; the message says why in plain words."""


class _RefusalInOneLine(logging.Filter):
    """jupyter_client and tornado log a failed (re)start with its traceback; a :class:`KernelStartError` says
    all there is in its message, so its records keep the message and lose the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, KernelStartError):
            message = record.getMessage()
            record.msg, record.args = (message if message == str(error) else f"{message}: {error}"), ()
            record.exc_info = record.exc_text = None
        return True


def _refusals_in_one_line(*loggers: logging.Logger) -> None:
    for logger in loggers:
        if not any(isinstance(existing, _RefusalInOneLine) for existing in logger.filters):
            logger.addFilter(_RefusalInOneLine())


class Keeper:
    """The running ``salloc`` that holds an allocation this process asked for (see the module's docstring).

    Its stderr is read as it comes: ``on_job_id`` is called with the job id as soon as salloc names it.
    """

    def __init__(self, process: asyncio.subprocess.Process, log, on_job_id=None):
        self.process = process
        self.log = log
        self.job_id: str | None = None
        self.granted = asyncio.Event()
        #: salloc's last messages, for the reason of a refusal
        self.messages: collections.deque[str] = collections.deque(maxlen=20)
        self._on_job_id = on_job_id
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            self.messages.append(line)
            self.log.debug("%s", line)
            job_id = allocations.granted_job_id(line)
            if job_id and self.job_id is None:
                self.job_id = job_id
                if self._on_job_id is not None:
                    self._on_job_id(job_id)
            if "Granted job allocation" in line:
                self.granted.set()
        await self.process.wait()

    @property
    def running(self) -> bool:
        """salloc still runs, so the allocation is (still) held."""
        return self.process.returncode is None and not self.reader.done()

    def refusal(self) -> str:
        """Slurm's words from salloc's messages, once it has exited without a grant."""
        return SlurmError(["salloc"], self.process.returncode, "\n".join(self.messages)).reason

    async def release(self, timeout: float) -> bool:
        """Close salloc's stdin: ``cat`` ends and salloc gives the allocation back. True once salloc has exited."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.reader), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """End salloc whatever it is doing (a withdrawn request): stdin closed, then SIGTERM, then SIGKILL."""
        if await self.release(2.0):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(asyncio.shield(self.reader), 3.0)
                return
            except asyncio.TimeoutError:
                continue


@dataclass
class Allocation:
    """A Slurm allocation and the kernels of this process that run in it."""

    job_id: str
    owned: bool  # created by this process: given back when its last kernel ends
    kernels: set = field(default_factory=set)
    step_names: set = field(default_factory=set)  # every kernel step this process has run in it
    node: str = ""
    address: str = ""
    cpus: int | None = None
    shape: allocations.JobShape | None = None  # tasks, CPUs per task and all nodes, asked once
    keeper: Keeper | None = None  # the salloc that holds an owned allocation
    ended: bool = False  # Slurm said it no longer runs


#: every allocation this process runs kernels in, by job id
ALLOCATIONS: dict[str, Allocation] = {}


def _free_ports(count: int) -> list[int]:
    """Ports free here; on a compute node they are very likely free too (ephemeral range, random)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


class SlurmProvisioner(ModuleSettings, KernelProvisionerBase):
    """Runs a kernel in a Slurm allocation (see the module's docstring)."""

    connection_dir = Unicode(
        help="Where connection files go; must be on a file system the compute nodes share. "
             "Default: the runtime folder in the user's Jupyter data dir (in the home directory)."
    ).tag(config=True)
    slurm_timeout = Float(30.0, help="Seconds a Slurm query (squeue, scancel, ...) may take.").tag(config=True)
    srun = Unicode("srun", help="The srun program.").tag(config=True)
    queue_poll_interval = Float(
        10.0, help="Seconds between two looks (squeue) at an allocation that waits in the queue: its pending "
                   "reason and estimated start go to the log when they change."
    ).tag(config=True)

    #: tests replace this to record or fake Slurm
    runner_factory = SlurmRunner

    _TRAIT_KWARGS = ("kernel_id", "kernel_spec", "parent", "config", "log")

    def __init__(self, **kwargs: Any):
        names = set(self.class_trait_names())
        own = {key: kwargs.pop(key) for key in list(kwargs) if key not in self._TRAIT_KWARGS and key not in names}
        super().__init__(**kwargs)
        #: the kernelspec's options, as given (checked at launch)
        self.options_config: dict = own
        self.runner = type(self).runner_factory()
        self.process: asyncio.subprocess.Process | None = None
        self.exit_code: int | None = None
        self.allocation: Allocation | None = None
        self.step_id: str | None = None
        self.job_id: str | None = None
        #: the environment modules the kernel loads, checked against what the cluster offers
        self.modules: tuple[str, ...] = ()
        self._module_catalog: tuple[tuple, ModuleCatalog] | None = None  # with the settings it was made from
        #: seconds the allocation took (facts, salloc, squeue), for logs and measurements
        self.timings: dict[str, float] = {}
        #: what Slurm says about the kernel's allocation, for the log and for a panel: job id, state, reason
        #: (why it waits, or why it ended, in words), estimated start, node, time left (at the last look)
        self.status: dict[str, str | None] = dict.fromkeys(("job_id", "state", "reason", "start", "node",
                                                             "time_left"))
        #: why the kernel's allocation ended, in words: set when it has ended, cleared by a new allocation
        self.ended: str | None = None
        self._restart_asked = False  # the restart under way is one somebody asked for (graceful)
        self._end_checked = False  # poll() has asked Slurm about the allocation since the kernel's step ended
        self._queue_seen: tuple = ()
        #: what the hub offers this user (the site file), read at the first start
        self._site_offer: Offer | None = None
        #: the node the kernel runs on and its address (the allocation's first node unless ``node`` picks one)
        self.node: str = ""
        self.address: str = ""

    # -- the request --------------------------------------------------------------------------------------
    def kernel_options(self) -> kernelspec.KernelOptions:
        """The options checked for shape: raises OptionsError before any Slurm call."""
        return kernelspec.check_shape(self.options_config, self._offer())

    async def offered_modules(self) -> tuple[str, ...] | None:
        """The modules the kernel may load, or None when none are offered (no Lmod) or Lmod did not answer.
        Asked with this provisioner's module settings (after the site file's), kept for ``modules_cache_ttl``."""
        key = self.module_catalog_key
        if self._module_catalog is None or self._module_catalog[0] != key:
            self._module_catalog = key, self.new_module_catalog(self.runner, min(self.slurm_timeout, 10.0))
        return await self._module_catalog[1].offered(self.log)

    def _offer(self) -> Offer:
        """What the hub offers this user, from the site file (read at the kernel's first start); the file's
        module settings apply to this provisioner too."""
        if self._site_offer is None:
            try:
                siteconfig.refuse_retired(self, ("presets", "partitions"))
                site = siteconfig.for_kernels()
                siteconfig.apply(self, site, siteconfig.MODULE_SETTINGS if site.path else ())
            except siteconfig.SiteConfigError as exc:
                raise KernelStartError(str(exc)) from None
            self._site_offer = siteconfig.kernel_offer(site, _user())
        return self._site_offer

    async def _allocate(self, options: kernelspec.KernelOptions) -> Allocation:
        cluster = Cluster(self.runner, ttl=0, timeout=self.slurm_timeout, all_users=False)
        snapshot = await cluster.snapshot(_user())
        facts = self._offer().facts_from(snapshot, modules=await self.offered_modules())
        try:
            request = kernelspec.to_job_request(options, self._offer(), facts)
            self.modules = check_modules(options.modules, facts, request.modules)
        except OptionsError as exc:
            raise KernelStartError(f"The kernel's options are refused: {exc}") from None
        tag = f"dkrz-kernel:{self.kernel_id}"
        name = f"jupyter-kernel-{getattr(self.parent, 'kernel_name', '') or 'kernel'}"
        name = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:64]
        argv = allocations.salloc_argv(request, tasks_per_node=kernelspec.tasks_per_node(options, request),
                                       job_name=name, comment=tag)
        self.log.info("Asking Slurm for an allocation: %s", " ".join(argv))
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            keeper = Keeper(await self.runner.spawn(argv), self.log, on_job_id=self._job_assigned)
        except SlurmError as exc:
            raise KernelStartError(f"Cannot ask Slurm for the kernel's allocation: {exc}") from None
        try:
            await self._wait_for_grant(keeper, options.allocation_timeout)
        except BaseException as exc:  # refused, timed out, or the start was cancelled: leave nothing behind
            self.status.update(state="NOT GRANTED", reason=str(exc) or "the kernel's start was cancelled")
            await self._withdraw(keeper, tag)
            raise
        self.log.info("Slurm granted allocation %s in %.2f s", keeper.job_id, loop.time() - started)
        return Allocation(job_id=keeper.job_id, owned=True, cpus=request.cores, keeper=keeper)

    def _job_assigned(self, job_id: str) -> None:
        self.job_id = job_id
        self.status.update(job_id=job_id, state="PENDING", reason=None, start=None, node=None, time_left=None)
        self.log.info("Kernel %s: Slurm job %s is its allocation", self.kernel_id, job_id)

    async def _wait_for_grant(self, keeper: Keeper, timeout: float) -> None:
        """Until salloc says granted; meanwhile, the queue's reason and estimate go to the log on change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        granted = asyncio.ensure_future(keeper.granted.wait())
        try:
            while not keeper.granted.is_set():
                if keeper.reader.done():
                    raise KernelStartError(f"Slurm refused the kernel's allocation: {keeper.refusal()}")
                left = deadline - loop.time()
                if left <= 0:
                    raise KernelStartError(f"Slurm did not grant the allocation within {timeout:g} s; "
                                           "the request was withdrawn.")
                await asyncio.wait([granted, keeper.reader], timeout=min(left, self.queue_poll_interval),
                                   return_when=asyncio.FIRST_COMPLETED)
                if keeper.job_id and not keeper.granted.is_set() and not keeper.reader.done():
                    await self._look_at_queue(keeper.job_id)
        finally:
            granted.cancel()

    async def _look_at_queue(self, job_id: str) -> None:
        """One squeue for a waiting allocation: its reason and estimated start, logged when they change."""
        try:
            queued = await allocations.waiting(self.runner, job_id, self.slurm_timeout)
        except SlurmError as exc:
            self.log.debug("squeue for pending allocation %s failed: %s", job_id, exc)
            return
        if queued.state != "PENDING":
            return
        reason, start = queued.reason, queued.start if parse_slurm_time(queued.start) else None
        self.status.update(state=queued.state, reason=explain_pending(reason), start=start)
        if (reason, start) != self._queue_seen:
            self._queue_seen = (reason, start)
            self.log.info("Kernel %s: %s", self.kernel_id, pending_message(job_id, reason, start))

    async def _withdraw(self, keeper: Keeper, tag: str) -> None:
        """Take back a request that was not granted (or not in time): scancel its job, end salloc."""
        if keeper.job_id:
            await self._scancel([keeper.job_id])
        else:
            await self._cancel_tagged(tag)
        await keeper.stop()

    async def _cancel_tagged(self, tag: str) -> None:
        """Cancel a job that a failed or timed-out salloc may have left behind (found by its comment)."""
        try:
            job_id = await allocations.tagged(self.runner, tag, self.slurm_timeout)
            if job_id is not None:
                await cancel(self.runner, job_id, timeout=self.slurm_timeout)
        except SlurmError as exc:
            self.log.warning("Could not look for a left-over allocation %s: %s", tag, exc)

    async def _locate(self, allocation: Allocation, timeout: float) -> None:
        """Wait until the allocation runs; learn its first node, that node's address and its CPUs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                where = await allocations.placement(self.runner, allocation.job_id, self.slurm_timeout)
            except SlurmError as exc:
                raise KernelStartError(f"Allocation {allocation.job_id}: {exc.reason}") from None
            if where.state == "RUNNING":
                break
            if where.state not in ("PENDING", "CONFIGURING") or loop.time() > deadline:
                raise KernelStartError(f"Allocation {allocation.job_id} is not running "
                                       f"({where.state.lower() or 'it has ended'}).")
            await asyncio.sleep(1.0)
        try:
            node = (await allocations.hostnames(self.runner, where.nodelist, self.slurm_timeout))[0]
        except SlurmError as exc:
            raise KernelStartError(f"Allocation {allocation.job_id}: {exc.reason}") from None
        allocation.node = node
        self.status.update(job_id=allocation.job_id, state=where.state, reason=None, start=None, node=node,
                           time_left=where.time_left)
        if allocation.cpus is None and where.cpus_per_node is not None:
            allocation.cpus = where.cpus_per_node
        allocation.address = await address_of(node)

    async def _acquire(self, options: kernelspec.KernelOptions) -> Allocation:
        if options.job_id is not None:
            try:
                self.modules = check_modules(options.modules, Facts(modules=await self.offered_modules()))
            except OptionsError as exc:
                raise KernelStartError(f"The kernel's options are refused: {exc}") from None
            allocation = ALLOCATIONS.get(options.job_id) or Allocation(job_id=options.job_id, owned=False)
        else:
            allocation = await self._allocate(options)
        try:
            await self._locate(allocation, options.allocation_timeout)
        except KernelStartError:
            if allocation.owned and not allocation.kernels:
                await self._give_back(allocation)
            raise
        ALLOCATIONS.setdefault(allocation.job_id, allocation).kernels.add(self.kernel_id)
        return ALLOCATIONS[allocation.job_id]

    # -- the allocation's end ------------------------------------------------------------------------------
    async def _allocation_runs(self, allocation: Allocation) -> bool:
        """Whether the allocation still runs; when it does not, :attr:`ended` says why.

        Raises :class:`KernelStartError` when Slurm cannot be asked: nothing is concluded then.
        """
        try:
            end = await allocations.end_state(self.runner, allocation.job_id, self.slurm_timeout)
        except SlurmError as exc:
            raise KernelStartError(f"Cannot tell whether allocation {allocation.job_id} still runs "
                                   f"({exc.reason}); the kernel was not started.") from None
        if end.state == "RUNNING":
            return True
        allocation.ended = True
        if self.ended is None:
            self._mark_ended(await self._explain_end(allocation.job_id, end), end.state)
        return False

    async def _explain_end(self, job_id: str, end: allocations.EndState) -> str:
        cancelled_by = None
        if end.state == "CANCELLED":  # sacct knows by whom ("CANCELLED by 1001")
            try:
                uid = await allocations.cancelled_by(self.runner, job_id, self.slurm_timeout)
            except SlurmError as exc:  # the words say "cancelled" without by whom
                self.log.debug("sacct for allocation %s failed: %s", job_id, exc)
                uid = None
            cancelled_by = _user_name(uid) if uid is not None else None
        return explain_allocation_end(job_id, end.state, end.reason, end.time_limit, cancelled_by)

    def _mark_ended(self, words: str, state: str = "") -> None:
        """The allocation has ended: the kernel is dead, and why is in the log, the status and the server's model."""
        self.ended = (f"{words} The kernel was not restarted automatically, because that needs a new allocation; "
                      "restart the kernel to ask Slurm for one.")
        self.status.update(state=state or "ENDED", reason=words, time_left=None)
        self.log.warning("Kernel %s is dead: %s", self.kernel_id, self.ended)
        self._show_state("dead", self.ended)

    def _show_state(self, execution_state: str, reason: str) -> None:
        """Set the kernel's state and reason where jupyter_server's REST API shows them (``GET /api/kernels/ID``)."""
        km = self.parent
        if km is not None and km.has_trait("execution_state") and km.has_trait("reason"):
            km.execution_state = execution_state
            km.reason = reason

    # -- launch -------------------------------------------------------------------------------------------
    async def shutdown_requested(self, restart: bool = False) -> None:
        """A graceful shutdown, and with ``restart`` a restart that somebody asked for (JupyterLab's Restart,
        ``POST /api/kernels/ID/restart``): the restarter's automatic restarts never come this way."""
        self._restart_asked = restart
        await super().shutdown_requested(restart=restart)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        asked, self._restart_asked = self._restart_asked, False
        try:
            options = self.kernel_options()
        except OptionsError as exc:
            raise KernelStartError(f"The kernel's options are refused: {exc}") from None
        if self.allocation is not None:  # a restart keeps the allocation while it runs
            try:
                runs = await self._allocation_runs(self.allocation)
            except KernelStartError as exc:  # Slurm cannot be asked: no restart, and the allocation stays
                self._show_state("dead", str(exc))
                raise
            if not runs:
                await self._release()
        if self.allocation is None and self.ended is not None:
            if not asked:  # the restarter's: it never gets a new allocation
                self._show_state("dead", self.ended)
                _refusals_in_one_line(getattr(self.log, "logger", self.log), logging.getLogger("tornado.application"))
                raise KernelStartError(self.ended)
            self.log.info("Kernel %s: restart asked for; a new allocation replaces the ended one", self.kernel_id)
            self.ended = None
            self._show_state("starting", "")
        if self.allocation is None:
            started = asyncio.get_running_loop().time()
            self.allocation = await self._acquire(options)
            self.timings["allocation"] = asyncio.get_running_loop().time() - started
        self.job_id = self.allocation.job_id

        try:
            await self._place(options)
            return await self._prepare(**kwargs)
        except BaseException:
            if not self.has_process:  # nothing runs in the allocation on our behalf: give it back
                await self._release()
            raise

    async def _place(self, options: kernelspec.KernelOptions) -> None:
        """The kernel's node (``node``, which must be one of the allocation's, or its first) and the allocation's
        tasks and CPUs per task, which the kernel's step passes on (asked once per allocation)."""
        allocation = self.allocation
        if allocation.shape is None:
            try:
                allocation.shape = await allocations.shape_of(self.runner, allocation.job_id, self.slurm_timeout)
            except SlurmError as exc:
                raise KernelStartError(f"Allocation {allocation.job_id}: {exc.reason}") from None
        try:
            self.node = kernelspec.check_node(options.node, allocation.job_id, allocation.shape.hostnames) \
                or allocation.node
        except OptionsError as exc:
            raise KernelStartError(f"The kernel's options are refused: {exc}") from None
        self.address = allocation.address if self.node == allocation.node else await address_of(self.node)

    async def _prepare(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        extra_arguments = kwargs.pop("extra_arguments", [])
        if km is not None:
            folder = self.connection_dir or os.path.join(jupyter_data_dir(), "runtime")
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if not km._connection_file_written:
                km.connection_file = os.path.join(folder, f"kernel-{self.kernel_id}.json")
            if km.ip != self.address or not km.shell_port:
                # a new node gets new ports too: jupyter_server sees them change and reconnects its watcher
                km.ip = self.address
                km._connection_file_written = False
                km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port = _free_ports(5)
            km.write_connection_file()
            self.connection_info = km.get_connection_info()
            kernel_cmd = km.format_kernel_cmd(extra_arguments=extra_arguments)
        else:
            kernel_cmd = self.kernel_spec.argv + extra_arguments
        return await super().pre_launch(cmd=kernel_cmd, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        env = step.scrub_slurm_env(dict(kwargs.get("env") or os.environ))
        cwd = kwargs.get("cwd")
        srun = shutil.which(self.srun, path=env.get("PATH", "") + os.pathsep + BASE_ENV["PATH"]) or self.srun
        self.step_id = None
        self.exit_code = None
        self._end_checked = False
        self.allocation.step_names.add(self.step_name)
        # bash in the job step sets the allocation's view, loads the modules, then becomes the kernel
        cmd = step.step_command(cmd, load_modules=bool(self.modules))
        env.update(step.job_view_environment(self.allocation.shape))
        if self.modules:
            env.update(job_environment(self.modules_init, self.modules), MODULEPATH=":".join(self.module_path))
        argv = allocations.srun_argv(self.allocation.job_id, self.node, cmd, step_name=self.step_name,
                               cpus=self.allocation.cpus, cwd=str(cwd) if cwd else None, srun=srun)
        self.log.info("Starting kernel %s in allocation %s on %s", self.kernel_id, self.allocation.job_id,
                      self.node)
        self.log.debug("srun: %s", argv)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=str(cwd) if cwd else None, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            await self._release()
            raise KernelStartError(f"Cannot run {srun}: {exc.strerror}") from None
        return self.connection_info

    @property
    def step_name(self) -> str:
        return f"kernel-{self.kernel_id}"

    @property
    def has_process(self) -> bool:
        return self.process is not None

    # -- state and signals --------------------------------------------------------------------------------
    async def poll(self) -> int | None:
        """The kernel's exit code, or None while it runs. Once its step has ended, Slurm is asked (once) whether
        the allocation still runs: if not, the kernel is marked dead with the reason, before the restarter acts."""
        if self.process is None:
            return self.exit_code if self.exit_code is not None else 0
        code = self.process.returncode
        shutting_down = getattr(self.parent, "shutting_down", False)  # then the end is no news
        if code is not None and not (self._end_checked or shutting_down) and self.allocation and self.ended is None:
            self._end_checked = True
            try:
                if await self._allocation_runs(self.allocation):
                    self.log.warning("Kernel %s ended (exit code %s) in allocation %s, which still runs",
                                     self.kernel_id, code, self.allocation.job_id)
            except KernelStartError as exc:
                self.log.warning("Kernel %s ended (exit code %s): %s", self.kernel_id, code, exc)
        return code

    async def wait(self) -> int | None:
        if self.process is None:
            return self.exit_code if self.exit_code is not None else 0
        self.exit_code = await self.process.wait()
        self.process = None
        return self.exit_code

    async def _find_step(self) -> str | None:
        """The id of this kernel's job step (``77.1``), or None when Slurm does not list it (yet) or cannot say."""
        if self.step_id is None and self.allocation is not None:
            try:
                found = await allocations.steps(self.runner, self.allocation.job_id, self.slurm_timeout)
            except SlurmError as exc:
                self.log.warning("Cannot find the kernel's job step: %s", exc)
                return None
            for job_step in found:
                if job_step.name == self.step_name:
                    self.step_id = job_step.id
        return self.step_id

    async def send_signal(self, signum: int) -> None:
        """Signal the kernel's job step through Slurm (``scancel --signal``); srun relays nothing reliably."""
        if self.process is None or self.process.returncode is not None:
            return
        if signum == 0:
            return
        step = None
        for _ in range(20):  # a step that has just been launched may take a moment to be registered
            step = await self._find_step()
            if step or self.process.returncode is not None:
                break
            await asyncio.sleep(0.25)
        if step is None:
            self.log.warning("No job step found for kernel %s; signalling srun instead", self.kernel_id)
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass
            return
        name = signal.Signals(signum).name.removeprefix("SIG")
        try:
            await cancel(self.runner, step, signal=name, timeout=self.slurm_timeout)
        except SlurmError as exc:
            self.log.warning("scancel --signal=%s %s failed: %s", name, step, exc)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def kill(self, restart: bool = False) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        step_id = await self._find_step()
        if step_id:
            try:
                await cancel(self.runner, step_id, signal="KILL", timeout=self.slurm_timeout)
            except SlurmError as exc:
                self.log.warning("scancel %s failed: %s", step_id, exc)
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), 3.0)
        except asyncio.TimeoutError:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass

    # -- the end ------------------------------------------------------------------------------------------
    async def cleanup(self, restart: bool = False) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()
        if self.process is not None:
            self.exit_code = await self.process.wait()
            self.process = None
        self.step_id = None
        if not restart:
            await self._release()

    async def _release(self) -> None:
        allocation, self.allocation = self.allocation, None
        if allocation is None:
            return
        allocation.kernels.discard(self.kernel_id)
        if allocation.kernels:
            self.log.info("Allocation %s stays: %d more kernel(s) run in it", allocation.job_id,
                          len(allocation.kernels))
            return
        if not allocation.owned or allocation.ended:  # nothing to give back
            ALLOCATIONS.pop(allocation.job_id, None)
            return
        try:
            others = await self._other_steps(allocation)
        except JobUnknown:
            others = []  # Slurm no longer knows the job: nothing runs in it
        except SlurmError as exc:  # it stays (with its salloc), never cancelled on a guess
            self.log.warning("Allocation %s stays: Slurm cannot say whether job steps of others run in it (%s); "
                             "it ends with the next kernel of this server that leaves it, when this server ends, "
                             "at its time limit or with scancel", allocation.job_id, exc.reason)
            return
        if others:  # kernels of other processes (another Jupyter server) joined it by job id
            self.log.warning("Allocation %s stays: other job steps run in it (%s); it ends when this server ends, "
                             "at its time limit or with scancel", allocation.job_id, ", ".join(others))
            return
        ALLOCATIONS.pop(allocation.job_id, None)
        self.log.info("Giving allocation %s back: its last kernel has ended", allocation.job_id)
        await self._give_back(allocation)

    async def _other_steps(self, allocation: Allocation) -> list[str]:
        """Job steps in the allocation that no kernel of this process started (nor Slurm's extern/batch).

        Raises :class:`SlurmError` when Slurm cannot be asked or its answer cannot be read
        (:class:`~dkrzspawner.slurm.UnexpectedOutput`), :class:`JobUnknown` when Slurm no longer knows the job.
        """
        ours = allocation.step_names | {self.step_name} | allocations.SLURM_STEPS
        return [job_step.id for job_step in await allocations.steps(self.runner, allocation.job_id,
                                                                     self.slurm_timeout)
                if job_step.name not in ours]

    async def _give_back(self, allocation: Allocation) -> None:
        """End an owned allocation: its salloc gives it back when its stdin closes; scancel if salloc is gone
        already (the job may still run) or does not exit in time."""
        keeper = allocation.keeper
        if keeper is not None and keeper.running and await keeper.release(self.slurm_timeout):
            return
        await self._scancel([allocation.job_id])
        if keeper is not None:
            await keeper.stop()

    async def _scancel(self, ids) -> None:
        try:
            await cancel(self.runner, ids, timeout=self.slurm_timeout)
        except SlurmError as exc:
            self.log.warning("scancel %s failed: %s", " ".join(ids), exc)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 10.0)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 30.0)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update({"job_id": self.job_id, "owned": bool(self.allocation and self.allocation.owned),
                     "node": self.node or None, "status": dict(self.status)})
        return info


async def address_of(node: str) -> str:
    """The node's IPv4 address (where the kernel binds and the client connects), or its name if it has none."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(node, None, family=socket.AF_INET,
                                                             type=socket.SOCK_STREAM)
        return infos[0][4][0]
    except (OSError, IndexError):
        return node


def _user() -> str:
    """The user Slurm sees: the one this process runs as (not $USER, which can be stale)."""
    return pwd.getpwuid(os.getuid()).pw_name


def _user_name(uid: str) -> str:
    """A user's name for sacct's ``CANCELLED by 1001`` (the number itself when it names nobody here)."""
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return uid
