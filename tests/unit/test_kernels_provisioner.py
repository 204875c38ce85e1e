"""kernels/provisioner.py with a recorded Slurm: the order of calls, allocation sharing, signals, refusals."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import pytest
from jupyter_client.kernelspec import KernelSpec
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from dkrzspawner import cluster
from dkrzspawner.kernels import step
from dkrzspawner.kernels import provisioner as prov
from dkrzspawner.kernels.provisioner import KernelStartError, SlurmProvisioner
from dkrzspawner.slurm import JobUnknown, SlurmRejected, SlurmUnreachable
from tests.unit import recorded
from tests.unit.fakeslurm import FakeRunner, allocating


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
    p = make(FakeRunner(allocating()), preset="shared", cores=2, slurm_timeout=5.0)
    assert p.options_config == {"preset": "shared", "cores": 2}
    assert p.slurm_timeout == 5.0


async def test_refused_options_make_no_slurm_call():
    fake = FakeRunner(allocating())
    p = make(fake, preset="shared", cores=3)
    with pytest.raises(KernelStartError, match="Cores must be one of 1, 2, 4"):
        await p.pre_launch()
    assert fake.commands == []


async def test_limits_refused_before_salloc():
    fake = FakeRunner(allocating())
    with pytest.raises(KernelStartError, match="Cores must be between 1 and 8"):
        await make(fake, partition="shared", cores=9).pre_launch()
    assert "salloc" not in fake.programs()


async def test_allocation_then_node_then_cancel_when_the_last_kernel_ends():
    fake = FakeRunner(allocating())
    p = make(fake, preset="shared", cores=2)
    kwargs = await p.pre_launch()
    assert kwargs["cmd"][0] == "/py"
    salloc = next(call for call in fake.argvs() if call[0] == "salloc")
    assert salloc[:2] == ["salloc", "--kill-command=HUP"] and "--comment=dkrz-kernel:k1" in salloc
    assert salloc[-1] == "cat"  # the keeper: salloc holds the allocation while cat reads the provisioner's pipe
    assert "--cpus-per-task=2" in salloc and "--partition=shared" in salloc and "--account=bb1234" in salloc
    assert ["squeue", "-h", "-j", "77", "-o", "%T|%N|%C|%D|%L"] in fake.argvs()
    assert p.job_id == "77" and p.allocation.node == "vm" and p.allocation.owned
    assert p.status == {"job_id": "77", "state": "RUNNING", "reason": None, "start": None, "node": "vm",
                        "time_left": "59:00"}
    assert p.allocation.address in ("127.0.0.1", "vm")  # vm's address where it resolves (here: loopback)
    await p.cleanup(restart=True)  # a restart keeps the allocation
    assert not fake.spawned[0].stdin.closed
    await p.cleanup()
    assert fake.spawned[0].stdin.closed and fake.spawned[0].returncode == 0  # given back by salloc itself
    assert "scancel" not in fake.programs()
    assert prov.ALLOCATIONS == {}


async def test_a_two_node_kernel_allocation_asks_for_every_node_with_its_share():
    """nodes=2, cores=4 (per node): one task per node unless ``tasks`` says otherwise, never --ntasks alone
    (Slurm would pack the tasks onto fewer nodes)."""
    fake = FakeRunner(allocating(), {cluster.PARTITIONS_ARGV: recorded.SCONTROL_TWO_NODES,
                                     "sinfo": recorded.SINFO_TWO_NODES})
    await make(fake, partition="shared", nodes=2, cores=4, tasks=4).pre_launch()
    salloc = next(call for call in fake.argvs() if call[0] == "salloc")
    assert [a for a in salloc if a.startswith(("--nodes", "--ntasks", "--cpus-per-task"))] == \
        ["--nodes=2", "--ntasks-per-node=2", "--cpus-per-task=2"]


async def test_a_second_kernel_joins_by_job_id_and_the_allocation_outlives_the_first():
    fake = FakeRunner(allocating())
    first = make(fake, "a", preset="shared")
    await first.pre_launch()
    second = make(fake, "b", job_id="77")
    await second.pre_launch()
    assert fake.programs().count("salloc") == 1
    assert prov.ALLOCATIONS["77"].kernels == {"a", "b"}
    await first.cleanup()
    assert not fake.spawned[0].stdin.closed
    await second.cleanup()
    assert fake.spawned[0].stdin.closed


async def test_an_allocation_made_elsewhere_is_never_cancelled():
    fake = FakeRunner(allocating())
    one, two = make(fake, "a", job_id=90), make(fake, "b", job_id=90)
    await one.pre_launch()
    await two.pre_launch()
    await one.cleanup()
    await two.cleanup()
    assert "salloc" not in fake.programs() and "scancel" not in fake.programs()


async def test_an_ended_allocation_is_refused():
    fake = FakeRunner(allocating(squeue=""))
    with pytest.raises(KernelStartError, match="Allocation 90 is not running"):
        await make(fake, job_id=90).pre_launch()


async def test_salloc_refusal_is_reported_and_leftovers_are_looked_for():
    fake = FakeRunner(allocating(salloc=(["salloc: error: Job submit/allocate failed: "
                                          "Invalid account or account/partition combination specified"], 1)))
    with pytest.raises(KernelStartError, match="Slurm refused the kernel's allocation: .*Invalid account"):
        await make(fake, preset="shared").pre_launch()
    assert ["squeue", "-h", "--me", "-o", "%i|%k"] in fake.argvs()


async def test_interrupt_goes_to_the_kernels_job_step():
    fake = FakeRunner(allocating(steps="77.0|kernel-other\n77.1|kernel-k1\n"))
    p = make(fake, preset="shared")
    await p.pre_launch()
    p.process = FakeProcess()
    await p.send_signal(signal.SIGINT)
    assert fake.argvs()[-1] == ["scancel", "--signal=INT", "77.1"]
    await p.terminate()
    assert fake.argvs()[-1] == ["scancel", "--signal=TERM", "77.1"]
    assert await p.poll() is None
    p.process.returncode = 1
    assert await p.poll() == 1
    assert await p.wait() == 1 and not p.has_process and await p.poll() == 1


async def test_without_a_step_the_signal_goes_to_srun(monkeypatch):
    monkeypatch.setattr(prov.asyncio, "sleep", _no_sleep)
    fake = FakeRunner(allocating(steps=""))
    p = make(fake, preset="shared")
    await p.pre_launch()
    p.process = FakeProcess()
    await p.send_signal(signal.SIGINT)
    assert p.process.signals == [signal.SIGINT]


async def _no_sleep(_seconds):
    return None


async def test_a_failed_launch_gives_the_allocation_back():
    fake = FakeRunner(allocating())
    p = make(fake, preset="shared", srun="/nonexistent/srun")
    await p.pre_launch()
    with pytest.raises(KernelStartError, match="Cannot run /nonexistent/srun"):
        await p.launch_kernel(["/py"], env={"PATH": "/usr/bin"})
    assert fake.spawned[0].stdin.closed and prov.ALLOCATIONS == {}


async def test_an_owned_allocation_stays_while_kernels_of_other_processes_run_in_it():
    fake = FakeRunner(allocating(steps="77.0|kernel-k1\n77.4|kernel-of-another-server\n77.extern|extern\n"))
    p = make(fake, preset="shared")
    await p.pre_launch()
    await p.cleanup()
    assert "scancel" not in fake.programs() and not fake.spawned[0].stdin.closed
    assert ["squeue", "-h", "-s", "-j", "77", "-o", "%i|%j"] in fake.argvs()
    assert "77" in prov.ALLOCATIONS  # it stays, with its salloc, until this server ends


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
    fake = FakeRunner(allocating(squeue="RUNNING|vm,other|4|2", shape="4|2|vm,other"))
    p = make(fake, job_id="90", node="other")
    await p.pre_launch()
    assert (p.node, p.allocation.node) == ("other", "vm")
    assert p.address == "other"  # a name that does not resolve stays a name
    assert ["squeue", "-h", "-j", "90", "-O", "NumTasks:|,cpus-per-task:|,NodeList:"] in fake.argvs()
    await p.launch_kernel(["/py", "-f", "k.json"], env={"PATH": "/usr/bin", "SLURM_NTASKS": "8"})
    assert "--nodelist=other" in launched.argv and "--ntasks=1" in launched.argv
    assert launched.argv[-7:] == step.step_command(["/py", "-f", "k.json"], load_modules=False)
    assert {k: v for k, v in launched.env.items() if k.startswith(("DKRZ_", "SLURM_"))} == {
        "DKRZ_JOB_NTASKS": "4", "DKRZ_JOB_CPUS_PER_TASK": "2", "DKRZ_JOB_NNODES": "2",
        "DKRZ_JOB_NODELIST": "vm,other"}  # the server's own SLURM_* are dropped
    assert (await p.get_provisioner_info())["node"] == "other"


async def test_a_node_outside_the_allocation_is_refused_and_the_allocation_kept():
    fake = FakeRunner(allocating())
    p = make(fake, job_id="90", node="elsewhere")
    with pytest.raises(KernelStartError, match=r"Node 'elsewhere' is not one of allocation 90's nodes \(vm\)"):
        await p.pre_launch()
    assert "scancel" not in fake.programs() and prov.ALLOCATIONS == {}


async def test_modules_load_after_the_job_view(monkeypatch):
    launched = Launched()
    monkeypatch.setattr(prov.asyncio, "create_subprocess_exec", launched)
    p = make(FakeRunner(allocating()), preset="shared")
    await p.pre_launch()
    p.modules = ("example/1.0",)
    await p.launch_kernel(["/py"], env={"PATH": "/usr/bin"})
    assert launched.argv[-5:] == step.step_command(["/py"], load_modules=True)
    assert launched.env["DKRZ_MODULES"] == "example/1.0" and launched.env["DKRZ_JOB_NTASKS"] == "1"


# -- restarts never spend a budget behind the user's back -------------------------------------------------
class ServerModel(LoggingConfigurable):
    """The two traits of jupyter_server's ServerKernelManager that its REST API shows."""

    execution_state = Unicode(None, allow_none=True)
    reason = Unicode("")


