"""kernels/provisioner.py with a recorded Slurm: the order of calls, allocation sharing, signals, refusals."""

from __future__ import annotations

import signal

import pytest
from jupyter_client.kernelspec import KernelSpec

from dkrzspawner.kernels import options as kopts
from dkrzspawner.kernels import provisioner as prov
from dkrzspawner.kernels.provisioner import KernelStartError, SlurmProvisioner
from dkrzspawner.slurm import Result, SlurmRejected

from .test_kernels_cli import PARTITIONS, SINFO


class FakeSlurm:
    def __init__(self, squeue="RUNNING|vm|2|1", salloc="salloc: Granted job allocation 77\n", steps="",
                 shape="1         |2         |vm                  "):
        self.calls = []
        self.squeue, self.salloc, self.steps, self.shape = squeue, salloc, steps, shape

    async def run(self, argv, *, user=None, env=None, stdin=None, timeout=None):
        self.calls.append(list(argv))
        program = argv[0]
        answers = {"sinfo": SINFO, "sacctmgr": "bb1234|bb1234|\n", "scancel": ""}
        if program == "scontrol":
            return Result(PARTITIONS if argv[2] == "partition" else "No reservations in the system\n", "", 0.0)
        if program == "salloc":
            if isinstance(self.salloc, Exception):
                raise self.salloc
            return Result("", self.salloc, 0.01)
        if program == "squeue" and "-O" in argv:
            return Result(self.shape, "", 0.0)
        if program == "squeue":
            return Result(self.steps if "-s" in argv else ("" if "--me" in argv else self.squeue), "", 0.0)
        return Result(answers[program], "", 0.0)

    def programs(self):
        return [call[0] for call in self.calls]


class FakeProcess:
    def __init__(self):
        self.returncode = None
        self.signals = []

    def send_signal(self, signum):
        self.signals.append(signum)

    def kill(self):
        self.returncode = -9

    async def wait(self):
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode


@pytest.fixture(autouse=True)
def clean_registry():
    prov.ALLOCATIONS.clear()
    yield
    prov.ALLOCATIONS.clear()


def make(fake, kernel_id="k1", **config) -> SlurmProvisioner:
    spec = KernelSpec(argv=["/py", "-m", "ipykernel_launcher", "-f", "{connection_file}"], display_name="t",
                      language="python")
    SlurmProvisioner.runner_factory = lambda: fake
    config.setdefault("lmod_command", "")  # no modules unless a test offers them
    try:
        return SlurmProvisioner(kernel_id=kernel_id, kernel_spec=spec, parent=None, **config)
    finally:
        SlurmProvisioner.runner_factory = prov.SlurmRunner


async def test_config_keys_become_options_and_traits_stay_traits():
    p = make(FakeSlurm(), preset="shared", cores=2, slurm_timeout=5.0)
    assert p.options_config == {"preset": "shared", "cores": 2}
    assert p.slurm_timeout == 5.0


async def test_refused_options_make_no_slurm_call():
    fake = FakeSlurm()
    p = make(fake, preset="shared", cores=3)
    with pytest.raises(KernelStartError, match="Cores must be one of 1, 2, 4"):
        await p.pre_launch()
    assert fake.calls == []


async def test_limits_refused_before_salloc():
    fake = FakeSlurm()
    with pytest.raises(KernelStartError, match="Cores must be between 1 and 8"):
        await make(fake, partition="shared", cores=9).pre_launch()
    assert "salloc" not in fake.programs()


async def test_allocation_then_node_then_cancel_when_the_last_kernel_ends():
    fake = FakeSlurm()
    p = make(fake, preset="shared", cores=2)
    kwargs = await p.pre_launch()
    assert kwargs["cmd"][0] == "/py"
    salloc = next(call for call in fake.calls if call[0] == "salloc")
    assert salloc[:2] == ["salloc", "--no-shell"] and "--comment=dkrz-kernel:k1" in salloc
    assert "--cpus-per-task=2" in salloc and "--partition=shared" in salloc and "--account=bb1234" in salloc
    assert ["squeue", "-h", "-j", "77", "-o", "%T|%N|%C|%D"] in fake.calls
    assert p.job_id == "77" and p.allocation.node == "vm" and p.allocation.owned
    assert p.allocation.address in ("127.0.0.1", "vm")  # vm's address where it resolves (here: loopback)
    await p.cleanup(restart=True)  # a restart keeps the allocation
    assert "scancel" not in fake.programs()
    await p.cleanup()
    assert fake.calls[-1] == ["scancel", "77"]
    assert prov.ALLOCATIONS == {}


async def test_a_second_kernel_joins_by_job_id_and_the_allocation_outlives_the_first():
    fake = FakeSlurm()
    first = make(fake, "a", preset="shared")
    await first.pre_launch()
    second = make(fake, "b", job_id="77")
    await second.pre_launch()
    assert fake.programs().count("salloc") == 1
    assert prov.ALLOCATIONS["77"].kernels == {"a", "b"}
    await first.cleanup()
    assert "scancel" not in fake.programs()
    await second.cleanup()
    assert fake.calls[-1] == ["scancel", "77"]


async def test_an_allocation_made_elsewhere_is_never_cancelled():
    fake = FakeSlurm()
    one, two = make(fake, "a", job_id=90), make(fake, "b", job_id=90)
    await one.pre_launch()
    await two.pre_launch()
    await one.cleanup()
    await two.cleanup()
    assert "salloc" not in fake.programs() and "scancel" not in fake.programs()


