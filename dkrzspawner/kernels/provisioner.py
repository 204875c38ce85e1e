"""A jupyter_client kernel provisioner that runs kernels on Slurm compute nodes.

Entry point ``dkrz-slurm-provisioner`` (group ``jupyter_client.kernel_provisioners``). A kernelspec uses it with::

    "metadata": {"kernel_provisioner": {"provisioner_name": "dkrz-slurm-provisioner",
                                        "config": {"preset": "shared", "cores": 2}}}

What happens, all asynchronously (asyncio subprocesses with argument lists, never a shell):

1. the options are checked for shape (no Slurm), then validated against the cluster's facts with the
   spawner's own options model;
2. ``salloc --no-shell`` asks for the allocation as the current user (or ``job_id`` names an existing one);
3. the allocation's first node comes from ``squeue`` (or ``node`` picks one of an existing allocation's nodes);
   the connection file (in the user's Jupyter runtime dir, on the shared file system) gets that node's address,
   and the kernel binds there;
4. ``srun --jobid=ID --overlap`` runs the kernel as a named job step of one task; the step gives the kernel the
   allocation's tasks and CPUs per task (:data:`.options.JOB_VIEW`), so ``srun`` in a cell uses all of them.
   Signals (interrupt) go to that step with ``scancel --signal=INT ID.STEP``; the step ends when the kernel ends
   or when the allocation does (time limit), and ``poll()`` then reports the kernel dead;
5. when the last kernel of an allocation this process created ends, the allocation is cancelled. An allocation
   named by ``job_id`` that this process did not create is never cancelled.
"""

from __future__ import annotations

import asyncio
import os
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
from ..modules import job_environment
from ..options import Facts, OptionsError, check_modules
from ..slurm import SlurmError, SlurmRunner, SlurmTimeout, BASE_ENV
from ..spawnmodules import ModulesMixin
from . import jobshape
from . import options as kopts

PROVISIONER_NAME = "dkrz-slurm-provisioner"


class KernelStartError(RuntimeError):
    """The kernel could not be started; the message says why in plain words."""


@dataclass
class Allocation:
    """A Slurm allocation and the kernels of this process that run in it."""

    job_id: str
    owned: bool  # created by this process: cancelled when its last kernel ends
    kernels: set = field(default_factory=set)
    step_names: set = field(default_factory=set)  # every kernel step this process has run in it
    node: str = ""
    address: str = ""
    cpus: int | None = None
    shape: kopts.JobShape | None = None  # tasks, CPUs per task and all nodes, asked once


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