async def started(fake, **config):
    """A kernel whose step has ended (its srun exited), as the restarter finds it."""
    p = make(fake, preset="shared", **config)
    await p.pre_launch()
    p.process = FakeProcess()
    p.process.returncode = 143
    return p


async def test_an_ended_allocation_makes_the_kernel_dead_with_slurms_reason_and_no_automatic_allocation():
    fake = FakeRunner(allocating(end="TIMEOUT|TimeLimit|1:00"))
    p = await started(fake)
    model = p.parent = ServerModel(execution_state="idle")
    assert await p.poll() == 143
    assert model.execution_state == "dead"
    assert model.reason.startswith("Allocation 77 reached its time limit of 0:01:00. The kernel was not "
                                   "restarted automatically")
    assert p.status["reason"] == "Allocation 77 reached its time limit of 0:01:00."
    # the restarter: restart_kernel(now=True) -> cleanup(restart=True) -> pre_launch, no shutdown_requested
    await p.cleanup(restart=True)
    with pytest.raises(KernelStartError, match="reached its time limit of 0:01:00") as refused:
        await p.pre_launch()
    assert str(refused.value) == model.reason and model.execution_state == "dead"
    assert fake.programs().count("salloc") == 1 and prov.ALLOCATIONS == {}
    with pytest.raises(KernelStartError):  # and again: still no allocation
        await p.pre_launch()
    assert fake.programs().count("salloc") == 1
    # the user's restart (graceful): shutdown_requested(restart=True) comes first; it gets a fresh allocation
    fake.answers["squeue"].end = "RUNNING|None|1:00"
    p.parent = None  # (a bare provisioner from here: no connection file to write)
    await p.shutdown_requested(restart=True)
    await p.cleanup(restart=True)
    await p.pre_launch()
    assert fake.programs().count("salloc") == 2 and p.ended is None and p.job_id == "77"
    assert model.execution_state == "dead"  # (no longer our parent)


