"""Every sentence that turns Slurm's words into plain words: why a job waits (its pending reason, its estimated
start, its place in the queue), why it ended (its final state, exit code, who cancelled it, an out-of-memory
kill in its output), why a kernel's allocation ended, and why Slurm refused a submission.

Small pure functions over Slurm's words, trivial to test; imports only :mod:`dkrzspawner.units`.
"""

from __future__ import annotations

import datetime
import re

from .units import format_clock, slurm_duration_seconds

PENDING_REASONS = {
    "None": "the scheduler has not looked at it yet",
    "Priority": "jobs with a higher priority are ahead of it in the queue",
    "Resources": "it waits for cores, memory or GPUs to become free",
    "Dependency": "it waits for another job to finish",
    "BeginTime": "its start time has not come yet",
    "JobHeldUser": "it is held by you; release it with `scontrol release JOBID`",
    "JobHeldAdmin": "it is held by an administrator",
    "ReqNodeNotAvail": "the nodes it needs are not available (down, drained or reserved for maintenance)",
    "Reservation": "it waits for its reservation to start",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "it asks for more time than the partition allows",
    "PartitionConfig": "it asks for more than the partition allows",
    "QOSMaxJobsPerUserLimit": "you already run as many jobs as your QOS allows",
    "QOSMaxSubmitJobPerUserLimit": "you already have as many jobs queued as your QOS allows",
    "QOSMaxCpuPerUserLimit": "your running jobs already use as many cores as your QOS allows",
    "QOSMaxMemoryPerUser": "your running jobs already use as much memory as your QOS allows",
    "QOSMaxGRESPerUser": "your running jobs already use as many GPUs as your QOS allows",
    "QOSResourceLimit": "a limit of your QOS is reached",
    "AssocMaxJobsLimit": "your account already runs as many jobs as it may",
    "AssocMaxSubmitJobLimit": "your account already has as many jobs queued as it may",
    "InvalidAccount": "its account is not valid (any more)",
    "InvalidQOS": "its QOS is not valid (any more)",
    "BadConstraints": "its request cannot be met by any node",
    "Licenses": "it waits for licenses",
    "launch failed requeued held": "its launch failed; it is held for an administrator",
    "NodeDown": "a node it needs is down",
    "Cleaning": "its previous run is still being cleaned up",
}

_GROUP_LIMIT = re.compile(r"^(Assoc|QOS)Grp(\w+?)(RunMinutes|Minutes)?Limit$")
_GROUP_WHAT = {"CPU": "cores", "Cpu": "cores", "Mem": "memory", "Memory": "memory", "Node": "nodes", "Jobs": "running jobs",
               "Submit": "queued jobs", "GRES": "GPUs", "Billing": "billing units", "Wall": "walltime"}

END_STATES = {
    "COMPLETED": "the Jupyter server exited",
    "CANCELLED": "the job was cancelled",
    "TIMEOUT": "the job reached its walltime limit",
    "OUT_OF_MEMORY": "the job ran out of memory",
    "NODE_FAIL": "the node running the job failed",
    "FAILED": "the job failed",
    "PREEMPTED": "the job was preempted by a job with a higher priority",
    "BOOT_FAIL": "the node could not be booted",
    "DEADLINE": "the job reached its deadline",
    "REVOKED": "the job was revoked",
    "GONE": "Slurm no longer knows the job (its record has expired)",
}

_OOM_IN_OUTPUT = re.compile(r"exceeded (job |step )?memory limit|oom[-_ ]kill|out of memory", re.IGNORECASE)


def explain_pending(reason: str | None) -> str:
    """Why a pending job waits, in plain words."""
    reason = (reason or "None").strip("()")
    if reason in PENDING_REASONS:
        return PENDING_REASONS[reason]
    group = _GROUP_LIMIT.match(reason)
    if group:
        owner = "your project's" if group.group(1) == "Assoc" else "your QOS's"
        what = _GROUP_WHAT.get(group.group(2), group.group(2))
        if group.group(3):
            return f"{owner} budget of {what} time is used up"
        return f"{owner} group limit on {what} is reached"
    return f"Slurm's reason: {reason}"


def parse_slurm_time(text: str | None) -> datetime.datetime | None:
    """Slurm's ``2026-11-22T03:01:31`` (local time), or None for N/A, Unknown and the like."""
    try:
        return datetime.datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


