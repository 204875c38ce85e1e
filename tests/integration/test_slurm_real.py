"""The runner and the watcher against the real local Slurm, as the real users."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from dkrzspawner.slurm import JobUnknown, SlurmRejected, SlurmRunner
from dkrzspawner.watcher import JobWatcher
from tests.slurmtools import require_slurm, slurm, wait_for

pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True)
def cluster():
    require_slurm()


@pytest.fixture
def runner():
    return SlurmRunner(timeout=30)


@pytest.fixture
def jobs(runner):
    """Job ids submitted by a test; cancelled afterwards whatever happened."""
    submitted = []
    yield submitted
    if submitted:
        slurm("scancel", *submitted, check=False)


SLEEPER = "#!/bin/bash\n#SBATCH --time=00:05:00\n#SBATCH --mem=100M\n#SBATCH --chdir=/tmp\nsleep 300\n"


async def submit(runner, user, script=SLEEPER, env=None):
    result = await runner.run(["sbatch", "--parsable"], user=user, stdin=script, env=env)
    return result.stdout.strip().split(";")[0]


async def test_sbatch_runs_as_the_user_with_only_the_explicit_environment(runner, jobs, monkeypatch):
    monkeypatch.setenv("HUB_SECRET_SHOULD_NOT_LEAK", "yes")
    shared = Path(tempfile.mkdtemp(prefix="dkrz-it-", dir="/tmp"))  # pytest's tmp_path is root-only
    shared.chmod(0o777)
    out = shared / "env.txt"
    script = (f"#!/bin/bash\n#SBATCH --time=00:01:00\n#SBATCH --mem=100M\n#SBATCH --chdir=/tmp\n"
              f"#SBATCH --export=DKRZ_TEST_VALUE\n#SBATCH --output={out}\nid -un; env\n")
    job = await submit(runner, "alice", script, env={"DKRZ_TEST_VALUE": "passed through"})
    jobs.append(job)
    text = wait_for(lambda: out.exists() and "SLURM_JOB_ID" in out.read_text() and out.read_text(),
                    timeout=60, what="the job's output")
    assert text.splitlines()[0] == "alice"
    assert "DKRZ_TEST_VALUE=passed through" in text
    assert "HUB_SECRET_SHOULD_NOT_LEAK" not in text
    argv = runner.command_line(["sbatch"], "alice", ["DKRZ_TEST_VALUE"])
    assert "--preserve-env=DKRZ_TEST_VALUE" in argv and not any("passed through" in a for a in argv)


async def test_sbatch_with_another_users_account_is_rejected(runner):
    with pytest.raises(SlurmRejected) as refused:
        await runner.run(["sbatch", "--parsable", "-A", "ab0000"], user="alice", stdin=SLEEPER)
    assert "Invalid account" in refused.value.reason


async def test_squeue_of_an_unknown_job_is_job_unknown(runner):
    with pytest.raises(JobUnknown):
        await runner.run(["squeue", "-h", "-j", "99999999"])


async def test_one_query_covers_every_job_and_sees_a_cancel(runner, jobs):
    for user in ("alice", "bob", "carol"):
        jobs.append(await submit(runner, user))
    watcher = JobWatcher(runner, interval=60, fast_interval=0.2)
    for job in jobs:
        watcher.watch(job)
    for _ in range(50):
        await watcher.refresh()
        if all(watcher.status(job).running for job in jobs):
            break
        await asyncio.sleep(0.2)
    before = runner.calls["squeue"]
    await watcher.refresh()
    assert runner.calls["squeue"] - before == 1, "one squeue for all three jobs"
    assert all(watcher.status(job).running for job in jobs)

    await runner.run(["scancel", jobs[1]], user="bob")
    for _ in range(50):
        await watcher.refresh()
        if watcher.status(jobs[1]).ended:
            break
        await asyncio.sleep(0.2)
    assert watcher.status(jobs[1]).state == "CANCELLED"
    assert not watcher.status(jobs[0]).ended and not watcher.status(jobs[2]).ended
    for job in jobs:
        watcher.unwatch(job)


class RunsAsBob(SlurmRunner):
    """A hub account without Slurm privileges: bob stands in for an unprivileged hub user."""

    def command_line(self, argv, user=None, env_names=()):
        return super().command_line(argv, user or "bob", env_names)


@pytest.fixture
def private_data():
    """The cluster with PrivateData=jobs for the test, then as before (slurm-up restarts the daemons)."""
    up = str(Path(__file__).resolve().parents[2] / "ci" / "slurm-up")
    env = {**os.environ, "SLURM_PRIVATE_DATA": "jobs"}
    subprocess.run(["bash", up], env=env, check=True, capture_output=True, timeout=300)
    try:
        yield
    finally:
        subprocess.run(["bash", up], check=True, capture_output=True, timeout=300)


async def test_private_data_hides_jobs_but_never_loses_them(private_data, runner, jobs):
    job = await submit(runner, "alice")
    jobs.append(job)
    hidden = JobWatcher(RunsAsBob(), interval=60)
    hidden.watch(job, user="alice")
    for _ in range(4):
        await hidden.refresh()
    assert hidden.status(job) is None, "hidden by PrivateData: unknown, never gone"

    as_owner = JobWatcher(RunsAsBob(), interval=60, as_users=True)
    as_owner.watch(job, user="alice")
    for _ in range(50):
        await as_owner.refresh()
        if as_owner.status(job) is not None and as_owner.status(job).running:
            break
        await asyncio.sleep(0.2)
    assert as_owner.status(job).running, "asked as its owner, the job is seen"
    for watcher in (hidden, as_owner):
        watcher.unwatch(job)
