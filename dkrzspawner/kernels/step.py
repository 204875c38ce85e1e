"""What runs in a kernel's job step: its program (the allocation's view, the modules, then the kernel) and its
environment (without an enclosing job's Slurm variables).

The kernel's job step is one task; :data:`JOB_VIEW` gives the kernel the allocation's tasks, CPUs per task and
nodes instead of its step's (what ``salloc``'s shell has), so that ``srun`` in a notebook cell uses the whole
allocation. Pure: fixed shell text, the values come as variables. Imports only :mod:`dkrzspawner.modules`
(the module-loading line).
"""

from __future__ import annotations

from ..modules import LOAD_AND_EXEC

#: the prefixes of Slurm's own variables (an enclosing job's; a kernelspec may not set them)
SLURM_ENV_PREFIXES = ("SLURM_", "SRUN_", "SALLOC_", "SBATCH_")
#: Slurm variables that stay: where the clients' configuration is
KEEP_SLURM_ENV = ("SLURM_CONF",)

#: The kernel's step sees itself: one task, all the allocation's CPUs, one node (SLURM_NTASKS=1, SLURM_NPROCS=1,
#: SLURM_CPUS_PER_TASK, SLURM_NNODES=1, SLURM_NODELIST, and SLURM_JOB_NODELIST: only the step's node). A nested
#: ``srun`` takes those as its defaults, and dropping them is not enough (without SLURM_NTASKS it starts one task
#: per node; with the step's SLURM_JOB_NODELIST, Slurm 22.05's srun refuses a step on more than the kernel's node:
#: "More processors requested than permitted"), so the step sets the allocation's values, as salloc's shell has
#: them, before it becomes the kernel (and drops the step's tasks per node, which would contradict them);
#: SLURM_JOB_ID and the step's own SLURM_STEP_* stay. Fixed text; the values come as variables
#: (:func:`job_view_environment`).
JOB_VIEW = ('export SLURM_NTASKS="$DKRZ_JOB_NTASKS" SLURM_NPROCS="$DKRZ_JOB_NTASKS" '
            'SLURM_CPUS_PER_TASK="$DKRZ_JOB_CPUS_PER_TASK" SLURM_NNODES="$DKRZ_JOB_NNODES" '
            'SLURM_NODELIST="$DKRZ_JOB_NODELIST" SLURM_JOB_NODELIST="$DKRZ_JOB_NODELIST" && '
            'unset SLURM_TASKS_PER_NODE SLURM_NTASKS_PER_NODE '
            'DKRZ_JOB_NTASKS DKRZ_JOB_CPUS_PER_TASK DKRZ_JOB_NNODES DKRZ_JOB_NODELIST')
JOB_VIEW_NAMES = ("DKRZ_JOB_NTASKS", "DKRZ_JOB_CPUS_PER_TASK", "DKRZ_JOB_NNODES", "DKRZ_JOB_NODELIST")
#: variables the provisioner sets in the kernel's step (a kernelspec's ``env`` may not name them)
PROVISIONER_ENV = ("DKRZ_MODULES_INIT", "DKRZ_MODULES", "MODULEPATH", *JOB_VIEW_NAMES)


def job_view_environment(shape) -> dict[str, str]:
    """The variables :data:`JOB_VIEW` reads, from the allocation's
    :class:`~dkrzspawner.slurm.allocations.JobShape`."""
    return dict(zip(JOB_VIEW_NAMES, (str(shape.tasks), str(shape.cpus_per_task), str(len(shape.hostnames)),
                                     shape.nodelist)))


def step_command(kernel_cmd: list[str], *, load_modules: bool) -> list[str]:
    """The job step's program: bash with fixed text sets :data:`JOB_VIEW`, loads the modules if asked
    (:data:`~dkrzspawner.modules.LOAD_AND_EXEC`), then becomes the kernel."""
    text = f"{JOB_VIEW} && " + (LOAD_AND_EXEC if load_modules else 'exec "$@"')
    return ["/bin/bash", "-c", text, "dkrz-kernel", *kernel_cmd]


def scrub_slurm_env(env: dict) -> dict:
    """The environment without the variables of an enclosing Slurm job (a Jupyter server that runs in a batch
    job has ``SLURM_JOB_ID``, ``SLURM_CPUS_PER_TASK``, ...; they would steer ``salloc``/``srun`` wrongly)."""
    return {key: value for key, value in env.items()
            if key in KEEP_SLURM_ENV or not key.startswith(SLURM_ENV_PREFIXES)}
