"""metrics.py: the values change where the hub works (Slurm commands, watcher cycles, spawns), and the scrape
has our names with bounded labels."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY, generate_latest

from dkrzspawner import metrics
from dkrzspawner.slurm import SlurmRejected, SlurmRunner, SlurmTimeout, SlurmUnreachable
from dkrzspawner.slurm import JobStatus
from tests.unit.builders import make_spawner, polled
from tests.unit.fakeslurm import FakeRunner
from tests.unit.recorded import squeue_line


def value(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_slurm_commands_are_timed_and_errors_counted_by_kind():
    runner = SlurmRunner(timeout=0.5)
    before = {
        "true": value("dkrzspawner_slurm_command_duration_seconds_count", command="true"),
        "rejected": value("dkrzspawner_slurm_command_errors_total", command="false", kind="rejected"),
        "timeout": value("dkrzspawner_slurm_command_errors_total", command="sleep", kind="timeout"),
        "unreachable": value("dkrzspawner_slurm_command_errors_total", command="no-such-program",
                             kind="unreachable"),
    }
    await runner.run(["/bin/true"])
    with pytest.raises(SlurmRejected):
        await runner.run(["/bin/false"])
    with pytest.raises(SlurmTimeout):
        await runner.run(["/bin/sleep", "5"])
    with pytest.raises(SlurmUnreachable):
        await runner.run(["/nonexistent/no-such-program"])
    assert value("dkrzspawner_slurm_command_duration_seconds_count", command="true") == before["true"] + 1
    assert value("dkrzspawner_slurm_command_errors_total", command="false", kind="rejected") == before["rejected"] + 1
    assert value("dkrzspawner_slurm_command_errors_total", command="sleep", kind="timeout") == before["timeout"] + 1
    assert value("dkrzspawner_slurm_command_errors_total", command="no-such-program",
                 kind="unreachable") == before["unreachable"] + 1
    assert value("dkrzspawner_slurm_command_duration_seconds_sum", command="sleep") >= 0.5, "a timeout is timed too"
    assert runner.failures == {"false": 1, "sleep": 1, "no-such-program": 1}


async def test_watcher_cycles_are_timed_and_servers_counted(make_watcher):
    def squeue(argv):
        return squeue_line("201") + squeue_line("202", state="PENDING", host="", reason="Resources")

    cycles = value("dkrzspawner_watcher_cycle_duration_seconds_count")
    w = make_watcher(FakeRunner(squeue=squeue), interval=45)
    assert value("dkrzspawner_watcher_interval_seconds") == 45, "what a slow cycle is compared with"
    w.watch("201")
    w.watch("202")
    await polled(w)
    assert value("dkrzspawner_watcher_cycle_duration_seconds_count") == cycles + 1
    assert value("dkrzspawner_servers", state="running", partition="shared") == 1
    assert value("dkrzspawner_servers", state="pending", partition="shared") == 1
    w.unwatch("202")
    assert value("dkrzspawner_servers", state="pending", partition="shared") == 0, "gone at once"
    assert value("dkrzspawner_servers", state="running", partition="shared") == 1


def test_servers_by_state_and_partition():
    metrics.publish_servers([
        JobStatus("1", "RUNNING", partition="gpu"), JobStatus("2", "RUNNING", partition="gpu"),
        JobStatus("3", "PENDING", partition="prepost,shared"), JobStatus("4", "COMPLETING", partition="gpu"),
        JobStatus("5", "TIMEOUT", partition="gpu"), None,
    ])
    scrape = generate_latest(REGISTRY).decode()
    assert 'dkrzspawner_servers{partition="gpu",state="running"} 2.0' in scrape
    assert 'dkrzspawner_servers{partition="prepost",state="pending"} 1.0' in scrape
    assert 'dkrzspawner_servers{partition="unknown",state="unknown"} 1.0' in scrape
    assert 'state="completing"' not in scrape and 'state="timeout"' not in scrape, "jobs that are over"
    metrics.publish_servers([])
    assert "dkrzspawner_servers{" not in generate_latest(REGISTRY).decode()


def test_queue_wait_is_observed_once_per_submission(monkeypatch):
    spawner, _ = make_spawner(monkeypatch)
    spawner.record.job_partition = "gpu"
    count = value("dkrzspawner_queue_wait_seconds_count", partition="gpu")
    spawner.life._seen_running()  # not submitted by this start (a hub restart): nothing to measure
    spawner.life._submitted_at = time.monotonic() - 42
    spawner.life._seen_running()
    spawner.life._seen_running()
    assert value("dkrzspawner_queue_wait_seconds_count", partition="gpu") == count + 1
    assert value("dkrzspawner_queue_wait_seconds_bucket", partition="gpu", le="60.0") >= 1


def test_the_scrape_has_every_metric_with_bounded_labels():
    scrape = generate_latest(REGISTRY).decode()
    for name in ("dkrzspawner_spawn_duration_seconds", "dkrzspawner_queue_wait_seconds",
                 "dkrzspawner_slurm_command_duration_seconds", "dkrzspawner_slurm_command_errors_total",
                 "dkrzspawner_watcher_cycle_duration_seconds", "dkrzspawner_watcher_interval_seconds",
                 "dkrzspawner_servers"):
        assert f"# TYPE {name} " in scrape and f"# HELP {name} " in scrape, name
    labels = {m._name: set(m._labelnames) for m in (metrics.SPAWN_SECONDS, metrics.QUEUE_WAIT_SECONDS,
                                                   metrics.SLURM_COMMAND_SECONDS, metrics.SLURM_COMMAND_ERRORS,
                                                   metrics.WATCHER_CYCLE_SECONDS, metrics.WATCHER_INTERVAL_SECONDS,
                                                   metrics.SERVERS)}
    assert set().union(*labels.values()) == {"partition", "command", "kind", "state"}, "no job ids, no users"