async def test_the_user_restart_resets_the_servers_dead_state():
    fake = FakeRunner(allocating(end="CANCELLED|None|1:00"))
    p = await started(fake)
    model = p.parent = ServerModel(execution_state="idle")
    await p.poll()
    assert model.reason.startswith("Allocation 77 was cancelled (by root).")
    await p.cleanup(restart=True)
    p._prepare = _prepared
    await p.shutdown_requested(restart=True)
    await p.pre_launch()
    assert (model.execution_state, model.reason) == ("starting", "")
    assert fake.programs().count("salloc") == 2


async def _prepared(**kwargs):
    return {"cmd": ["/py"]}


async def test_a_crash_inside_a_running_allocation_restarts_in_the_same_allocation():
    fake = FakeRunner(allocating(end="RUNNING|None|1:00:00"))
    p = await started(fake)
    assert await p.poll() == 143 and p.ended is None
    await p.cleanup(restart=True)
    await p.pre_launch()  # the restarter's restart
    assert fake.programs().count("salloc") == 1 and p.job_id == "77" and not fake.spawned[0].stdin.closed


async def test_the_users_restart_keeps_a_running_allocation():
    fake = FakeRunner(allocating())
    p = make(fake, preset="shared")
    await p.pre_launch()
    await p.shutdown_requested(restart=True)
    await p.cleanup(restart=True)
    await p.pre_launch()
    assert fake.programs().count("salloc") == 1