def describe_start(estimate: str | None, now: datetime.datetime | None = None) -> str:
    """``expected to start at 05:40 (in 12 min)``, or '' when Slurm has no estimate."""
    start = parse_slurm_time(estimate)
    if start is None:
        return ""
    now = now or datetime.datetime.now()
    minutes = int((start - now).total_seconds() // 60)
    if minutes <= 0:
        return "expected to start any moment"
    when = start.strftime("%H:%M") if start.date() == now.date() else start.strftime("%Y-%m-%d %H:%M")
    span = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
    return f"expected to start at {when} (in {span})"


def pending_message(job_id: str, reason: str | None, estimate: str | None, position: int | None = None,
                    ahead_of: int | None = None) -> str:
    """The progress line for a pending job: why it waits, when it should start, where it stands."""
    parts = [f"Job {job_id} is waiting in the queue: {explain_pending(reason)}."]
    start = describe_start(estimate)
    if start:
        parts.append(start[0].upper() + start[1:] + ".")
    if position is not None and ahead_of is not None:
        parts.append(f"Position {position} of {ahead_of} pending jobs in its partition.")
    return " ".join(parts)


def explain_end(state: str, exit_code: str | None = None, cancelled_by: str | None = None,
                output_tail: str = "") -> str:
    """Why a job ended, in one sentence."""
    if state == "FAILED" and _OOM_IN_OUTPUT.search(output_tail or ""):
        state = "OUT_OF_MEMORY"
    text = END_STATES.get(state, f"the job ended in state {state}")
    if state == "CANCELLED" and cancelled_by:
        text += f" (by {cancelled_by})"
    if state == "FAILED" and exit_code and exit_code != "0:0":
        code, _, signal = exit_code.partition(":")
        text += f" (exit code {code}" + (f", signal {signal}" if signal and signal != "0" else "") + ")"
    return text[0].upper() + text[1:] + "."


def format_remaining(end: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """Walltime left until ``end`` as ``5 h 12 min`` (or ``3 min``); '' if unknown."""
    if end is None:
        return ""
    seconds = int((end - (now or datetime.datetime.now())).total_seconds())
    if seconds <= 0:
        return "none"
    hours, minutes = divmod(seconds // 60, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{max(minutes, 1)} min"


#: a kernel allocation's end where it reads otherwise than a server job's (:data:`END_STATES`)
ALLOCATION_END_STATES = {
    "COMPLETED": "was given back (its salloc ended)",
    "TIMEOUT": "reached its time limit",
    "GONE": "has ended; Slurm no longer lists it",
    "ENDED": "has ended",
    "NODE_FAIL": "ended because its node failed",
    "BOOT_FAIL": "ended because its node could not be booted",
}
#: squeue's reason while an ending job still shows COMPLETING, and the end state it means
_ENDING_REASONS = {"TimeLimit": "TIMEOUT", "NodeDown": "NODE_FAIL", "Preempted": "PREEMPTED"}


def slurm_duration(text: str | None) -> str:
    """Slurm's ``1:00``, ``01:00:00`` or ``2-00:00:00`` as ``0:01:00`` / ``1:00:00`` / ``2-00:00:00``; '' if
    it is no duration (``UNLIMITED``, ``N/A``). A bare number is minutes, as in Slurm."""
    try:
        seconds = slurm_duration_seconds(text or "")
    except ValueError:
        return ""
    return "" if seconds is None else format_clock(seconds)


def explain_allocation_end(job_id: str, state: str, reason: str | None = None, time_limit: str | None = None,
                           cancelled_by: str | None = None) -> str:
    """Why a kernel's allocation ended, in one sentence: ``Allocation 12 reached its time limit of 0:01:00.``

    ``state`` is squeue's or sacct's (``COMPLETING`` is read through squeue's ``reason``), '' when Slurm no longer
    knows the job.
    """
    state = (state or "GONE").split()[0]
    if state == "COMPLETING":
        state = _ENDING_REASONS.get((reason or "").strip("()"), "ENDED")
    if state in ALLOCATION_END_STATES:
        text = ALLOCATION_END_STATES[state]
    else:
        text = END_STATES.get(state, f"ended in state {state}").removeprefix("the job ")
    if state == "TIMEOUT" and slurm_duration(time_limit):
        text += f" of {slurm_duration(time_limit)}"
    if state == "CANCELLED" and cancelled_by:
        text += f" (by {cancelled_by})"
    return f"Allocation {job_id} {text}."


def explain_requeued(job_id: str, host: str | None, state: str) -> str:
    """Why a server ended whose job Slurm put back in the queue (or started again elsewhere) after it had served:
    the server the hub knew is gone, and a new start would spend the budget on a server nobody asked for."""
    where = f" on {host}" if host else ""
    again = "started it again elsewhere" if state == "RUNNING" else "put it back in the queue (requeued)"
    return (f"The Jupyter server{where} was lost: Slurm {again}, as it does after a node failure, so the hub "
            f"cancelled job {job_id} rather than let it start a new server you did not ask for. "
            "Start the server again when you want it.")


# -- refusals of a submission (sbatch, sbatch --test-only) ------------------------------------------------
_REFUSALS = (
    (re.compile(r"Invalid account or account/partition combination", re.I),
     "your Slurm account may not be used in this partition"),
    (re.compile(r"More processors requested than permitted", re.I), "the partition allows fewer cores per job"),
    (re.compile(r"Memory specification can not be satisfied", re.I), "no node of the partition has that much memory"),
    (re.compile(r"Requested node configuration is not available", re.I),
     "no node of the partition has that many cores, that much memory or that many GPUs"),
    (re.compile(r"Requested time limit is invalid", re.I), "the runtime is longer than the partition allows"),
    (re.compile(r"Invalid partition name", re.I), "the partition does not exist"),
    (re.compile(r"Node count specification invalid|Too many nodes", re.I), "the partition allows fewer nodes"),
    (re.compile(r"Invalid qos", re.I), "your quality of service (QOS) does not allow this request"),
    (re.compile(r"Job violates accounting/QOS policy", re.I),
     "it exceeds a limit of your account or quality of service (QOS)"),
    (re.compile(r"[Rr]eservation", re.I), "the reservation cannot be used for this request"),
    (re.compile(r"Invalid generic resource|Invalid GRES", re.I), "the partition has no such GPUs"),
)


def explain_refusal(reason: str) -> str:
    """Slurm's refusal of a job in plain words (lower case, no final full stop)."""
    reason = re.sub(r"^(allocation failure|Batch job submission failed):\s*", "", reason.strip(), flags=re.I)
    for pattern, words in _REFUSALS:
        if pattern.search(reason):
            return words
    reason = re.sub(r"[\x00-\x1f\x7f]+", " ", reason).strip().rstrip(".")
    return f"Slurm says: {reason}" if reason else "Slurm gave no reason"
