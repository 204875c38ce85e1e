"""watcher.py: JobWatcher against a fake runner with recorded squeue/sacct answers (their parsers: test_jobs.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from dkrzspawner import watcher as watcher_module
from dkrzspawner.slurm import (MISSES_BEFORE_GONE, SACCT_FORMAT, SQUEUE_FORMAT, JobUnknown, SlurmRejected,
                               SlurmTimeout, SlurmUnreachable)
from dkrzspawner.watcher import JobWatcher
from tests.unit.builders import polled
from tests.unit.fakeslurm import FakeRunner
from tests.unit.recorded import SACCT, SQUEUE_PENDING, SQUEUE_RUNNING, SQUEUE_TIMEOUT, squeue_line

UNREACHABLE = SlurmUnreachable(["squeue"], 1, "slurm_load_jobs error: Unable to contact slurm controller "
                                              "(connect failure)")
HUNG = SlurmUnreachable(["squeue"], 1, "slurm_load_jobs error: Socket timed out on send/recv operation")
TIMEOUT = SlurmTimeout(["squeue"], None, "", "squeue did not answer within 30 s")
PURGED = JobUnknown(["squeue"], 1, "slurm_load_jobs error: Invalid job id specified")
SACCT_UNREACHABLE = SlurmUnreachable(["sacct"], 1, "sacct: error: slurmdbd: Getting response to message type: "
                                                   "DBD_GET_JOBS_COND connection refused")




# -- the watcher with a fake runner ------------------------------------------------------------------------
def ids_of(argv) -> list[str]:
    return argv[argv.index("-j") + 1].split(",")


async def refresh(w):
    """Ask now and wait for the answer of a query that started after this call."""
    await asyncio.wait_for(w.refresh(), 5)


async def test_one_squeue_for_twenty_jobs(make_watcher):
    job_ids = [str(i) for i in range(100, 120)]
    runner = FakeRunner(squeue=lambda argv: "".join(squeue_line(i) for i in ids_of(argv)))
    w = make_watcher(runner)
    for job_id in reversed(job_ids):
        w.watch(job_id)
    w.watch("100")  # idempotent
    await polled(w)
    assert runner.count("squeue") == 1
    assert runner.count("sacct") == 0
    argv = runner.argvs("squeue", "sacct")[0]
    assert argv == ["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", SQUEUE_FORMAT]
    assert all(w.status(job_id).running for job_id in job_ids)
    assert w.status(105).host == "vm"  # ids may be given as ints
    await refresh(w)
    assert runner.count("squeue") == 2


async def test_a_hundred_spawners_asking_after_a_restart_share_the_first_query(make_watcher):
    # A hub restart: every spawner loads its job, then all poll at once while the first query is on its way.
    job_ids = [str(i) for i in range(200, 300)]
    runner = FakeRunner(squeue=lambda argv: "".join(squeue_line(i) for i in ids_of(argv)))
    runner.delay = 0.05
    w = make_watcher(runner)
    for job_id in job_ids:
        w.watch(job_id)
    await asyncio.sleep(0)  # the watcher's first query starts
    await asyncio.wait_for(asyncio.gather(*(w.refresh(job_id) for job_id in job_ids)), 5)
    assert runner.count("squeue") == 1
    assert all(w.status(job_id).running for job_id in job_ids)
    await asyncio.wait_for(w.refresh("999"), 5)  # a job the query on its way did not ask about: a new query
    assert runner.count("squeue") == 2


async def test_ids_are_sorted_numerically(make_watcher):
    runner = FakeRunner()
    runner.answers["sacct"] = ""
    w = make_watcher(runner, accounting=False)
    for job_id in ("100", "9", "1000", "99"):
        w.watch(job_id)
    await polled(w)
    assert ids_of(runner.argvs("squeue", "sacct")[0]) == ["9", "99", "100", "1000"]


async def test_status_is_none_until_slurm_answers(make_watcher):
    runner = FakeRunner(squeue=UNREACHABLE)
    w = make_watcher(runner)
    w.watch("8")
    assert w.status("8") is None
    await polled(w)
    assert w.status("8") is None
    assert w.status("12345") is None  # never watched


@pytest.mark.parametrize("failure", [UNREACHABLE, HUNG, TIMEOUT, SlurmRejected(["squeue"], 1, "squeue: error: x"),
                                     "8 RUNNING vm None\n", "garbage", SQUEUE_RUNNING + "slurm_load_jobs error\n"],
                         ids=["unreachable", "hung", "timeout", "rejected", "other-format", "garbage", "half"])
async def test_failed_query_changes_nothing(make_watcher, failure):
    runner = FakeRunner(squeue=SQUEUE_RUNNING + SQUEUE_PENDING)
    w = make_watcher(runner, accounting=False)
    w.watch("8")
    w.watch("10")
    w.watch("11")  # missing once: one miss counted
    await polled(w)
    before = {job_id: w.status(job_id) for job_id in ("8", "10", "11")}
    assert before["8"].running and before["10"].state == "PENDING" and before["11"] is None
    runner.answers["squeue"] = failure
    for _ in range(MISSES_BEFORE_GONE + 2):
        await refresh(w)
    after = {job_id: w.status(job_id) for job_id in ("8", "10", "11")}
    assert after == before
    assert all(after[j] is before[j] for j in after)
    assert runner.count("sacct") == 0
    if not isinstance(failure, str):
        assert w.last_error is failure
    # and 11 was not pushed towards GONE by the failures: one more successful miss is needed
    runner.answers["squeue"] = SQUEUE_RUNNING + SQUEUE_PENDING
    await refresh(w)
    assert w.last_error is None
    assert w.status("11").state == "GONE"


async def test_garbled_output_is_reported_as_a_failure(make_watcher):
    runner = FakeRunner(squeue="8 RUNNING vm None\n")
    w = make_watcher(runner)
    w.watch("8")
    await polled(w)
    assert w.last_error is not None


@pytest.mark.parametrize("state", ["COMPLETED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "FAILED"])
async def test_job_missing_from_squeue_is_settled_by_sacct(make_watcher, state):
    runner = FakeRunner(squeue=SQUEUE_RUNNING + squeue_line(20))
    w = make_watcher(runner)
    w.watch("8")
    w.watch("20")
    await polled(w)
    assert w.status("20").running
    runner.answers["squeue"] = SQUEUE_RUNNING  # 20 is gone from slurmctld's memory; 8 is still there
    runner.answers["sacct"] = lambda argv: SACCT[state].format(id="20")
    await refresh(w)
    sacct_calls = [argv for argv in runner.argvs("squeue", "sacct") if argv[0] == "sacct"]
    assert sacct_calls == [["sacct", "-X", "-n", "-P", "-j", "20", "-o", SACCT_FORMAT]]
    status = w.status("20")
    assert status.state == state and status.ended
    assert status.cancelled_by == ("1001" if state == "CANCELLED" else None)
    assert w.status("8").running


async def test_ended_state_from_squeue_needs_no_sacct(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_TIMEOUT)
    w = make_watcher(runner)
    w.watch("16")
    await polled(w)
    assert w.status("16").state == "TIMEOUT" and w.status("16").ended
    assert runner.count("sacct") == 0


async def test_whole_query_unknown_goes_to_sacct(make_watcher):
    runner = FakeRunner(squeue=PURGED,
                        sacct=SACCT["COMPLETED"].format(id="30") + SACCT["CANCELLED"].format(id="31"))
    w = make_watcher(runner)
    for job_id in ("30", "31", "32"):
        w.watch(job_id)
    await polled(w)
    assert runner.count("sacct") == 1
    assert ids_of(runner.argvs("squeue", "sacct")[-1]) == ["30", "31", "32"]
    assert w.status("30").state == "COMPLETED"
    assert w.status("31").state == "CANCELLED" and w.status("31").cancelled_by == "1001"
    assert w.status("32") is None  # unknown to both
    assert w.last_error is None  # "Invalid job id specified" is an answer, not a failure
    await refresh(w)
    assert w.status("32") is None, "with accounting, a job sacct does not know is hidden, not gone"


@pytest.mark.parametrize("alive", ["RUNNING", "PENDING"])
async def test_sacct_saying_alive_keeps_the_job(make_watcher, alive):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner)
    w.watch("8")
    await polled(w)
    seen = w.status("8")
    runner.answers["squeue"] = ""  # e.g. a flaky slurmctld answer, or the job is between states
    runner.answers["sacct"] = SACCT[alive].format(id="8")
    for _ in range(MISSES_BEFORE_GONE + 3):
        await refresh(w)
    assert w.status("8") is seen
    assert not w.status("8").ended
    assert runner.count("sacct") == MISSES_BEFORE_GONE + 3


async def test_no_accounting_gone_after_two_consecutive_successful_misses(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, accounting=False)
    w.watch("8")
    await polled(w)
    running = w.status("8")
    runner.answers["squeue"] = ""
    await refresh(w)  # miss 1
    assert w.status("8") is running
    runner.answers["squeue"] = UNREACHABLE
    await refresh(w)  # a failure is not a miss
    assert w.status("8") is running
    runner.answers["squeue"] = SQUEUE_RUNNING
    await refresh(w)  # seen again: the count starts over
    runner.answers["squeue"] = ""
    await refresh(w)  # miss 1
    assert w.status("8").running
    await refresh(w)  # miss 2
    gone = w.status("8")
    assert gone.state == "GONE" and gone.ended and gone.job_id == "8"
    assert runner.count("sacct") == 0
    assert MISSES_BEFORE_GONE == 2


async def test_accounting_without_a_record_keeps_the_job(make_watcher, caplog):
    """PrivateData=jobs hides other users' jobs from squeue and sacct alike: hidden is not gone."""
    runner = FakeRunner(squeue=SQUEUE_RUNNING, sacct="")
    w = make_watcher(runner)
    w.watch("8")
    await polled(w)
    runner.answers["squeue"] = ""
    for _ in range(MISSES_BEFORE_GONE + 3):
        await refresh(w)
    assert w.status("8").running
    assert runner.count("sacct") == MISSES_BEFORE_GONE + 3
    assert sum("hidden by PrivateData" in r.message for r in caplog.records) == 1, "warned once"


