"""lifecycle.py: one server's job without JupyterHub: pre-flight, submission (and adopting a job that a timed-out
sbatch created), the queue, the port, serving, the end, polling, stopping, cancelling. Recorded Slurm output; a
scripted watcher stands in for the hub's batched squeue; the "server" is a real listening socket."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dkrzspawner.lifecycle import JobRecord, ServerJob, StartFailed, Submission, Timeouts
from dkrzspawner.slurm import JobStatus, Result, SlurmRejected, SlurmTimeout, SlurmUnreachable
from tests.unit.fakeslurm import FakeRunner
from tests.unit.recorded import TEST_ONLY

SCRIPT = "#!/bin/bash\n#SBATCH --partition=gpu\n"
TAG = "dkrzspawner:carol:default:0123456789ab"
SUBMIT = ("sbatch", "--parsable")
TEST = ("sbatch", "--test-only")
TAGGED = ("squeue", "-h", "-t", "all", "-u", "carol", "-o", "%i|%k")
SACCT = ("sacct", "-X", "-n", "-P", "-j", "4242", "-o", "JobIDRaw,State,ExitCode,Elapsed,Timelimit")
OUTPUT = "/home/carol/.jupyterhub-slurm-%j.log"
FIND = ("find", "/home/carol/.jupyterhub-slurm-4242.log", "-maxdepth", "0", "-type", "f", "-printf", "%s")


class ScriptedWatcher:
    """The watcher's interface; the test says what Slurm answers (``say``), polls wake the waiting start."""

    def __init__(self):
        self.statuses: dict[str, JobStatus] = {}
        self.watched, self.urgent_ids, self.refreshes = [], [], 0
        self._polled = asyncio.Event()

    def say(self, job_id: str, state: str, **fields) -> None:
        self.statuses[job_id] = JobStatus(job_id=job_id, state=state, **fields)
        self._polled.set()

    def watch(self, job_id, on_over=None, user=None):
        self.watched.append((job_id, user))

    def unwatch(self, job_id):
        self.statuses.pop(job_id, None)

    def status(self, job_id):
        return self.statuses.get(job_id)

    def position(self, job_id):
        return (2, 3)

    @contextlib.contextmanager
    def urgent(self, job_id):
        self.urgent_ids.append(job_id)
        yield

    async def next_poll(self):
        self._polled.clear()
        await self._polled.wait()

    async def refresh(self, job_id=None):
        self.refreshes += 1
        await asyncio.sleep(0)


def life_for(answers=None, timeouts=Timeouts(queue=5, server=5, stop=1, end_confirm=1), **kwargs):
    runner = FakeRunner({TEST: Result("", TEST_ONLY, 0.0), SUBMIT: Result("4242\n", "", 0.0), **(answers or {})})
    watcher = ScriptedWatcher()
    record = JobRecord()
    saved = []
    life = ServerJob(runner, watcher, record, user="carol", timeouts=timeouts, tail_lines=3,
                     on_record=lambda: saved.append(record.to_state()), **kwargs)
    return life, runner, watcher, saved


def submission(**changes) -> Submission:
    fields = dict(user="carol", script=SCRIPT, env={"JUPYTERHUB_API_TOKEN": "secret"}, tag=TAG, partition="gpu",
                  job_name="jupyterhub-default", output=OUTPUT, summary="partition gpu, 2 cores")
    return Submission(**{**fields, **changes})


@contextlib.asynccontextmanager
async def listening():
    """A port on this host that accepts connections: the job's Jupyter server."""
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def calls(runner) -> list[tuple]:
    """(argv, user, stdin) of every command the fake Slurm was given."""
    return [(tuple(command.argv), command.user, command.stdin) for command in runner.commands]


def messages(life) -> list[str]:
    return [event["message"] for event in life.progress.events]


# -- the pre-flight ----------------------------------------------------------------------------------------
async def test_preflight_keeps_slurms_estimate():
    life, runner, _, _ = life_for()
    await life.preflight(submission())
    assert life.estimated_start == "2026-11-22T04:56:21"
    assert calls(runner)[-1] == (TEST, "carol", SCRIPT), "as the user, the very script"
    assert life.progress.events and life.progress.events[-1]["progress"] == 5


