"""Multi-node jobs on the real local two-node cluster (issue 17, item 3): the batch script dkrzspawner renders for
nodes=2 gets two nodes from Slurm, and ``srun`` from the server's process (a Python stand-in for the Jupyter
server, run in the batch step on the first node) reaches both; a kernel's ``salloc`` for nodes=2 does too."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from dkrzspawner import script
from dkrzspawner.options import JobRequest
from dkrzspawner.slurm import SlurmRunner, allocations
from tests.slurmtools import job_field, require_slurm, slurm, wait_for

pytestmark = pytest.mark.slurm

#: a stand-in for the Jupyter server: a long-lived Python process that runs srun from inside (as a terminal or a
#: notebook would), writes what it saw, and stays until it is cancelled
SERVER = """\
import pathlib, subprocess, sys, time
done = subprocess.run(["srun", "-N2", "hostname"], capture_output=True, text=True, timeout=120)
pathlib.Path(sys.argv[1]).write_text(f"{done.returncode}\\n{done.stdout}---\\n{done.stderr}")
time.sleep(600)
"""


@pytest.fixture(autouse=True)
def two_nodes():
    require_slurm()
    nodes = slurm("sinfo", "-h", "-p", "shared", "-N", "-o", "%N").split()
    if len(set(nodes)) < 2:  # CI always has two (ci/slurm-up's default): there, one node is a failure
        why = f"partition shared has one node ({', '.join(nodes)}); start the two-node cluster (SLURM_NODES=2)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(reason=why)


@pytest.fixture
def jobs():
    """Job ids a test created; cancelled afterwards whatever happened."""
    created: list[str] = []
    yield created
    if created:
        slurm("scancel", *created, check=False)


@pytest.fixture
def shared_dir():
    """A folder the job's user can write to (pytest's tmp_path is root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="dkrz-multinode-", dir="/tmp"))
    folder.chmod(0o777)
    return folder


def two_node_request() -> JobRequest:
    return JobRequest(partition="shared", account="bb1234", nodes=2, cores=1, memory_mb=100, runtime_seconds=300)


async def test_a_two_node_server_gets_both_nodes_and_its_srun_reaches_them(jobs, shared_dir):
    seen, server = shared_dir / "srun.txt", shared_dir / "server.py"
    server.write_text(SERVER)
    server.chmod(0o644)
    text = script.render("batch_script.sh.j2", request=two_node_request(), job_name="jupyterhub-multinode",
                         comment="dkrzspawner:alice:multinode:test", output=str(shared_dir / "job.log"),
                         workdir="/tmp", export_names=["DKRZ_TEST"], path=os.path.dirname(sys.executable) +
                         ":/usr/bin:/bin", command=[sys.executable, str(server), str(seen)])
    assert "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=1\n" in text
    runner = SlurmRunner(timeout=30)
    job = (await runner.run(["sbatch", "--parsable"], user="alice", stdin=text, env={"DKRZ_TEST": "1"})
           ).stdout.strip().split(";")[0]
    jobs.append(job)
    wait_for(lambda: job_field(job, "%T") == "RUNNING", timeout=60, what="the two-node job to run")
    details = slurm("scontrol", "show", "job", job)
    assert "NumNodes=2 " in details and "NumTasks=2 " in details, details
    assert job_field(job, "%D") == "2"
    hostnames = slurm("scontrol", "show", "hostnames", job_field(job, "%N")).split()
    assert len(hostnames) == 2
    assert job_field(job, "%B") == hostnames[0], "the server runs in the batch step on the first node"
    report = wait_for(lambda: seen.exists() and seen.read_text().count("---") and seen.read_text(), timeout=150,
                      what="srun -N2 hostname from inside the job")
    code, _, rest = report.partition("\n")
    out, _, err = rest.partition("---\n")
    assert code == "0", f"srun -N2 hostname failed: {err}"
    assert sorted(out.split()) == sorted(hostnames), f"srun reached {out.split()}, the job has {hostnames}"
    assert job_field(job, "%T") == "RUNNING", "the server outlives its srun"


async def test_a_two_node_kernel_allocation_spans_both_nodes(jobs):
    """The kernels' salloc for nodes=2 (one task per node), with ``srun hostname`` as the command salloc runs."""
    argv = allocations.salloc_argv(two_node_request(), tasks_per_node=1, job_name="jupyter-kernel-multinode",
                                   comment="dkrz-kernel:multinode-test", keeper=("srun", "hostname"))
    runner = SlurmRunner(timeout=180)
    done = await runner.run(argv, user="alice")
    job = allocations.granted_job_id(done.stderr)
    if job:
        jobs.append(job)
    names = done.stdout.split()
    assert len(names) == 2 and len(set(names)) == 2, f"srun in the allocation ran on {names}: {done.stderr}"
