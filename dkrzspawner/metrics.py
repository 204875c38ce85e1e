"""Prometheus metrics of dkrzspawner, served with JupyterHub's own on ``/hub/metrics``.

Registered in prometheus_client's default registry, which JupyterHub's metrics handler exports. Labels are
bounded: Slurm command names, error kinds, Slurm job states and partitions; never job ids or user names.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import Counter as CounterMetric
from prometheus_client import Gauge, Histogram

#: seconds from a minute or two (a free node) to an hour (the default queue_timeout)
LONG_BUCKETS = (1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf"))
#: seconds a Slurm command or a watcher cycle takes: milliseconds normally, the timeout (30 s) in an outage
SHORT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))

SPAWN_SECONDS = Histogram(
    "dkrzspawner_spawn_duration_seconds",
    "Seconds from start() until the job's Jupyter server answers, queue wait included (successful spawns).",
    buckets=LONG_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "dkrzspawner_queue_wait_seconds",
    "Seconds from sbatch until the hub sees the job running (to within one watcher interval), by partition.",
    ["partition"],
    buckets=LONG_BUCKETS,
)
SLURM_COMMAND_SECONDS = Histogram(
    "dkrzspawner_slurm_command_duration_seconds",
    "Seconds each Slurm command took (failed and timed-out ones too), by command.",
    ["command"],
    buckets=SHORT_BUCKETS,
)
SLURM_COMMAND_ERRORS = CounterMetric(
    "dkrzspawner_slurm_command_errors",
    "Failed Slurm commands, by command and kind: unreachable (controller, munge or slurmdbd), timeout, "
    "rejected (Slurm said no), job_unknown (Slurm does not know the job id), output_too_large (stopped).",
    ["command", "kind"],
)
WATCHER_CYCLE_SECONDS = Histogram(
    "dkrzspawner_watcher_cycle_duration_seconds",
    "Seconds one watcher cycle took: the batched squeue for every job, plus sacct and queue positions.",
    buckets=SHORT_BUCKETS,
)
WATCHER_INTERVAL_SECONDS = Gauge(
    "dkrzspawner_watcher_interval_seconds",
    "The watcher's poll interval while no job is starting or stopping (watch_interval): a cycle that takes "
    "longer cannot keep up.",
)
SERVERS = Gauge(
    "dkrzspawner_servers",
    "Jobs of the hub's servers that Slurm has not yet reported over, by Slurm state (lower case; unknown: no "
    "answer yet) and partition.",
    ["state", "partition"],
)


def publish_servers(statuses) -> None:
    """Set :data:`SERVERS` from the watcher's known jobs (a :class:`~dkrzspawner.slurm.jobs.JobStatus` or None
    each); jobs that are over are not counted, and label sets no longer present are removed."""
    counts = Counter()
    for status in statuses:
        if status is None:
            counts["unknown", "unknown"] += 1
        elif not status.over:
            counts[status.state.lower(), (status.partition or "unknown").split(",")[0]] += 1
    SERVERS.clear()
    for (state, partition), number in counts.items():
        SERVERS.labels(state=state, partition=partition).set(number)