@pytest.mark.parametrize("failure", [SACCT_UNREACHABLE, SlurmTimeout(["sacct"], None, "", "timeout"),
                                     SlurmRejected(["sacct"], 1, "Slurm accounting storage is disabled"),
                                     "Slurm accounting storage is disabled\n"])
async def test_failed_sacct_changes_nothing(make_watcher, failure):
    runner = FakeRunner(squeue=SQUEUE_RUNNING, sacct=failure)
    w = make_watcher(runner)
    w.watch("8")
    await polled(w)
    running = w.status("8")
    runner.answers["squeue"] = ""
    for _ in range(MISSES_BEFORE_GONE + 2):
        await refresh(w)
    assert w.status("8") is running
    if not isinstance(failure, str):
        assert w.last_error is failure
    runner.answers["sacct"] = ""  # sacct works again and has no record: still kept (hidden, not gone)
    for _ in range(MISSES_BEFORE_GONE + 1):
        await refresh(w)
    assert w.status("8") is running


async def test_unwatch_forgets_the_job_and_stops_the_loop(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING + SQUEUE_PENDING)
    w = make_watcher(runner)
    w.watch("8")
    w.watch("10")
    await polled(w)
    w.unwatch("10")
    assert w.status("10") is None
    await refresh(w)
    assert ids_of(runner.argvs("squeue", "sacct")[-1]) == ["8"]
    w.unwatch("8")
    w.unwatch("8")  # idempotent
    await asyncio.wait_for(w.poll_once(), 5)  # no jobs: no query
    assert len(runner.argvs("squeue", "sacct")) == 2
    w._wake.set()  # the loop wakes, finds no jobs and ends
    for _ in range(100):
        if w._task is None:
            break
        await asyncio.sleep(0.01)
    assert w._task is None
    w.watch("8")  # watching again restarts it, with a first query at once
    await polled(w, w.cycles + 1)
    assert len(runner.argvs("squeue", "sacct")) == 3