async def test_preflight_refusal_in_plain_words():
    refusal = SlurmRejected(["sbatch"], 1, "sbatch: error: Batch job submission failed: Invalid account or "
                                           "account/partition combination specified")
    life, _, _, _ = life_for({TEST: refusal})
    with pytest.raises(StartFailed) as refused:
        await life.preflight(submission())
    assert refused.value.status_code == 400 and refused.value.reason == "slurm_rejected"
    assert refused.value.message == \
        "Slurm would refuse this request: your Slurm account may not be used in this partition."
    assert life.estimated_start is None


async def test_preflight_unanswered_lets_the_submission_go_on():
    life, _, _, _ = life_for({TEST: SlurmTimeout(["sbatch"], None, "", "sbatch did not answer within 30 s")})
    await life.preflight(submission())
    assert life.estimated_start is None
    assert "submitting anyway" in life.progress.events[-1]["message"]


# -- one start attempt ---------------------------------------------------------------------------------------
async def start_and_serve(life, watcher, port, **changes):
    """Start; Slurm says pending, then running on this host; the job side reports ``port``."""
    start = asyncio.ensure_future(life.start(submission(**changes)))
    while not life.record.job_id:
        await asyncio.sleep(0.01)
    watcher.say(life.record.job_id, "PENDING", reason="Priority", start_time="2026-11-22T04:56:21")
    await asyncio.sleep(0.05)
    watcher.say(life.record.job_id, "RUNNING", host="127.0.0.1")
    await asyncio.sleep(0.05)
    assert life.receive_port(port)
    return await asyncio.wait_for(start, 10)


async def test_a_start_submits_as_the_user_waits_and_serves():
    life, runner, watcher, saved = life_for()
    async with listening() as port:
        assert await start_and_serve(life, watcher, port) == ("127.0.0.1", port)
    assert [call[:2] for call in calls(runner)] == [(TEST, "carol"), (SUBMIT, "carol")]
    assert saved[0] == {"job_comment": TAG, "job_partition": "gpu"}, "the tag is saved before sbatch runs"
    assert saved[-1] == {"job_id": "4242", "job_host": "127.0.0.1", "job_port": port, "job_comment": TAG,
                         "job_partition": "gpu"}
    assert watcher.watched == [("4242", "carol")] and watcher.urgent_ids == ["4242"]
    said = messages(life)
    assert said[1] == "Submitted Slurm job 4242: partition gpu, 2 cores."
    assert said[2].startswith("Job 4242 is waiting in the queue: jobs with a higher priority are ahead of it")
    assert "Position 2 of 3 pending jobs" in said[2]
    assert said[3] == "Job 4242 is running on 127.0.0.1; starting the Jupyter server."
    assert said[-2:] == [f"Jupyter server of job 4242 reported port {port}.",
                         f"Jupyter server of job 4242 answers on 127.0.0.1:{port}."]
    assert life.progress.done and life.progress.events[-1]["progress"] == 100
    assert life.receive_port(port), "the same port again: a retry after a lost reply"
    assert not life.receive_port(port + 1)


async def test_a_timed_out_sbatch_that_created_the_job_is_adopted():
    found = Result(f"17|other\n4242|{TAG}\n", "", 0.0)
    life, runner, watcher, _ = life_for({SUBMIT: SlurmTimeout(["sbatch"], None, "", "sbatch did not answer"),
                                          TAGGED: found})
    async with listening() as port:
        await start_and_serve(life, watcher, port)
    assert life.record.job_id == "4242"
    assert calls(runner)[2][:2] == (TAGGED, None), "looked for by its tag, as the hub's account"
    assert "Slurm did not answer the submission (sbatch did not answer); looking for the job." in messages(life)


