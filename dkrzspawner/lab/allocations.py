"""The allocations of this Jupyter server's Slurm kernels: the provisioner's in-process registry
(:data:`dkrzspawner.kernels.provisioner.ALLOCATIONS`, and the kernels whose allocation still waits in the queue),
with what one batched squeue says of them now (state, pending reason in words, estimated start, node, time left);
and cancelling one of them. Only allocations of this server's kernels are shown or cancelled. Imports the
kernels' provisioner, :mod:`dkrzspawner.slurm` and :mod:`dkrzspawner.reasons`."""

from __future__ import annotations

from ..kernels.provisioner import ALLOCATIONS, SlurmProvisioner
from ..reasons import describe_start, explain_pending, parse_slurm_time
from ..slurm import JobUnknown, SlurmError, cancel, job_states
from .jobinfo import seconds_until


class NotOurs(LookupError):
    """The job id is no allocation of this server's kernels."""


def registered(kernel_manager) -> dict[str, list[dict]]:
    """Job id -> the kernels in it (id, kernelspec name, display name): every allocation in the provisioner's
    registry, and the allocations still being asked for (a kernel waiting in the queue)."""
    found: dict[str, list[dict]] = {job_id: [] for job_id in list(ALLOCATIONS)}
    for kernel_id in list(kernel_manager.list_kernel_ids()) if kernel_manager is not None else ():
        try:
            manager = kernel_manager.get_kernel(kernel_id)
        except KeyError:
            continue
        provisioner = getattr(manager, "provisioner", None)
        if not isinstance(provisioner, SlurmProvisioner) or not provisioner.job_id:
            continue
        job_id = provisioner.job_id
        waiting = provisioner.allocation is None and provisioner.status.get("state") == "PENDING"
        if job_id not in found and not waiting:
            continue  # its allocation has ended
        spec = getattr(manager, "kernel_spec", None)
        found.setdefault(job_id, []).append({"id": kernel_id, "name": getattr(manager, "kernel_name", ""),
                                             "display_name": getattr(spec, "display_name", "") or ""})
    return found


def describe(job_id: str, kernels: list[dict], status) -> dict:
    """One allocation as the REST API gives it, from squeue's :class:`~dkrzspawner.slurm.JobStatus` (None:
    squeue no longer lists it). The node is the kernels' (the provisioner's registry knows it; squeue's batch
    host of an salloc allocation is the host salloc runs on)."""
    if status is None:
        return {"job_id": job_id, "state": "GONE", "reason": "Slurm no longer lists it", "estimated_start": "",
                "start_text": "", "node": None, "seconds_left": None, "kernels": kernels}
    pending = status.state == "PENDING"
    estimate = status.start_time if pending and parse_slurm_time(status.start_time) else None
    return {"job_id": job_id, "state": status.state, "reason": explain_pending(status.reason) if pending else "",
            "estimated_start": estimate or "", "start_text": describe_start(estimate) if estimate else "",
            "node": node_of(job_id, status) if not pending else None,
            "seconds_left": seconds_until(status.end_time) if status.running else None, "kernels": kernels}


def node_of(job_id: str, status) -> str | None:
    """The node the allocation's kernels run on: the registry's, else squeue's first node."""
    allocation = ALLOCATIONS.get(job_id)
    return (allocation.node if allocation is not None and allocation.node else None) or status.host


async def listing(kernel_manager, runner, timeout: float = 10.0) -> dict:
    """``{"allocations": [...]}`` for ``GET dkrzspawner/api/allocations`` (one squeue for all of them; when
    Slurm does not answer, the allocations come without state and ``error`` says why)."""
    found = registered(kernel_manager)
    if not found:
        return {"allocations": []}
    try:
        states = await job_states(runner, sorted(found, key=int), timeout=timeout)
    except JobUnknown:
        states = {}
    except SlurmError as exc:
        return {"allocations": [{**describe(job_id, kernels, None), "state": "", "reason": ""}
                                for job_id, kernels in found.items()], "error": f"Slurm did not answer: {exc}"}
    return {"allocations": [describe(job_id, kernels, states.get(job_id)) for job_id, kernels in found.items()]}


async def cancel_allocation(kernel_manager, runner, job_id: str, timeout: float = 10.0) -> None:
    """scancel an allocation of this server's kernels (as the user); :class:`NotOurs` for any other job id.
    The provisioner then finds the allocation ended and reports its kernels dead, with the reason."""
    if job_id not in registered(kernel_manager):
        raise NotOurs(job_id)
    await cancel(runner, job_id, timeout=timeout)
