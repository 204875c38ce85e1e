"""What Slurm says of a running allocation: its nodes (expanded), its tasks and CPUs per task, a node's address.

Read-only queries through the project's runner (argument lists, timeouts); used by the provisioner when a kernel
starts and by ``dkrz-kernel create`` to check ``--node`` against the allocation it names.
"""

from __future__ import annotations

import asyncio
import socket

from ..slurm import SlurmError
from .options import JobShape, parse_job_shape


async def hostnames(runner, nodelist: str, timeout: float) -> tuple[str, ...]:
    """The node names of a Slurm node list (``vm``, ``n[01-02],m5``); ``scontrol show hostnames`` expands ranges."""
    if "[" not in nodelist:
        return tuple(name for name in nodelist.split(",") if name)
    out = (await runner.run(["scontrol", "show", "hostnames", nodelist], timeout=timeout)).stdout
    return tuple(out.split())


async def shape_of(runner, job_id: str, timeout: float) -> JobShape:
    """The allocation's tasks, CPUs per task and nodes; raises the runner's errors (SlurmError) otherwise."""
    out = (await runner.run(["squeue", "-h", "-j", job_id, "-O", "NumTasks:|,cpus-per-task:|,NodeList:"],
                            timeout=timeout)).stdout
    try:
        tasks, cpus, nodelist = parse_job_shape(out)
    except ValueError as exc:
        raise SlurmError(["squeue"], 0, f"allocation {job_id}: {exc}") from None
    return JobShape(tasks=tasks, cpus_per_task=cpus, nodelist=nodelist,
                    hostnames=await hostnames(runner, nodelist, timeout))


async def address_of(node: str) -> str:
    """The node's IPv4 address (where the kernel binds and the client connects), or its name if it has none."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(node, None, family=socket.AF_INET,
                                                             type=socket.SOCK_STREAM)
        return infos[0][4][0]
    except (OSError, IndexError):
        return node