async def test_a_timed_out_sbatch_without_a_job_says_none_was_started():
    life, _, _, _ = life_for({SUBMIT: SlurmTimeout(["sbatch"], None, "", "sbatch did not answer"),
                              TAGGED: Result("17|other\n", "", 0.0)})
    with pytest.raises(StartFailed) as failed:
        await life.start(submission())
    assert failed.value.status_code == 503
    assert failed.value.message == ("Slurm did not take the job (sbatch did not answer); no job was started. "
                                    "Please try again.")


@pytest.mark.parametrize("answer", [
    SlurmRejected(["squeue"], 1, "squeue: error: Invalid user: carol"),
    Result("this is not squeue's output\n", "", 0.0),
], ids=["rejected", "garbled"])
async def test_a_failed_tag_query_is_never_read_as_no_job(answer):
    life, _, _, _ = life_for({SUBMIT: SlurmTimeout(["sbatch"], None, "", "sbatch did not answer"), TAGGED: answer})
    with pytest.raises(StartFailed) as failed:
        await life.start(submission())
    assert "no job was started" not in failed.value.message
    assert "Slurm did not say whether it took the job" in failed.value.message
    assert "if a job named jupyterhub-default appears in squeue, cancel it" in failed.value.message


async def test_an_unanswered_tag_query_is_asked_again_until_slurm_answers(monkeypatch):
    monkeypatch.setattr("dkrzspawner.lifecycle.FIND_RETRY_SECONDS", 0.01)
    answers = [SlurmUnreachable(["squeue"], 1, "Unable to contact slurm controller"), Result(f"4242|{TAG}\n", "", 0.0)]
    life, runner, watcher, _ = life_for({SUBMIT: SlurmTimeout(["sbatch"], None, "", "sbatch did not answer"),
                                         TAGGED: lambda argv: answers.pop(0)})
    async with listening() as port:
        await start_and_serve(life, watcher, port)
    assert life.record.job_id == "4242" and not answers
    assert runner.count(TAGGED) == 2


async def test_slurms_refusal_of_the_job_is_said_and_nothing_is_cancelled():
    refused = SlurmRejected(["sbatch"], 1, "sbatch: error: Batch job submission failed: Job violates accounting")
    life, runner, _, _ = life_for({SUBMIT: refused})
    with pytest.raises(StartFailed) as failed:
        await life.start(submission())
    assert failed.value.message == "Slurm refused the job: Batch job submission failed: Job violates accounting"
    assert not [call for call in calls(runner) if call[0][0] == "scancel"], "no job, nothing to cancel"


async def test_a_job_that_ends_before_its_server_answers_says_why_with_its_output_cancelled_once():
    tail = "Loading python3\n\x1b[31mModuleNotFoundError: No module named 'jupyterhub'\r\nbye"
    answers = {SACCT: Result("4242|FAILED|1:0|00:00:02|06:00:00\n", "", 0.0), FIND: Result("120", "", 0.0),
               ("dd", "if=/home/carol/.jupyterhub-slurm-4242.log", "iflag=nofollow,nonblock,skip_bytes,count_bytes",
                "skip=0", "count=65536", "bs=65536", "status=none"): Result(tail, "", 0.0),
               ("scancel", "4242"): Result("", "", 0.0)}
    life, runner, watcher, _ = life_for(answers)
    start = asyncio.ensure_future(life.start(submission()))
    while not life.record.job_id:
        await asyncio.sleep(0.01)
    watcher.say("4242", "FAILED", exit_code=None)
    with pytest.raises(StartFailed) as failed:
        await asyncio.wait_for(start, 10)
    assert failed.value.reason == "job_ended"
    assert failed.value.message == (
        "Job 4242 ended before its Jupyter server started: The job failed (exit code 1). Last lines of its output:\n"
        "    Loading python3\n    [31mModuleNotFoundError: No module named 'jupyterhub'\n    bye")
    assert life.record.last_end["state"] == "FAILED" and life.record.last_end["job_id"] == "4242"
    assert [call[:2] for call in calls(runner) if call[0][0] == "scancel"] == [(("scancel", "4242"), "carol")]