@pytest.mark.parametrize("during", ["unwatch", "rewatch"])
async def test_job_unwatched_during_a_query_is_not_resurrected(make_watcher, during):
    runner = FakeRunner(squeue=SQUEUE_RUNNING + SQUEUE_PENDING)
    w = make_watcher(runner, accounting=False)
    w.watch("8")
    w.watch("10")
    await polled(w)
    runner.delay = 0.1
    runner.answers["squeue"] = SQUEUE_PENDING  # 8 is missing from this answer
    poll = asyncio.ensure_future(w.refresh())
    await asyncio.sleep(0.03)  # the query is under way
    w.unwatch("8")
    if during == "rewatch":
        w.watch("8")
    await asyncio.wait_for(poll, 5)
    assert w.status("8") is None
    assert ("8" in w._jobs) == (during == "rewatch")
    assert w.status("10").state == "PENDING"
    assert "8" not in w._misses or during == "rewatch"


async def test_refresh_wakes_the_loop_and_returns_after_one_poll(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, interval=3600, fast_interval=3600)
    w.watch("8")
    await polled(w)
    assert runner.count("squeue") == 1
    await asyncio.sleep(0.1)
    assert runner.count("squeue") == 1  # the loop sleeps for the interval
    started = time.monotonic()
    await refresh(w)
    assert time.monotonic() - started < 1
    assert runner.count("squeue") == 2
    assert w.cycles == 2


