"""slurm/allocations.py: the kernels' Slurm command lines, and what Slurm's answers about an allocation say."""

from __future__ import annotations

import pytest

from dkrzspawner.slurm import JobUnknown, Result, SlurmRejected, UnexpectedOutput, allocations


def test_srun_argv():
    argv = allocations.srun_argv("42", "vm", ["/py", "-m", "ipykernel_launcher", "-f", "/home/a/k.json"],
                                 step_name="kernel-1", cpus=2, cwd="/home/a", srun="/usr/bin/srun")
    assert argv == ["/usr/bin/srun", "--jobid=42", "--overlap", "--nodes=1", "--ntasks=1", "--nodelist=vm",
                    "--job-name=kernel-1", "--input=none", "--cpus-per-task=2", "--chdir=/home/a",
                    "/py", "-m", "ipykernel_launcher", "-f", "/home/a/k.json"]


def test_granted_job_id():
    assert allocations.granted_job_id("salloc: Granted job allocation 212\n") == "212"
    assert allocations.granted_job_id("salloc: Pending job allocation 254\nsalloc: job 254 queued and waiting for "
                                      "resources\nsalloc: job 254 has been allocated resources\n"
                                      "salloc: Granted job allocation 254\n") == "254"
    assert allocations.granted_job_id("salloc: error: nope") is None


def test_the_allocations_shape():
    assert allocations.parse_job_shape("2         |1         |vm                  \n") == (2, 1, "vm")
    assert allocations.parse_job_shape("4|N/A|n[01-02]") == (4, 1, "n[01-02]")
    with pytest.raises(ValueError):
        allocations.parse_job_shape("")


def test_squeue_of_an_allocation_is_read_field_by_field():
    assert allocations.parse_placement("RUNNING|vm|2|1|59:00\n") == allocations.Placement(
        "RUNNING", "vm", "2", "1", "59:00")
    assert allocations.parse_placement("RUNNING|vm|2|1|59:00").cpus_per_node == 2
    assert allocations.parse_placement("RUNNING|vm,other|4|2").time_left == ""  # missing fields are empty
    assert allocations.parse_placement("RUNNING|vm|N/A|1|1:00").cpus_per_node is None
    assert allocations.parse_placement("") == allocations.Placement("", "", "", "", "")  # not listed: ended
    assert allocations.parse_waiting("PENDING|Priority|2026-12-01T23:00:00") == allocations.Waiting(
        "PENDING", "Priority", "2026-12-01T23:00:00")
    assert allocations.parse_end_state("TIMEOUT|TimeLimit|1:00\nmore\n") == allocations.EndState(
        "TIMEOUT", "TimeLimit", "1:00")
    assert allocations.parse_end_state("") == allocations.EndState("", "", "")
    for garbled in ("slurm_load_jobs error: Socket timed out", "RUNNING|a|b|c|d|e|f", "<html>"):
        with pytest.raises(ValueError):
            allocations.parse_placement(garbled)


def test_job_steps_are_read_or_refused_never_guessed():
    steps = allocations.parse_steps("77.0|kernel-k1\n 77.4|kernel-of-another-server \n77.extern|extern\n\n"
                                    "78_3.1|x\n79+1.0|y\n")
    assert [(s.id, s.name) for s in steps] == [("77.0", "kernel-k1"), ("77.4", "kernel-of-another-server"),
                                               ("77.extern", "extern"), ("78_3.1", "x"), ("79+1.0", "y")]
    assert allocations.parse_steps("") == []
    for garbled in ("77.0 kernel-k1", "slurm_get_job_steps error: Unable to contact slurm controller",
                    "|kernel-k1", "77|kernel-k1"):
        with pytest.raises(ValueError):
            allocations.parse_steps(garbled)


class Answers:
    """A runner that answers every command with the same text (or raises the same error)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    async def run(self, argv, *, timeout=None, **kwargs):
        self.calls.append(list(argv))
        if isinstance(self.answer, Exception):
            raise self.answer
        return Result(self.answer, "", 0.0)


async def test_queries_raise_typed_errors():
    with pytest.raises(UnexpectedOutput, match="unexpected job step line"):
        await allocations.steps(Answers("garbage"), "77", 5.0)
    with pytest.raises(UnexpectedOutput):
        await allocations.placement(Answers("garbage"), "77", 5.0)
    with pytest.raises(UnexpectedOutput):
        await allocations.shape_of(Answers("garbage"), "77", 5.0)
    refused = SlurmRejected(["squeue"], 1, "squeue: error: something")
    with pytest.raises(SlurmRejected):
        await allocations.steps(Answers(refused), "77", 5.0)
    unknown = Answers(JobUnknown(["squeue"], 1, "slurm_load_jobs error: Invalid job id specified"))
    assert await allocations.end_state(unknown, "77", 5.0) == allocations.EndState("", "", "")
    assert unknown.calls == [["squeue", "-h", "-t", "all", "-j", "77", "-o", "%T|%r|%l"]]


async def test_sacct_says_who_cancelled():
    assert await allocations.cancelled_by(Answers("CANCELLED by 1001\n"), "77", 5.0) == "1001"
    assert await allocations.cancelled_by(Answers("CANCELLED\n"), "77", 5.0) is None


async def test_jobs_left_behind_are_found_by_their_tag():
    runner = Answers("12|dkrz-kernel:k1\n13|other\n")
    assert await allocations.tagged(runner, "dkrz-kernel:k1", 5.0) == "12"
    assert await allocations.tagged(runner, "dkrz-kernel:k2", 5.0) is None
    assert runner.calls == [["squeue", "-h", "--me", "-o", "%i|%k"]] * 2
    with pytest.raises(UnexpectedOutput):
        await allocations.tagged(Answers("slurm_load_jobs: garbled"), "dkrz-kernel:k1", 5.0)