class SlurmProvisioner(ModulesMixin, KernelProvisionerBase):
    """Runs a kernel in a Slurm allocation (see the module's docstring)."""

    connection_dir = Unicode(
        help="Where connection files go; must be on a file system the compute nodes share. "
             "Default: the runtime folder in the user's Jupyter data dir (in the home directory)."
    ).tag(config=True)
    slurm_timeout = Float(30.0, help="Seconds a Slurm query (squeue, scancel, ...) may take.").tag(config=True)
    srun = Unicode("srun", help="The srun program.").tag(config=True)

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
        #: the node the kernel runs on and its address (the allocation's first node unless ``node`` picks one)
        self.node: str = ""
        self.address: str = ""
        #: the environment modules the kernel loads, checked against what the cluster offers
        self.modules: tuple[str, ...] = ()
        #: seconds the allocation took (facts, salloc, squeue), for logs and measurements
        self.timings: dict[str, float] = {}
        #: what the hub offers this user (the site file), read at the first start
        self._site_offer: siteconfig.Offer | None = None

    # -- the request --------------------------------------------------------------------------------------
    def kernel_options(self) -> kopts.KernelOptions:
        """The options checked for shape: raises OptionsError before any Slurm call."""
        return kopts.check_shape(self.options_config, self._offer())

    def _offer(self) -> siteconfig.Offer:
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

    async def _allocate(self, options: kopts.KernelOptions) -> Allocation:
        cluster = Cluster(self.runner, ttl=0, timeout=self.slurm_timeout)
        snapshot = await cluster.snapshot(_user())
        facts = self._offer().facts(snapshot, modules=await self.offered_modules())
        try:
            request = kopts.to_job_request(options, self._offer(), facts)
            self.modules = check_modules(options.modules, facts, request.modules)
        except OptionsError as exc:
            raise KernelStartError(f"The kernel's options are refused: {exc}") from None
        tag = f"dkrz-kernel:{self.kernel_id}"
        name = f"jupyter-kernel-{getattr(self.parent, 'kernel_name', '') or 'kernel'}"
        name = "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:64]
        argv = kopts.salloc_argv(request, tasks=options.tasks, job_name=name, comment=tag)
        self.log.info("Asking Slurm for an allocation: %s", " ".join(argv))
        try:
            result = await self.runner.run(argv, timeout=options.allocation_timeout)
        except SlurmTimeout:
            await self._cancel_tagged(tag)
            raise KernelStartError(f"Slurm did not grant the allocation within {options.allocation_timeout:g} s; "
                                   "the request was withdrawn.") from None
        except SlurmError as exc:
            await self._cancel_tagged(tag)
            raise KernelStartError(f"Slurm refused the kernel's allocation: {exc.reason}") from None
        job_id = kopts.granted_job_id(result.stderr + "\n" + result.stdout)
        if job_id is None:
            raise KernelStartError(f"salloc gave no job id: {result.stderr.strip()[:200]}")
        self.log.info("Slurm granted allocation %s in %.2f s", job_id, result.seconds)
        return Allocation(job_id=job_id, owned=True, cpus=request.cores)

    async def _cancel_tagged(self, tag: str) -> None:
        """Cancel a job that a failed or timed-out salloc may have left behind (found by its comment)."""
        try:
            out = (await self.runner.run(["squeue", "-h", "--me", "-o", "%i|%k"], timeout=self.slurm_timeout)).stdout
            for line in out.splitlines():
                job_id, _, comment = line.partition("|")
                if comment.strip() == tag:
                    await self.runner.run(["scancel", job_id.strip()], timeout=self.slurm_timeout)
        except SlurmError as exc:
            self.log.warning("Could not look for a left-over allocation %s: %s", tag, exc)

    async def _locate(self, allocation: Allocation, timeout: float) -> None:
        """Wait until the allocation runs; learn its first node, that node's address and its CPUs."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                out = (await self.runner.run(["squeue", "-h", "-j", allocation.job_id, "-o", "%T|%N|%C|%D"],
                                             timeout=self.slurm_timeout)).stdout.strip()
            except SlurmError as exc:
                raise KernelStartError(f"Allocation {allocation.job_id}: {exc.reason}") from None
            state, nodes, cpus, count = (out.split("|") + ["", "", "", ""])[:4]
            if state == "RUNNING":
                break
            if state not in ("PENDING", "CONFIGURING") or loop.time() > deadline:
                raise KernelStartError(f"Allocation {allocation.job_id} is not running "
                                       f"({state.lower() or 'it has ended'}).")
            await asyncio.sleep(1.0)
        node = (await jobshape.hostnames(self.runner, nodes, self.slurm_timeout))[0]
        allocation.node = node
        if allocation.cpus is None and cpus.isdigit() and count.isdigit() and int(count):
            allocation.cpus = int(cpus) // int(count)
        allocation.address = await jobshape.address_of(node)

    async def _acquire(self, options: kopts.KernelOptions) -> Allocation:
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
                await self._scancel([allocation.job_id])
            raise
        ALLOCATIONS.setdefault(allocation.job_id, allocation).kernels.add(self.kernel_id)
        return ALLOCATIONS[allocation.job_id]

    # -- launch -------------------------------------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        try:
            options = self.kernel_options()
        except OptionsError as exc:
            raise KernelStartError(f"The kernel's options are refused: {exc}") from None
        if self.allocation is not None:  # a restart: keep the allocation while it runs
            try:
                await self._locate(self.allocation, 0)
            except KernelStartError:
                self.log.warning("Allocation %s has ended; the restarted kernel gets a new one",
                                 self.allocation.job_id)
                await self._release()
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

    async def _place(self, options: kopts.KernelOptions) -> None:
        """The kernel's node (``node``, which must be one of the allocation's, or its first) and the allocation's
        tasks and CPUs per task, which the kernel's step passes on (asked once per allocation)."""
        allocation = self.allocation
        if allocation.shape is None:
            try:
                allocation.shape = await jobshape.shape_of(self.runner, allocation.job_id, self.slurm_timeout)
            except SlurmError as exc:
                raise KernelStartError(f"Allocation {allocation.job_id}: {exc.reason}") from None
        try:
            self.node = kopts.check_node(options.node, allocation.job_id, allocation.shape.hostnames) \
                or allocation.node
        except OptionsError as exc:
            raise KernelStartError(f"The kernel's options are refused: {exc}") from None
        self.address = allocation.address if self.node == allocation.node else await jobshape.address_of(self.node)

    async def _prepare(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        extra_arguments = kwargs.pop("extra_arguments", [])
        if km is not None:
            folder = self.connection_dir or os.path.join(jupyter_data_dir(), "runtime")
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if not km._connection_file_written:
                km.connection_file = os.path.join(folder, f"kernel-{self.kernel_id}.json")
            if km.ip != self.address:
                km.ip = self.address
                km._connection_file_written = False
            if not km.shell_port:
                km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port = _free_ports(5)
            km.write_connection_file()
            self.connection_info = km.get_connection_info()
            kernel_cmd = km.format_kernel_cmd(extra_arguments=extra_arguments)
        else:
            kernel_cmd = self.kernel_spec.argv + extra_arguments
        return await super().pre_launch(cmd=kernel_cmd, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        env = kopts.scrub_slurm_env(dict(kwargs.get("env") or os.environ))
        cwd = kwargs.get("cwd")
        srun = shutil.which(self.srun, path=env.get("PATH", "") + os.pathsep + BASE_ENV["PATH"]) or self.srun
        self.step_id = None
        self.exit_code = None
        self.allocation.step_names.add(self.step_name)
        # bash in the job step sets the allocation's view, loads the modules, then becomes the kernel
        cmd = kopts.step_command(cmd, load_modules=bool(self.modules))
        env.update(kopts.job_view_environment(self.allocation.shape))
        if self.modules:
            env.update(job_environment(self.modules_init, self.modules), MODULEPATH=":".join(self.module_path))
        argv = kopts.srun_argv(self.allocation.job_id, self.node, cmd, step_name=self.step_name,
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
        if self.process is None:
            return self.exit_code if self.exit_code is not None else 0
        return self.process.returncode

    async def wait(self) -> int | None:
        if self.process is None:
            return self.exit_code if self.exit_code is not None else 0
        self.exit_code = await self.process.wait()
        self.process = None
        return self.exit_code

    async def _find_step(self) -> str | None:
        if self.step_id is None and self.allocation is not None:
            try:
                out = (await self.runner.run(["squeue", "-h", "-s", "-j", self.allocation.job_id, "-o", "%i|%j"],
                                             timeout=self.slurm_timeout)).stdout
            except SlurmError as exc:
                self.log.warning("Cannot find the kernel's job step: %s", exc)
                return None
            for line in out.splitlines():
                step, _, name = line.partition("|")
                if name.strip() == self.step_name:
                    self.step_id = step.strip()
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
            await self.runner.run(["scancel", f"--signal={name}", step], timeout=self.slurm_timeout)
        except SlurmError as exc:
            self.log.warning("scancel --signal=%s %s failed: %s", name, step, exc)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def kill(self, restart: bool = False) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        step = await self._find_step()
        if step:
            try:
                await self.runner.run(["scancel", "--signal=KILL", step], timeout=self.slurm_timeout)
            except SlurmError as exc:
                self.log.warning("scancel %s failed: %s", step, exc)
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
        ALLOCATIONS.pop(allocation.job_id, None)
        if not allocation.owned:
            return
        others = await self._other_steps(allocation)
        if others:  # kernels of other processes (another Jupyter server) joined it by job id
            self.log.warning("Allocation %s stays: other job steps run in it (%s); it ends at its time limit "
                             "or with scancel", allocation.job_id, ", ".join(others))
            return
        self.log.info("Cancelling allocation %s: its last kernel has ended", allocation.job_id)
        await self._scancel([allocation.job_id])

    async def _other_steps(self, allocation: Allocation) -> list[str]:
        """Job steps in the allocation that no kernel of this process started (nor Slurm's extern/batch)."""
        try:
            out = (await self.runner.run(["squeue", "-h", "-s", "-j", allocation.job_id, "-o", "%i|%j"],
                                         timeout=self.slurm_timeout)).stdout
        except SlurmError:
            return []  # cannot tell: the usual case is that nothing else runs there
        found = []
        for line in out.splitlines():
            step, _, name = line.strip().partition("|")
            if step and name not in allocation.step_names | {self.step_name, "extern", "batch", "interactive"}:
                found.append(step)
        return found

    async def _scancel(self, ids) -> None:
        try:
            await self.runner.run(["scancel", *ids], timeout=self.slurm_timeout)
        except SlurmError as exc:
            self.log.warning("scancel %s failed: %s", " ".join(ids), exc)

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 10.0)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 30.0)

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info.update({"job_id": self.job_id, "owned": bool(self.allocation and self.allocation.owned),
                     "node": self.node or None})
        return info


def _user() -> str:
    """The user Slurm sees: the one this process runs as (not $USER, which can be stale)."""
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name