async def test_the_queue_wait_has_a_limit_and_the_job_is_cancelled():
    life, runner, watcher, _ = life_for({("scancel", "4242"): Result("", "", 0.0)},
                                        timeouts=Timeouts(queue=0.2, server=5, stop=1))
    start = asyncio.ensure_future(life.start(submission()))
    while not life.record.job_id:
        await asyncio.sleep(0.01)
    for _ in range(10):
        watcher.say("4242", "PENDING", reason="Resources")
        await asyncio.sleep(0.05)
    with pytest.raises(StartFailed) as failed:
        await asyncio.wait_for(start, 10)
    assert failed.value.reason == "queue_timeout"
    assert failed.value.message == "Job 4242 waited longer than 0.2 s in the queue; it was cancelled."
    assert (("scancel", "4242"), "carol", None) in calls(runner)


async def test_a_server_that_never_answers_has_a_limit():
    life, _, watcher, _ = life_for({("scancel", "4242"): Result("", "", 0.0)},
                                   timeouts=Timeouts(queue=5, server=0.3, stop=1))
    async with listening() as port:
        free = port
    start = asyncio.ensure_future(life.start(submission()))
    while not life.record.job_id:
        await asyncio.sleep(0.01)
    watcher.say("4242", "RUNNING", host="127.0.0.1")
    await asyncio.sleep(0.02)
    life.receive_port(free)  # nothing listens there any more
    with pytest.raises(StartFailed) as failed:
        await asyncio.wait_for(start, 10)
    assert failed.value.reason == "server_timeout"


async def test_a_hub_restart_resumes_the_wait_for_the_recorded_job():
    life, runner, watcher, _ = life_for()
    life.record.load({"job_id": "4242", "job_comment": TAG})
    resumed = asyncio.ensure_future(life.resume())
    await asyncio.sleep(0.02)
    watcher.say("4242", "RUNNING", host="127.0.0.1")
    async with listening() as port:
        await asyncio.sleep(0.02)
        assert life.receive_port(port)
        assert await asyncio.wait_for(resumed, 10) == ("127.0.0.1", port)
    assert runner.commands == [], "nothing submitted again"


# -- polling, stopping, cancelling ---------------------------------------------------------------------------
async def test_poll_is_none_while_slurm_has_not_answered_and_never_stops_on_a_failed_query():
    life, _, watcher, _ = life_for()
    life.record.job_id = "4242"
    assert await life.poll(wait=0.1) is None
    watcher.say("4242", "RUNNING", host="node1")
    assert await life.poll(wait=0.1) is None


async def test_poll_records_how_the_job_ended():
    life, _, watcher, saved = life_for({SACCT: Result("4242|CANCELLED by 0|0:0|00:10:00|06:00:00\n", "", 0.0)})
    life.record.job_id = "4242"
    watcher.say("4242", "CANCELLED")
    assert await life.poll(wait=0.1) == 1
    assert life.record.last_end["reason"] == "The job was cancelled (by root)."
    assert saved and saved[-1]["last_end"]["state"] == "CANCELLED"


@pytest.mark.parametrize("state, host", [("PENDING", None), ("REQUEUED", "node1"), ("RUNNING", "node2")])
async def test_a_job_requeued_after_serving_is_cancelled_never_taken_for_the_live_server(state, host):
    """Slurm requeued the job (node failure, scontrol requeue): same id, but the server on node1 is gone. Pending
    again or running on another node, it is cancelled (a new start would spend the budget unasked), and why is
    said; the same id still running on its node is the live server."""
    life, runner, watcher, saved = life_for({("scancel", "4242"): Result("", "", 0.0)})
    life.record.job_id, life.record.job_host, life.record.job_port = "4242", "node1", 45678
    watcher.say("4242", "RUNNING", host="node1")
    assert await life.poll(wait=0.1) is None and not calls(runner)
    watcher.say("4242", state, host=host, reason="BeginTime" if state == "PENDING" else None)
    assert await life.poll(wait=0.1) == 1
    assert (("scancel", "4242"), "carol", None) in calls(runner)
    assert life.record.last_end["state"] == "REQUEUED" and saved[-1]["last_end"]["state"] == "REQUEUED"
    assert "on node1 was lost" in life.record.last_end["reason"] and "cancelled job 4242" in life.record.last_end["reason"]