async def test_refresh_waits_for_a_poll_that_starts_after_it(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_PENDING)
    runner.delay = 0.1
    w = make_watcher(runner)
    w.watch("10")
    await asyncio.sleep(0.03)  # the first query is under way, with the old answer
    runner.answers["squeue"] = SQUEUE_PENDING.replace("PENDING", "RUNNING").replace("n/a", "vm")
    await refresh(w)  # must not return with the answer of the query that was already running
    assert w.status("10").running
    assert runner.count("squeue") == 2


async def test_many_refreshes_share_one_poll(make_watcher):
    runner = FakeRunner(squeue=lambda argv: "".join(squeue_line(i) for i in ids_of(argv)))
    runner.delay = 0.05
    w = make_watcher(runner)
    for i in range(50):
        w.watch(str(1000 + i))
    await polled(w)
    assert runner.count("squeue") == 1
    await asyncio.wait_for(asyncio.gather(*(w.refresh() for _ in range(50))), 5)
    assert runner.count("squeue") == 2


async def test_refresh_returns_after_a_failed_poll_too(make_watcher):
    runner = FakeRunner(squeue=TIMEOUT)
    w = make_watcher(runner)
    w.watch("8")
    await polled(w)
    await refresh(w)
    assert runner.count("squeue") == 2
    assert w.cycles == 2


async def test_next_poll_waits_for_the_next_query(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, interval=0.2, fast_interval=0.2)
    w.watch("8")
    await polled(w)
    started = time.monotonic()
    await asyncio.wait_for(w.next_poll(), 5)
    assert 0.1 < time.monotonic() - started < 1.5
    assert runner.count("squeue") == 2


async def test_urgent_switches_to_the_fast_interval(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, interval=3600, fast_interval=0.02)
    w.watch("8")
    await polled(w)
    await asyncio.sleep(0.15)
    assert runner.count("squeue") == 1  # slow cadence: nothing more
    with w.urgent("8"):
        await asyncio.sleep(0.3)
        fast = runner.count("squeue") - 1
        assert fast >= 5  # about 0.3 / 0.02, allowing for a slow machine
        with w.urgent("8"):  # nested (a stop during a start): still urgent after the inner block
            pass
        before = runner.count("squeue")
        await asyncio.sleep(0.15)
        assert runner.count("squeue") > before
    await asyncio.sleep(0.05)  # let the poll that may be under way finish
    settled = runner.count("squeue")
    await asyncio.sleep(0.2)
    assert runner.count("squeue") <= settled + 1  # back to the slow cadence
    assert w._urgent == {}