async def test_slurm_asked_once_per_death_not_on_every_poll():
    fake = FakeRunner(allocating(end="TIMEOUT|TimeLimit|1:00"))
    p = await started(fake)
    for _ in range(3):
        await p.poll()
    assert [call for call in fake.argvs() if call[-1] == "%T|%r|%l"] == [
        ["squeue", "-h", "-t", "all", "-j", "77", "-o", "%T|%r|%l"]]


@pytest.mark.parametrize("answer, why", [
    ({"fail": {"%T|%r|%l": SlurmUnreachable(["squeue"], 1, "slurm_load_jobs error: Unable to contact slurm "
                                                           "controller")}}, "Unable to contact slurm controller"),
    ({"end": "slurm_load_jobs: something new\n"}, "unexpected output"),
], ids=["unreachable", "unreadable"])
async def test_when_slurm_cannot_say_nothing_is_restarted_allocated_cancelled_or_called_ended(answer, why):
    fake = FakeRunner(allocating(**answer))
    p = await started(fake)
    model = p.parent = ServerModel(execution_state="idle")
    assert await p.poll() == 143 and p.ended is None and model.execution_state == "idle"
    await p.cleanup(restart=True)
    with pytest.raises(KernelStartError, match="Cannot tell whether allocation 77 still runs"):
        await p.pre_launch()
    assert model.execution_state == "dead" and why in model.reason
    assert fake.programs().count("salloc") == 1 and "scancel" not in fake.programs()
    assert not fake.spawned[0].stdin.closed and "77" in prov.ALLOCATIONS


@pytest.mark.parametrize("answer, why", [
    ({"fail": {"%i|%j": SlurmUnreachable(["squeue"], 1, "slurm_get_job_steps error: Unable to contact slurm "
                                                        "controller (connect failure)")}},
     "Unable to contact slurm controller"),
    ({"fail": {"%i|%j": SlurmRejected(["squeue"], 1, "squeue: error: Invalid user: 1001")}}, "Invalid user"),
    ({"steps": "slurm_get_job_steps: garbled\n"}, "unexpected job step line"),
    ({"steps": "77.0 kernel-k1\n77.4 kernel-of-another-server\n"}, "unexpected job step line"),
])
async def test_a_failed_step_query_never_cancels_a_shared_allocation(caplog, answer, why):
    fake = FakeRunner(allocating(**answer))
    p = make(fake, preset="shared")
    await p.pre_launch()
    with caplog.at_level(logging.WARNING):
        await p.cleanup()
    assert "scancel" not in fake.programs() and not fake.spawned[0].stdin.closed
    assert "Allocation 77 stays: Slurm cannot say whether job steps of others run in it" in caplog.text
    assert why in caplog.text  # the log says why
    assert "77" in prov.ALLOCATIONS