async def test_a_pending_job_that_never_served_is_just_waiting():
    life, runner, watcher, _ = life_for()
    life.record.job_id = "4242"  # e.g. after a hub restart, before the server answered: no port recorded yet
    watcher.say("4242", "PENDING", reason="Priority")
    assert await life.poll(wait=0.1) is None and not calls(runner)


async def test_stop_cancels_as_the_user_and_waits_for_slurms_word():
    life, runner, watcher, _ = life_for({("scancel", "4242"): Result("", "", 0.0),
                                         SACCT: Result("4242|CANCELLED|0:15|00:10:00|06:00:00\n", "", 0.0)})
    life.record.job_id = "4242"
    watcher.say("4242", "RUNNING", host="node1")
    stopping = asyncio.ensure_future(life.stop())
    await asyncio.sleep(0.05)
    watcher.say("4242", "CANCELLED")
    await asyncio.wait_for(stopping, 5)
    assert (("scancel", "4242"), "carol", None) in calls(runner)
    assert life.record.last_end["state"] == "CANCELLED"


async def test_an_unconfirmed_submission_is_cancelled_after_a_restart():
    life, runner, _, saved = life_for({TAGGED: Result(f"4242|{TAG}\n", "", 0.0), ("scancel", "4242"): Result("", "", 0.0)})
    life.record.job_comment = TAG
    assert await life.poll(wait=0.1) == 0
    assert (("scancel", "4242"), "carol", None) in calls(runner)
    assert life.record.job_comment is None and life.record.job_id is None and saved


async def test_an_unconfirmed_submission_keeps_its_tag_while_slurm_cannot_tell():
    life, runner, _, _ = life_for({TAGGED: SlurmUnreachable(["squeue"], 1, "Unable to contact slurm controller")})
    life.record.job_comment = TAG
    await life.poll(wait=0.1)
    assert life.record.job_comment == TAG, "asked again at the next poll: no orphan"
    assert not [call for call in calls(runner) if call[0][0] == "scancel"]


async def test_an_unreadable_output_is_said_not_swallowed(caplog):
    answers = {FIND: SlurmRejected(["find"], 1, "find: '/home/carol/.jupyterhub-slurm-4242.log': Permission denied"),
               SACCT: Result("4242|FAILED|1:0|00:00:02|06:00:00\n", "", 0.0), ("scancel", "4242"): Result("", "", 0.0)}
    life, _, watcher, _ = life_for(answers)
    start = asyncio.ensure_future(life.start(submission()))
    while not life.record.job_id:
        await asyncio.sleep(0.01)
    with caplog.at_level("WARNING"):
        watcher.say("4242", "FAILED")
        with pytest.raises(StartFailed) as failed:
            await asyncio.wait_for(start, 10)
    assert failed.value.message == (
        "Job 4242 ended before its Jupyter server started: The job failed (exit code 1). Its output "
        "(/home/carol/.jupyterhub-slurm-4242.log) could not be read: find: '/home/carol/.jupyterhub-slurm-4242.log'"
        ": Permission denied.")
    assert "cannot read the output of job 4242" in caplog.text
    assert await life.output_tail() == "", "elsewhere (how a running server ended) the end is told without it"


def test_the_record_is_the_state_and_forgets_only_the_job():
    record = JobRecord()
    record.load({"job_id": "7", "job_host": "n1", "job_port": 8888, "job_comment": TAG, "job_partition": "gpu",
                 "last_end": {"job_id": "6"}, "unrelated": 1})
    assert record.to_state() == {"job_id": "7", "job_host": "n1", "job_port": 8888, "job_comment": TAG,
                                 "job_partition": "gpu", "last_end": {"job_id": "6"}}
    record.forget_job()
    assert record.to_state() == {"last_end": {"job_id": "6"}}