async def test_urgent_pending_job_polls_at_the_pending_interval(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_PENDING)
    w = make_watcher(runner, interval=3600, fast_interval=0.02, pending_interval=3600)
    w.watch("10")
    await polled(w)
    with w.urgent("10"):
        await asyncio.sleep(0.2)
        assert runner.count("squeue") == 2  # the wake-up only: a queued job needs no fast polling
        runner.answers["squeue"] = SQUEUE_PENDING.replace("PENDING", "RUNNING").replace("n/a", "vm")
        await refresh(w)
        await asyncio.sleep(0.2)
        assert runner.count("squeue") >= 5  # running now: the fast cadence


async def test_urgent_polls_at_once(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, interval=3600, fast_interval=3600)
    w.watch("8")
    await polled(w)
    with w.urgent("8"):
        await asyncio.sleep(0.05)
    assert runner.count("squeue") == 2  # entering woke the loop once


async def test_starts_that_ask_soon_after_a_query_share_the_next_one(make_watcher):
    # A class: thirty jobs submitted one after the other, each start entering urgent (which wakes the loop).
    runner = FakeRunner(squeue=lambda argv: "".join(squeue_line(i, state="PENDING") for i in ids_of(argv)))
    w = make_watcher(runner, min_gap=1.0, fast_interval=1.0)
    w.watch("1")
    await polled(w)
    urgent = []
    for job_id in range(100, 130):
        w.watch(str(job_id))
        urgent.append(w.urgent(str(job_id)))
        urgent[-1].__enter__()
        await asyncio.sleep(0)
    await asyncio.wait_for(w.refresh(), 5)
    assert runner.count("squeue") == 2, "the first query, then one for all thirty"
    assert all(w.status(str(job_id)).state == "PENDING" for job_id in range(100, 130))
    for context in urgent:
        context.__exit__(None, None, None)


async def test_the_gap_is_never_longer_than_the_fast_interval(make_watcher):
    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, min_gap=3600, fast_interval=0.02)
    w.watch("8")
    await polled(w)
    await asyncio.wait_for(w.refresh(), 5)  # within 0.02 s, not an hour
    assert runner.count("squeue") == 2
    assert watcher_module.MIN_GAP_SECONDS < JobWatcher(FakeRunner()).fast_interval


async def test_jitter_stays_within_bounds(make_watcher, monkeypatch):
    delays = []
    real_wait_for = asyncio.wait_for

    async def spy(awaitable, timeout):
        delays.append(timeout)
        return await real_wait_for(awaitable, 0.001)

    runner = FakeRunner(squeue=SQUEUE_RUNNING)
    w = make_watcher(runner, interval=10, fast_interval=10, jitter=0.1)
    monkeypatch.setattr(watcher_module.asyncio, "wait_for", spy)
    w.watch("8")
    for _ in range(200):
        if len(delays) >= 20:
            break
        await asyncio.sleep(0.005)
    monkeypatch.undo()
    assert len(delays) >= 20
    assert all(9 <= d <= 11 for d in delays)
    assert len(set(delays)) > 1


async def test_loop_survives_an_unexpected_error(make_watcher):
    runner = FakeRunner(squeue=FileNotFoundError(2, "No such file or directory", "squeue"))
    w = make_watcher(runner)
    w.watch("8")
    await polled(w)  # the first query meets the error
    runner.answers["squeue"] = SQUEUE_RUNNING
    await asyncio.wait_for(w.refresh(), 0.5)  # times out (asyncio.TimeoutError) while the bug exists
    assert w.status("8").running
