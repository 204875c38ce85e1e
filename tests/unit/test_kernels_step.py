"""kernels/step.py: what runs in the kernel's job step (the allocation's view, the modules) and its environment."""

from __future__ import annotations

import subprocess

from dkrzspawner.kernels import step
from dkrzspawner.modules import LOAD_AND_EXEC
from dkrzspawner.slurm import allocations


def test_enclosing_job_environment_is_scrubbed():
    env = {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "4", "SBATCH_ACCOUNT": "x", "SRUN_CPUS_PER_TASK": "4",
           "SALLOC_PARTITION": "p", "SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin", "HOME": "/h"}
    assert step.scrub_slurm_env(env) == {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin", "HOME": "/h"}


def test_the_kernels_step_gets_the_allocations_tasks():
    shape = allocations.JobShape(tasks=4, cpus_per_task=2, nodelist="n[01-02]", hostnames=("n01", "n02"))
    assert step.job_view_environment(shape) == {"DKRZ_JOB_NTASKS": "4", "DKRZ_JOB_CPUS_PER_TASK": "2",
                                                 "DKRZ_JOB_NNODES": "2", "DKRZ_JOB_NODELIST": "n[01-02]"}
    plain = step.step_command(["/py", "-f", "c.json"], load_modules=False)
    assert plain[:2] == ["/bin/bash", "-c"] and plain[3:] == ["dkrz-kernel", "/py", "-f", "c.json"]
    assert plain[2] == step.JOB_VIEW + ' && exec "$@"'
    with_modules = step.step_command(["/py"], load_modules=True)
    assert with_modules[2] == f"{step.JOB_VIEW} && {LOAD_AND_EXEC}"


def test_the_job_view_sets_what_a_nested_srun_reads(tmp_path):
    """Run the fixed text in bash with a step's variables: the kernel sees the allocation's."""
    variables = {"SLURM_NTASKS": "1", "SLURM_NPROCS": "1", "SLURM_CPUS_PER_TASK": "2", "SLURM_NNODES": "1",
                 "SLURM_NODELIST": "n01", "SLURM_JOB_NODELIST": "n01", "SLURM_TASKS_PER_NODE": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_STEP_ID": "3",
                 "SLURM_JOB_ID": "9", "PATH": "/usr/bin:/bin"}
    shape = allocations.JobShape(tasks=2, cpus_per_task=1, nodelist="n[01-02]", hostnames=("n01", "n02"))
    argv = step.step_command(["env"], load_modules=False)
    out = subprocess.run(argv, env={**variables, **step.job_view_environment(shape)}, capture_output=True, text=True,
                         check=True).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines())
    assert {k: seen.get(k) for k in ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_CPUS_PER_TASK", "SLURM_NNODES",
                                     "SLURM_NODELIST", "SLURM_JOB_NODELIST", "SLURM_TASKS_PER_NODE",
                                     "SLURM_NTASKS_PER_NODE", "SLURM_STEP_ID", "SLURM_JOB_ID")} \
        == {"SLURM_NTASKS": "2", "SLURM_NPROCS": "2", "SLURM_CPUS_PER_TASK": "1", "SLURM_NNODES": "2",
            "SLURM_NODELIST": "n[01-02]", "SLURM_JOB_NODELIST": "n[01-02]", "SLURM_TASKS_PER_NODE": None, "SLURM_NTASKS_PER_NODE": None,
            "SLURM_STEP_ID": "3", "SLURM_JOB_ID": "9"}
    assert not any(name.startswith("DKRZ_JOB_") for name in seen)
