"""slurm/jobs.py: every job command against a fake runner with recorded Slurm 22.05 output (or the runner's typed
errors), the exact command lines (the sudoers rules match them), and the pure parsers."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from dkrzspawner import slurm
from dkrzspawner.slurm import (ENDED_STATES, SACCT_FORMAT, SQUEUE_FORMAT, BadUserName, JobStatus, JobUnknown, Result,
                               SlurmError, SlurmRejected, SlurmRunner, SlurmTimeout, SlurmUnreachable,
                               UnexpectedOutput, jobs, parse_estimate, parse_sacct, parse_squeue)
from tests.unit.fakeslurm import FakeRunner
from tests.unit.recorded import SACCT, SQUEUE_PENDING, SQUEUE_RUNNING, SQUEUE_TIMEOUT, TEST_ONLY

#: every program the job commands run
PROGRAMS = ("sbatch", "squeue", "sacct", "scancel", "find", "dd")

# squeue -h -t all -u alice -o '%i|%k': her jobs and their comments (the spawn's tag; (null) without one)
SQUEUE_TAGGED = "41|(null)\n42|dkrzspawner:alice:7f3a\n43_1|(null)\n"
# squeue -h -t PD -p gpu,shared -S -p,i -o '%i|%P'
SQUEUE_QUEUE = "12|gpu\n10|shared\n11|shared,gpu\n"
UNREACHABLE = SlurmUnreachable(["squeue"], 1, "slurm_load_jobs error: Unable to contact slurm controller "
                                              "(connect failure)")
REJECTED = SlurmRejected(["squeue"], 1, "squeue: error: Invalid user: alice")
SACCT_UNREACHABLE = SlurmUnreachable(["sacct"], 1, "sacct: error: slurmdbd: Getting response to message type: "
                                                   "DBD_GET_JOBS_COND connection refused")


def answering(answer="") -> FakeRunner:
    """The shared fake runner answering every program with one recorded answer (stdout, a Result, or an error)."""
    return FakeRunner({program: answer for program in PROGRAMS})


def calls(runner: FakeRunner) -> list[tuple]:
    """Each command as (argv, user, env or None, stdin)."""
    return [(command.argv, command.user, command.env or None, command.stdin) for command in runner.commands]


def only_argv(runner: FakeRunner) -> list[str]:
    (argv,) = runner.argvs()
    return argv


# -- submit --------------------------------------------------------------------------------------------------
SCRIPT = "#!/bin/bash\n#SBATCH --partition=shared\n"


async def test_submit_gives_the_job_id():
    runner = answering("4711\n")
    assert await jobs.submit(runner, SCRIPT, user="alice", env={"JUPYTERHUB_API_TOKEN": "x"}) == "4711"
    assert calls(runner) == [(["sbatch", "--parsable"], "alice", {"JUPYTERHUB_API_TOKEN": "x"}, SCRIPT)]


async def test_submit_on_a_federation_gives_the_id_without_the_cluster():
    assert await jobs.submit(answering("4711;levante\n"), SCRIPT, user="alice", env={}) == "4711"


@pytest.mark.parametrize("stdout", ["", "\n", "Submitted batch job 4711\n", "sbatch: warning: x\n", "47a1\n",
                                    ";levante\n"])
async def test_submit_with_garbled_output_is_unexpected_output(stdout):
    with pytest.raises(UnexpectedOutput, match="sbatch"):
        await jobs.submit(answering(stdout), SCRIPT, user="alice", env={})


@pytest.mark.parametrize("error", [SlurmRejected(["sbatch"], 1, "sbatch: error: Batch job submission failed: "
                                                                "Invalid partition name specified"),
                                   SlurmTimeout(["sbatch"], None, "", "sbatch did not answer within 30 s")])
async def test_submit_raises_the_runners_errors(error):
    with pytest.raises(type(error)):
        await jobs.submit(answering(error), SCRIPT, user="alice", env={})


# -- sbatch --test-only --------------------------------------------------------------------------------------
def test_estimate_from_test_only():
    assert parse_estimate(TEST_ONLY) == "2026-11-22T04:56:21"
    assert parse_estimate("") is None
    assert parse_estimate("sbatch: Job 31 to start at soon") is None


async def test_test_only_returns_the_estimate_and_raises_refusals():
    script = "#!/bin/bash\n#SBATCH --partition=shared\n"
    runner = answering(Result("", TEST_ONLY, 0.0))
    assert await jobs.test_only(runner, script, user="alice", env={"A": "1"}) == "2026-11-22T04:56:21"
    assert calls(runner) == [(["sbatch", "--test-only"], "alice", {"A": "1"}, script)]
    refused = SlurmRejected(["sbatch"], 1, "allocation failure: More processors requested than permitted")
    with pytest.raises(SlurmRejected):
        await jobs.test_only(answering(refused), script, user="alice")
    silent = answering(Result("", "", 0.0))
    assert await jobs.test_only(silent, script, user="alice") is None
    timeout = SlurmTimeout(["sbatch"], None, "", "sbatch did not answer within 10 s")
    with pytest.raises(SlurmUnreachable):
        await jobs.test_only(answering(timeout), script, user="alice")


# -- find by tag ---------------------------------------------------------------------------------------------
async def test_find_tagged_gives_the_tagged_job():
    runner = answering(SQUEUE_TAGGED)
    assert await jobs.find_tagged(runner, "alice", "dkrzspawner:alice:7f3a") == "42"
    assert calls(runner) == [(["squeue", "-h", "-t", "all", "-u", "alice", "-o", "%i|%k"], None, None, None)], \
        "asked as the hub's account"


async def test_find_tagged_says_none_only_when_slurm_answered():
    assert await jobs.find_tagged(answering(SQUEUE_TAGGED), "alice", "dkrzspawner:alice:other") is None
    assert await jobs.find_tagged(answering(""), "alice", "dkrzspawner:alice:7f3a") is None


@pytest.mark.parametrize("error", [UNREACHABLE, REJECTED, SlurmTimeout(["squeue"], None, "", "timeout")],
                         ids=["unreachable", "rejected", "timeout"])
async def test_find_tagged_raises_when_squeue_failed(error):
    """A rejected or unanswered squeue is no "no job": an sbatch that timed out may have created one."""
    with pytest.raises(type(error)):
        await jobs.find_tagged(answering(error), "alice", "dkrzspawner:alice:7f3a")


@pytest.mark.parametrize("text", ["slurm_load_jobs error: something\n", "42 dkrzspawner:alice:7f3a\n",
                                  "x42|dkrzspawner:alice:7f3a\n"])
async def test_find_tagged_with_garbled_output_is_unexpected_output(text):
    with pytest.raises(UnexpectedOutput, match="squeue"):
        await jobs.find_tagged(answering(text), "alice", "dkrzspawner:alice:7f3a")


async def test_find_tagged_never_asks_for_a_bad_user_name():
    runner = answering(SQUEUE_TAGGED)
    with pytest.raises(BadUserName):
        await jobs.find_tagged(runner, "alice,bob", "tag")
    assert runner.commands == []


# -- cancel --------------------------------------------------------------------------------------------------
async def test_cancel_as_the_user():
    runner = answering()
    assert await jobs.cancel(runner, "4711", user="alice") is None
    assert calls(runner) == [(["scancel", "4711"], "alice", None, None)]


async def test_cancel_several_and_steps_with_a_signal():
    runner = answering()
    await jobs.cancel(runner, ["12", "13"])
    await jobs.cancel(runner, ["12.3"], signal="INT")
    assert [argv for argv, *_ in calls(runner)] == [["scancel", "12", "13"], ["scancel", "--signal=INT", "12.3"]]


@pytest.mark.parametrize("job_ids", ["", "--user=alice", "1 2", "12.", "12.3.4", "-1", "12_3", [], ["1", "x"],
                                     "1\n2", None])
async def test_cancel_refuses_what_is_no_job_id_before_anything_runs(job_ids):
    runner = answering()
    with pytest.raises(ValueError):
        await jobs.cancel(runner, job_ids, user="alice")
    assert runner.commands == []


@pytest.mark.parametrize("signal", ["", "INT KILL", "-9", "int;x", "KILL\n"])
async def test_cancel_refuses_what_is_no_signal(signal):
    runner = answering()
    with pytest.raises(ValueError):
        await jobs.cancel(runner, "12", signal=signal)
    assert runner.commands == []


async def test_cancel_raises_the_runners_errors():
    with pytest.raises(JobUnknown):
        await jobs.cancel(answering(JobUnknown(["scancel"], 1, "scancel: error: Kill job error on job id 9: "
                                                               "Invalid job id specified")), "9")


# -- the watcher's queries -----------------------------------------------------------------------------------
async def test_job_states_is_one_squeue_for_many_jobs():
    runner = answering(SQUEUE_RUNNING + SQUEUE_PENDING)
    found = await jobs.job_states(runner, ["8", "10", "11"], user="alice")
    assert calls(runner) == [(["squeue", "-h", "-t", "all", "-j", "8,10,11", "-o", SQUEUE_FORMAT], "alice", None,
                             None)]
    assert {job_id: status.state for job_id, status in found.items()} == {"8": "RUNNING", "10": "PENDING"}


async def test_job_states_with_another_program_and_errors():
    runner = answering("")
    assert await jobs.job_states(runner, ["8"], program="/opt/slurm/bin/squeue") == {}
    assert only_argv(runner)[0] == "/opt/slurm/bin/squeue"
    with pytest.raises(UnexpectedOutput):
        await jobs.job_states(answering("garbage\n"), ["8"])
    with pytest.raises(JobUnknown):
        await jobs.job_states(answering(JobUnknown(["squeue"], 1, "Invalid job id specified")), ["8"])
    with pytest.raises(ValueError):
        await jobs.job_states(answering(""), ["8,9"])


async def test_queue_order():
    runner = answering(SQUEUE_QUEUE)
    assert await jobs.queue_order(runner, ["gpu", "shared"]) == {"gpu": ["12", "11"], "shared": ["10", "11"]}
    assert calls(runner) == [(["squeue", "-h", "-t", "PD", "-p", "gpu,shared", "-S", "-p,i", "-o", "%i|%P"], None,
                             None, None)]
    with pytest.raises(UnexpectedOutput):
        await jobs.queue_order(answering("PARTITION\n"), ["gpu"])


async def test_accounted_states():
    runner = answering(SACCT["COMPLETED"].format(id="20") + SACCT["CANCELLED"].format(id="21"))
    found = await jobs.accounted_states(runner, ["20", "21", "22"], user="alice")
    assert calls(runner) == [(["sacct", "-X", "-n", "-P", "-j", "20,21,22", "-o", SACCT_FORMAT], "alice", None, None)]
    assert (found["20"].state, found["21"].state, found["21"].cancelled_by) == ("COMPLETED", "CANCELLED", "1001")
    assert "22" not in found
    with pytest.raises(SlurmUnreachable):
        await jobs.accounted_states(answering(SACCT_UNREACHABLE), ["20"])


# -- a job's final state -------------------------------------------------------------------------------------
async def test_final_state_from_sacct():
    runner = answering(SACCT["TIMEOUT"].format(id="16"))
    final = await jobs.final_state(runner, "16")
    assert calls(runner) == [(["sacct", "-X", "-n", "-P", "-j", "16", "-o", SACCT_FORMAT], None, None, None)]
    assert (final.job_id, final.state, final.exit_code, final.ended) == ("16", "TIMEOUT", "0:15", True)


async def test_final_state_without_a_record_is_none():
    assert await jobs.final_state(answering(""), "16") is None
    assert await jobs.final_state(answering(SACCT["COMPLETED"].format(id="17")), "16") is None


async def test_final_state_still_running_is_said_so():
    assert (await jobs.final_state(answering(SACCT["RUNNING"].format(id="16")), "16")).state == "RUNNING"


@pytest.mark.parametrize("answer, error", [
    (SACCT_UNREACHABLE, SlurmUnreachable),
    (SlurmRejected(["sacct"], 1, "Slurm accounting storage is disabled"), SlurmRejected),
    ("Slurm accounting storage is disabled\n", UnexpectedOutput),
])
async def test_final_state_failures_are_typed(answer, error):
    with pytest.raises(error):
        await jobs.final_state(answering(answer), "16")


# -- the output's tail (real find and dd on real files) ------------------------------------------------------
def tail(path, lines=3):
    return asyncio.run(slurm.output_tail(SlurmRunner(), None, str(path), lines))


def test_output_tail_gives_the_last_lines(tmp_path):
    out = tmp_path / "job.log"
    out.write_text("".join(f"line {i}\n" for i in range(100)) + "end \x1b[2Kcolour\n")
    assert tail(out) == "line 98\nline 99\nend [2Kcolour"


def test_output_tail_of_a_huge_file_without_line_breaks_reads_64_kib(tmp_path):
    out = tmp_path / "job.log"
    with open(out, "wb") as f:  # 1 GiB, sparse: NUL bytes and no line break
        f.truncate(1 << 30)
        f.seek((1 << 30) - 6)
        f.write(b"xyzzy\n")
    started = time.monotonic()
    text = tail(out, lines=20)
    assert text == "xyzzy", "the NUL bytes are control characters, removed"
    assert time.monotonic() - started < 5, "read only the end (no timing rule of the product: a sanity bound)"


@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "fifo", "directory", "missing"])
def test_output_tail_never_reads_what_is_not_a_regular_file(tmp_path, kind):
    out = tmp_path / "job.log"
    if kind == "symlink to /dev/zero":
        out.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "directory":
        out.mkdir()
    if kind == "missing":
        with pytest.raises(SlurmError):
            tail(out)
    else:
        assert tail(out) == ""



# -- parsers (pure) ---------------------------------------------------------------------------------------
def test_parse_squeue_recorded():
    jobs = parse_squeue(SQUEUE_RUNNING + SQUEUE_PENDING + "\n" + SQUEUE_TIMEOUT)
    assert list(jobs) == ["8", "10", "16"]
    running, pending, timeout = jobs["8"], jobs["10"], jobs["16"]
    assert (running.state, running.host, running.reason, running.start_time, running.end_time, running.partition) \
        == ("RUNNING", "vm", None, "2026-11-22T03:01:06", "2026-11-22T04:01:06", "gpu")
    assert running.running and not running.ended
    assert (pending.state, pending.host, pending.reason, pending.start_time, pending.end_time, pending.partition) == \
        ("PENDING", None, "PartitionTimeLimit", None, None, "prepost")  # host n/a, start N/A
    assert not pending.running and not pending.ended
    assert (timeout.state, timeout.reason) == ("TIMEOUT", "TimeLimit")
    assert timeout.ended and not timeout.running


def test_parse_squeue_empty():
    # a finished job within MinJobAge without -t all, or ids dropped from a multi-id query: nothing, rc 0
    assert parse_squeue("") == {}
    assert parse_squeue("\n\n") == {}


def test_parse_squeue_tolerates_padding():
    jobs = parse_squeue(" 8|RUNNING |vm|None|N/A|1:00|shared|alice\n")
    assert jobs["8"].job_id == "8" and jobs["8"].state == "RUNNING"


@pytest.mark.parametrize("text", [
    "8 RUNNING vm None\n",  # another format
    "8|RUNNING|vm|None\n",  # too few fields
    "8|RUNNING|vm|None|N/A|1:00|shared|alice|extra\n",  # too many
    "JOBID|STATE|NODELIST|REASON|START_TIME|TIME_LEFT|PARTITION|USER\n",  # a header
    "x8|RUNNING|vm|None|N/A|1:00|shared|alice\n",
    "8_1|RUNNING|vm|None|N/A|1:00|shared|alice\n",  # array job
    "|RUNNING|vm|None|N/A|1:00|shared|alice\n",
    "8|running|vm|None|N/A|1:00|shared|alice\n",
    "8||vm|None|N/A|1:00|shared|alice\n",
    "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n",
    '{"jobs": [], "errors": [{"description": "Failed while looking for jobs"}]}\n',  # squeue --json
    SQUEUE_RUNNING + "garbage\n",  # one bad line spoils the answer
])
def test_parse_squeue_garbled(text):
    with pytest.raises(ValueError):
        parse_squeue(text)


def test_parse_sacct_recorded():
    text = "".join(SACCT[state].format(id=job_id) for job_id, state in
                   [("16", "TIMEOUT"), ("17", "CANCELLED"), ("18", "COMPLETED"), ("19", "OUT_OF_MEMORY"),
                    ("20", "RUNNING")])
    jobs = parse_sacct(text)
    assert {job_id: status.state for job_id, status in jobs.items()} == {
        "16": "TIMEOUT", "17": "CANCELLED", "18": "COMPLETED", "19": "OUT_OF_MEMORY", "20": "RUNNING"}
    assert jobs["17"].cancelled_by == "1001"
    assert jobs["16"].cancelled_by is None
    assert jobs["16"].exit_code == "0:15"
    assert jobs["19"].exit_code == "0:125"
    assert all(jobs[j].ended for j in "16 17 18 19".split())
    assert not jobs["20"].ended and jobs["20"].running


def test_parse_sacct_empty():
    assert parse_sacct("") == {}


@pytest.mark.parametrize("text", [
    "16.batch|CANCELLED|0:15|00:01:28|\n",  # a step line (sacct without -X)
    "JobIDRaw|State|ExitCode|Elapsed|Timelimit\n",
    "16|TIMEOUT|0:15\n",
    "16|TIMEOUT|0:15|00:01:28|00:01:00|extra\n",
    "16 TIMEOUT 00:01:28 00:01:00 0:0\n",
    "Slurm accounting storage is disabled\n",
    "16|TIMEOUT|0:15|00:01:28|00:01:00\ngarbage\n",
])
def test_parse_sacct_garbled(text):
    with pytest.raises(ValueError):
        parse_sacct(text)


def test_ended_states():
    for state in ("COMPLETED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "FAILED", "NODE_FAIL", "PREEMPTED",
                  "BOOT_FAIL", "DEADLINE", "GONE"):
        assert JobStatus("1", state).ended
    for state in ("PENDING", "RUNNING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING"):
        assert not JobStatus("1", state).ended
    assert "RUNNING" not in ENDED_STATES
    completing = JobStatus("1", "COMPLETING")  # Slurm still cleaning up: the programs are over, the job not yet
    assert completing.over and not completing.ended and not completing.running
    assert JobStatus("1", "TIMEOUT").over and not JobStatus("1", "RUNNING").over




# -- the sudoers drop-in allows exactly what these functions run as a user -------------------------------------
SUDOERS = Path(__file__).resolve().parents[2] / "dkrzspawner" / "share" / "sudoers.d" / "dkrzspawner"


def sudoers_rules() -> dict[str, list]:
    """The shipped rules by program: a literal argument string, or a compiled ``^...$`` pattern (sudo's regular
    expressions, with POSIX classes turned into Python's)."""
    text = re.sub(r"\\\n\s*", "", SUDOERS.read_text())
    rules: dict[str, list] = {}
    for line in text.splitlines():
        if not line.startswith("Cmnd_Alias"):
            continue
        for entry in re.split(r"(?<!\\),\s*", line.split("=", 1)[1].strip()):
            path, _, args = entry.partition(" ")
            if args.startswith("^"):
                rule = re.compile(args.replace("[:space:]", r"\s"))
            else:
                rule = args
            rules.setdefault(os.path.basename(path), []).append(rule)
    return rules


def allowed(argv) -> bool:
    program, args = argv[0], " ".join(argv[1:])
    return any(rule.fullmatch(args) if isinstance(rule, re.Pattern) else rule == args
               for rule in sudoers_rules().get(program, []))


async def test_what_runs_as_a_user_is_what_the_sudoers_rules_allow():
    runner = answering("100")
    await jobs.submit(runner, SCRIPT, user="alice", env={})
    await jobs.test_only(runner, SCRIPT, user="alice", env={})
    await jobs.cancel(runner, "4711", user="alice")
    await jobs.output_tail(runner, "alice", "/home/alice/.jupyterhub-slurm-42.log", 20)
    runner.answers.update(squeue="", sacct="")
    await jobs.job_states(runner, ["11", "12", "13"], user="alice")
    await jobs.accounted_states(runner, ["11", "12"], user="alice")
    as_user = [argv for argv, user, *_ in calls(runner) if user is not None]
    assert [argv[0] for argv in as_user] == ["sbatch", "sbatch", "scancel", "find", "dd", "squeue", "sacct"]
    for argv in as_user:
        assert allowed(argv), f"the sudoers drop-in does not allow {argv}"


def test_the_sudoers_rules_refuse_what_no_function_runs():
    assert not allowed(["scancel", "--signal=KILL", "1"])
    assert not allowed(["scancel", "1", "2"])
    assert not allowed(["squeue", "-h", "-t", "all", "-u", "alice", "-o", "%i|%k"]), "find_tagged runs as the hub"
    assert not allowed(["sacct", "-X", "-n", "-P", "-j", "5", "-o", SACCT_FORMAT, "--batch-script"])


# -- a Jupyter server's own job (squeue as the server's user) ---------------------------------------------------
def test_job_info_parses_the_servers_job():
    from tests.unit.recorded import SQUEUE_JOB_INFO, SQUEUE_JOB_INFO_GPU
    info = slurm.parse_job_info(SQUEUE_JOB_INFO, "930")
    assert info == slurm.JobInfo(job_id="930", state="RUNNING", account="bb1234", partition="shared", nodes="vm",
                                 cpus=2, memory="5000M", gpus=0, start_time="2026-12-01T22:00:00",
                                 end_time="2026-12-02T04:00:00")
    assert slurm.parse_job_info(SQUEUE_JOB_INFO_GPU, "932").gpus == 1
    assert slurm.parse_job_info("", "930") is None
    assert slurm.parse_job_info("931|PENDING|bb1234|shared|(null)|1|1000M|N/A|N/A|N/A\n", "931").nodes is None
    with pytest.raises(ValueError):
        slurm.parse_job_info("930|RUNNING|bb1234\n", "930")


async def test_job_info_runs_squeue_as_the_user_itself():
    from tests.unit.recorded import SQUEUE_JOB_INFO
    runner = FakeRunner(squeue=SQUEUE_JOB_INFO)
    info = await slurm.job_info(runner, "930", timeout=5)
    assert info.end_time == "2026-12-02T04:00:00"
    assert runner.commands[0].argv == ["squeue", "-h", "-j", "930", "-o", slurm.JOB_INFO_FORMAT]
    assert runner.commands[0].user is None
    with pytest.raises(ValueError):
        await slurm.job_info(runner, "930;rm")
    with pytest.raises(UnexpectedOutput):
        await slurm.job_info(FakeRunner(squeue="garbage\n"), "930")