async def test_an_ended_allocation_is_refused():
    fake = FakeSlurm(squeue="")
    with pytest.raises(KernelStartError, match="Allocation 90 is not running"):
        await make(fake, job_id=90).pre_launch()


async def test_salloc_refusal_is_reported_and_leftovers_are_looked_for():
    fake = FakeSlurm(salloc=SlurmRejected(["salloc"], 1, "salloc: error: Job submit/allocate failed: "
                                                        "Invalid account or account/partition combination specified"))
    with pytest.raises(KernelStartError, match="Slurm refused the kernel's allocation: .*Invalid account"):
        await make(fake, preset="shared").pre_launch()
    assert ["squeue", "-h", "--me", "-o", "%i|%k"] in fake.calls


async def test_interrupt_goes_to_the_kernels_job_step():
    fake = FakeSlurm(steps="77.0|kernel-other\n77.1|kernel-k1\n")
    p = make(fake, preset="shared")
    await p.pre_launch()
    p.process = FakeProcess()
    await p.send_signal(signal.SIGINT)
    assert fake.calls[-1] == ["scancel", "--signal=INT", "77.1"]
    await p.terminate()
    assert fake.calls[-1] == ["scancel", "--signal=TERM", "77.1"]
    assert await p.poll() is None
    p.process.returncode = 1
    assert await p.poll() == 1
    assert await p.wait() == 1 and not p.has_process and await p.poll() == 1


async def test_without_a_step_the_signal_goes_to_srun(monkeypatch):
    monkeypatch.setattr(prov.asyncio, "sleep", _no_sleep)
    fake = FakeSlurm(steps="")
    p = make(fake, preset="shared")
    await p.pre_launch()
    p.process = FakeProcess()
    await p.send_signal(signal.SIGINT)
    assert p.process.signals == [signal.SIGINT]


async def _no_sleep(_seconds):
    return None


async def test_a_failed_launch_gives_the_allocation_back():
    fake = FakeSlurm()
    p = make(fake, preset="shared", srun="/nonexistent/srun")
    await p.pre_launch()
    with pytest.raises(KernelStartError, match="Cannot run /nonexistent/srun"):
        await p.launch_kernel(["/py"], env={"PATH": "/usr/bin"})
    assert fake.calls[-1] == ["scancel", "77"] and prov.ALLOCATIONS == {}


async def test_an_owned_allocation_stays_while_kernels_of_other_processes_run_in_it():
    fake = FakeSlurm(steps="77.0|kernel-k1\n77.4|kernel-of-another-server\n77.extern|extern\n")
    p = make(fake, preset="shared")
    await p.pre_launch()
    await p.cleanup()
    assert "scancel" not in fake.programs()
    assert ["squeue", "-h", "-s", "-j", "77", "-o", "%i|%j"] in fake.calls


class Launched:
    """Stands in for asyncio.create_subprocess_exec: records the srun command line and its environment."""

    def __init__(self):
        self.argv, self.env = None, None

    async def __call__(self, *argv, env=None, **kwargs):
        self.argv, self.env = list(argv), env
        return FakeProcess()


async def test_the_kernel_runs_on_the_chosen_node_with_the_allocations_tasks(monkeypatch):
    launched = Launched()
    monkeypatch.setattr(prov.asyncio, "create_subprocess_exec", launched)
    fake = FakeSlurm(squeue="RUNNING|vm,other|4|2", shape="4|2|vm,other")
    p = make(fake, job_id="90", node="other")
    await p.pre_launch()
    assert (p.node, p.allocation.node) == ("other", "vm")
    assert p.address == "other"  # a name that does not resolve stays a name
    assert ["squeue", "-h", "-j", "90", "-O", "NumTasks:|,cpus-per-task:|,NodeList:"] in fake.calls
    await p.launch_kernel(["/py", "-f", "k.json"], env={"PATH": "/usr/bin", "SLURM_NTASKS": "8"})
    assert "--nodelist=other" in launched.argv and "--ntasks=1" in launched.argv
    assert launched.argv[-7:] == kopts.step_command(["/py", "-f", "k.json"], load_modules=False)
    assert {k: v for k, v in launched.env.items() if k.startswith(("DKRZ_", "SLURM_"))} == {
        "DKRZ_JOB_NTASKS": "4", "DKRZ_JOB_CPUS_PER_TASK": "2", "DKRZ_JOB_NNODES": "2",
        "DKRZ_JOB_NODELIST": "vm,other"}  # the server's own SLURM_* are dropped
    assert (await p.get_provisioner_info())["node"] == "other"


async def test_a_node_outside_the_allocation_is_refused_and_the_allocation_kept():
    fake = FakeSlurm()
    p = make(fake, job_id="90", node="elsewhere")
    with pytest.raises(KernelStartError, match=r"Node 'elsewhere' is not one of allocation 90's nodes \(vm\)"):
        await p.pre_launch()
    assert "scancel" not in fake.programs() and prov.ALLOCATIONS == {}


async def test_modules_load_after_the_job_view(monkeypatch):
    launched = Launched()
    monkeypatch.setattr(prov.asyncio, "create_subprocess_exec", launched)
    p = make(FakeSlurm(), preset="shared")
    await p.pre_launch()
    p.modules = ("example/1.0",)
    await p.launch_kernel(["/py"], env={"PATH": "/usr/bin"})
    assert launched.argv[-5:] == kopts.step_command(["/py"], load_modules=True)
    assert launched.env["DKRZ_MODULES"] == "example/1.0" and launched.env["DKRZ_JOB_NTASKS"] == "1"