async def test_an_allocation_slurm_no_longer_knows_is_given_back():
    unknown = JobUnknown(["squeue"], 1, "slurm_load_jobs error: Invalid job id specified")
    fake = FakeRunner(allocating(fail={"%i|%j": unknown}))
    p = make(fake, preset="shared")
    await p.pre_launch()
    await p.cleanup()
    assert fake.spawned[0].stdin.closed and prov.ALLOCATIONS == {}  # Slurm said so: nothing runs in it


async def test_the_job_id_is_known_while_pending_and_the_queue_is_logged_once_per_change(caplog, monkeypatch):
    fake = FakeRunner(allocating(salloc=["salloc: Pending job allocation 81",
                                         "salloc: job 81 queued and waiting for resources"],
                                 pending="PENDING|Resources|2026-12-01T23:00:00"))
    p = make(fake, preset="shared", queue_poll_interval=0.01)
    with caplog.at_level(logging.INFO):
        start = asyncio.ensure_future(p.pre_launch())
        while fake.programs().count("squeue") < 3:
            await asyncio.sleep(0.01)
        assert p.status["job_id"] == "81" and p.status["state"] == "PENDING"
        assert p.status["reason"] == "it waits for cores, memory or GPUs to become free"
        assert p.status["start"] == "2026-12-01T23:00:00"
        fake.answers["squeue"].pending = "PENDING|Priority|2026-12-01T23:00:00"
        while "higher priority" not in caplog.text:
            await asyncio.sleep(0.01)
        fake.answers["squeue"].squeue = "RUNNING|vm|2|1|59:00"
        fake.spawned[0].say("salloc: Granted job allocation 81")
        await start
    waiting = [r.getMessage() for r in caplog.records if "is waiting in the queue" in r.getMessage()]
    assert len(waiting) == 2 and "Job 81 is waiting in the queue: it waits for cores" in waiting[0]
    assert p.job_id == "81" and p.status["state"] == "RUNNING"


async def test_a_request_not_granted_in_time_is_withdrawn():
    fake = FakeRunner(allocating(salloc=["salloc: Pending job allocation 82"]))
    p = make(fake, preset="shared", allocation_timeout=1, queue_poll_interval=0.2)
    with pytest.raises(KernelStartError, match="did not grant the allocation within 1 s; the request was withdrawn"):
        await p.pre_launch()
    assert ["scancel", "82"] in fake.argvs() and fake.spawned[0].returncode is not None
    assert prov.ALLOCATIONS == {}


async def test_an_allocation_whose_salloc_is_gone_is_cancelled_at_the_end():
    fake = FakeRunner(allocating())
    p = make(fake, preset="shared")
    await p.pre_launch()
    fake.spawned[0].end(-9)  # somebody killed salloc; the job may still run
    await p.cleanup()
    assert fake.argvs()[-1] == ["scancel", "77"]


def test_a_refused_restart_is_logged_in_one_line_without_its_traceback():
    logger = logging.getLogger("test-refusals")
    prov._refusals_in_one_line(logger, logger)
    assert len(logger.filters) == 1
    try:
        raise KernelStartError("Allocation 77 reached its time limit of 0:01:00.")
    except KernelStartError:
        refused = logger.makeRecord("t", logging.ERROR, "f", 1, "Exception in callback %r", ("poll",),
                                    sys.exc_info())
    try:
        raise ValueError("a bug")
    except ValueError:
        other = logger.makeRecord("t", logging.ERROR, "f", 1, "boom", (), sys.exc_info())
    assert logger.filters[0].filter(refused) and logger.filters[0].filter(other)
    assert refused.exc_info is None
    assert refused.getMessage() == "Exception in callback 'poll': Allocation 77 reached its time limit of 0:01:00."
    assert other.exc_info is not None  # everything else keeps its traceback
