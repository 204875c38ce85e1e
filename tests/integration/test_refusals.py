"""Refusals against the real Slurm: our validation (with real cluster facts) and the pre-flight
``sbatch --test-only`` (Slurm's own words); none of them may leave a job behind (sacct)."""

from __future__ import annotations

import datetime
import time
from types import SimpleNamespace

import pytest
from tornado import web

from dkrzspawner import script
from dkrzspawner.lifecycle import StartFailed, Submission
from dkrzspawner.options import JobRequest
from dkrzspawner.spawner import DKRZSpawner
from tests.slurmtools import require_slurm, slurm

pytestmark = pytest.mark.slurm

DEMO_PARTITIONS = {"*": {"max_gpus": 0}, "gpu": {"max_gpus": 2}}


@pytest.fixture(autouse=True)
def cluster_up():
    require_slurm()


@pytest.fixture
def since():
    """sacct's view starts here; the test then checks that no job was recorded."""
    started = (datetime.datetime.now() - datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    yield started


JOB_NAME = "jupyterhub-refusal-test"


def jobs_recorded(user: str, since: str) -> list[str]:
    """sacct's record of this test's jobs (by name: other tests may run jobs of the same users meanwhile)."""
    out = slurm("sacct", "-X", "-n", "-P", "-u", user, "-S", since, "--name", JOB_NAME, "-o", "JobID")
    return out.split()


def spawner_for(user: str) -> DKRZSpawner:
    """A DKRZSpawner outside a hub: enough for validation, the form and the pre-flight."""
    spawner = DKRZSpawner(user=SimpleNamespace(name=user), partitions=DEMO_PARTITIONS)
    spawner._events, spawner._events_changed = [], SimpleNamespace(set=lambda: None)
    return spawner


def batch_script(request: JobRequest, user: str) -> str:
    return script.render("batch_script.sh.j2", request=request, job_name=JOB_NAME,
                         comment=f"dkrzspawner:{user}:refusal-test", output="/dev/null", workdir="/tmp",
                         export_names=[], path="/usr/bin:/bin", command=["/bin/sleep", "60"])


REFUSED = [
    ("alice", {"preset": "shared", "cores": 3}, "Cores"),
    ("alice", {"preset": "shared", "account": "ab0000"}, "Account ab0000 is not one of yours"),
    ("bob", {"preset": "prepost", "runtime": "13:00:00"}, "Runtime"),
    ("bob", {"partition": "gpu", "account": "bb1234"}, "Account bb1234 is not one of yours (ab0000)"),
    ("carol", {"partition": "shared", "gpus": 1}, "GPUs: partition shared has none"),
    ("carol", {"partition": "gpu", "gpus": 3}, "GPUs must be between 0 and 2"),
    ("carol", {"partition": "gpu", "cores": 999}, "Cores must be between 1 and "),
    ("carol", {"partition": "prepost", "memory": "999G"}, "Memory must be at most "),
    ("carol", {"partition": "prepost", "runtime": "12:00:01"}, "Runtime must be between"),
    ("carol", {"partition": "nosuch"}, "not offered here"),
    ("carol", {"partition": "gpu", "nodes": 99}, "Nodes must be between 1 and "),
    ("carol", {"partition": "gpu", "reservation": "nosuch"}, "Reservation nosuch does not exist"),
    ("carol", {"partition": "gpu", "exec_prefix": "id"}, "Unknown option 'exec_prefix'"),
]


@pytest.mark.parametrize("user, user_options, words", REFUSED, ids=[f"{u}-{o}"[:60] for u, o, _ in REFUSED])
async def test_validation_refuses_with_real_facts_and_no_job(user, user_options, words, since):
    with pytest.raises(web.HTTPError) as refused:
        await spawner_for(user).validate_options(user_options)
    assert refused.value.status_code == 400
    assert words in refused.value.jupyterhub_message
    assert jobs_recorded(user, since) == []


SLURM_REFUSES = [
    # requests that only Slurm can refuse here: built without our validation, as if facts were stale
    ("alice", dict(partition="shared", cores=999, memory_mb=1000, runtime_seconds=3600), "fewer cores"),
    ("alice", dict(partition="shared", cores=1, memory_mb=1000, runtime_seconds=3600, account="ab0000"),
     "account may not be used"),
    ("bob", dict(partition="shared", cores=1, memory_mb=1022976, runtime_seconds=3600), "that much memory"),
    ("bob", dict(partition="gpu", cores=1, memory_mb=1000, runtime_seconds=3600, gpus=3), "that many GPUs"),
    ("carol", dict(partition="prepost", cores=1, memory_mb=1000, runtime_seconds=46800), "runtime is longer"),
    ("carol", dict(partition="retired", cores=1, memory_mb=1000, runtime_seconds=3600), "partition does not exist"),
    ("carol", dict(partition="gpu", cores=1, memory_mb=1000, runtime_seconds=3600, reservation="nosuch"),
     "reservation cannot be used"),
]


@pytest.mark.parametrize("user, fields, words", SLURM_REFUSES, ids=[f"{u}-{w}" for u, _, w in SLURM_REFUSES])
async def test_preflight_shows_slurms_refusal_in_plain_words_and_no_job(user, fields, words, since):
    spawner = spawner_for(user)
    with pytest.raises(StartFailed) as refused:
        await spawner.life.preflight(Submission(user=user, script=batch_script(JobRequest(**fields), user)))
    assert refused.value.status_code == 400
    message = refused.value.message
    assert message.startswith("Slurm would refuse this request: ") and words in message, message
    assert message.endswith(".") and "\n" not in message
    assert spawner.estimated_start is None
    assert jobs_recorded(user, since) == []


async def test_preflight_of_a_good_request_keeps_the_estimate_and_creates_no_job(since):
    spawner = spawner_for("carol")
    request = await spawner.validate_options({"partition": "gpu", "cores": 2, "gpus": 1, "account": "ab0000"})
    await spawner.life.preflight(Submission(user="carol", script=batch_script(request, "carol")))
    start = datetime.datetime.strptime(spawner.estimated_start, "%Y-%m-%dT%H:%M:%S")
    assert abs((start - datetime.datetime.now()).total_seconds()) < 7 * 86400
    assert spawner.start_estimate_text.startswith("expected to start")
    assert [e["progress"] for e in spawner.life.progress.events] == [5]
    time.sleep(1)
    assert jobs_recorded("carol", since) == []
