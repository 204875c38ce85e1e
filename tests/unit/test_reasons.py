"""Slurm's states and reasons in plain words."""

import datetime

import pytest

from dkrzspawner.reasons import (describe_start, explain_allocation_end, explain_end, explain_pending, explain_refusal,
                                 format_remaining, parse_slurm_time, pending_message, slurm_duration)

NOW = datetime.datetime(2026, 11, 22, 5, 0, 0)


@pytest.mark.parametrize("reason, words", [
    ("Resources", "cores, memory or GPUs"),
    ("(Resources)", "cores, memory or GPUs"),
    ("Priority", "higher priority"),
    ("JobHeldUser", "held by you"),
    ("JobHeldAdmin", "held by an administrator"),
    ("QOSMaxJobsPerUserLimit", "as many jobs as your QOS allows"),
    ("ReqNodeNotAvail", "not available"),
    ("AssocGrpCPUMinutesLimit", "your project's budget of cores time is used up"),
    ("AssocGrpGRES", "Slurm's reason: AssocGrpGRES"),
    ("AssocGrpCpuLimit", "your project's group limit on cores is reached"),
    ("QOSGrpNodeLimit", "your QOS's group limit on nodes is reached"),
    (None, "not looked at it yet"),
    ("SomethingNew", "Slurm's reason: SomethingNew"),
])
def test_pending_reasons_in_plain_words(reason, words):
    assert words in explain_pending(reason)


def test_estimated_start_today_and_later():
    assert describe_start("2026-11-22T05:12:00", NOW) == "expected to start at 05:12 (in 12 min)"
    assert describe_start("2026-11-23T08:00:00", NOW) == "expected to start at 2026-11-23 08:00 (in 27 h 0 min)"
    assert describe_start("2026-11-22T04:00:00", NOW) == "expected to start any moment"
    assert describe_start("N/A", NOW) == "" and describe_start(None, NOW) == ""


def test_pending_message_has_reason_estimate_and_position():
    message = pending_message("42", "Resources", None, 2, 5)
    assert message == ("Job 42 is waiting in the queue: it waits for cores, memory or GPUs to become free. "
                       "Position 2 of 5 pending jobs in its partition.")
    assert "Expected to start" in pending_message("42", "Priority", "2099-01-01T00:00:00")


@pytest.mark.parametrize("state, exit_code, by, tail, sentence", [
    ("TIMEOUT", "0:0", None, "", "The job reached its walltime limit."),
    ("CANCELLED", "0:0", "alice", "", "The job was cancelled (by alice)."),
    ("OUT_OF_MEMORY", "0:125", None, "", "The job ran out of memory."),
    ("FAILED", "0:9", None, "slurmstepd: error: Exceeded job memory limit", "The job ran out of memory."),
    ("FAILED", "127:0", None, "python: not found", "The job failed (exit code 127)."),
    ("FAILED", "0:9", None, "", "The job failed (exit code 0, signal 9)."),
    ("NODE_FAIL", "0:0", None, "", "The node running the job failed."),
    ("COMPLETED", "0:0", None, "", "The Jupyter server exited."),
    ("WEIRD", None, None, "", "The job ended in state WEIRD."),
])
def test_end_reasons_in_one_sentence(state, exit_code, by, tail, sentence):
    assert explain_end(state, exit_code, by, tail) == sentence


def test_walltime_left():
    assert format_remaining(NOW + datetime.timedelta(hours=5, minutes=12, seconds=30), NOW) == "5 h 12 min"
    assert format_remaining(NOW + datetime.timedelta(seconds=20), NOW) == "1 min"
    assert format_remaining(NOW + datetime.timedelta(days=2, hours=3), NOW) == "2 d 3 h"
    assert format_remaining(NOW - datetime.timedelta(seconds=1), NOW) == "none"
    assert format_remaining(None, NOW) == ""
    assert parse_slurm_time("Unknown") is None


@pytest.mark.parametrize("state, reason, limit, by, words", [
    ("TIMEOUT", "TimeLimit", "1:00", None, "Allocation 9 reached its time limit of 0:01:00."),
    ("COMPLETING", "TimeLimit", "01:00:00", None, "Allocation 9 reached its time limit of 1:00:00."),
    ("CANCELLED", "None", "1:00", "alice", "Allocation 9 was cancelled (by alice)."),
    ("CANCELLED by 0", "", "", None, "Allocation 9 was cancelled."),
    ("NODE_FAIL", "NodeDown", "1:00", None, "Allocation 9 ended because its node failed."),
    ("COMPLETING", "NodeDown", "1:00", None, "Allocation 9 ended because its node failed."),
    ("COMPLETING", "None", "1:00", None, "Allocation 9 has ended."),
    ("PREEMPTED", "", "", None, "Allocation 9 was preempted by a job with a higher priority."),
    ("OUT_OF_MEMORY", "", "", None, "Allocation 9 ran out of memory."),
    ("COMPLETED", "", "", None, "Allocation 9 was given back (its salloc ended)."),
    ("", "", "", None, "Allocation 9 has ended; Slurm no longer lists it."),
    ("WEIRD", "", "", None, "Allocation 9 ended in state WEIRD."),
])
def test_an_allocations_end_in_plain_words(state, reason, limit, by, words):
    assert explain_allocation_end("9", state, reason, limit, by) == words


@pytest.mark.parametrize("text, shown", [
    ("1:00", "0:01:00"), ("01:00:00", "1:00:00"), ("2-00:00:00", "2-00:00:00"), ("1-2:03:04", "1-02:03:04"),
    ("5", "0:05:00"), ("UNLIMITED", ""), ("N/A", ""), ("", ""), (None, ""),
])
def test_slurm_durations(text, shown):
    assert slurm_duration(text) == shown


# -- refusals of a submission ------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, words", [
    ("Invalid account or account/partition combination specified", "account may not be used"),
    ("allocation failure: More processors requested than permitted", "fewer cores"),
    ("Memory specification can not be satisfied", "that much memory"),
    ("Requested node configuration is not available", "that many cores, that much memory or that many GPUs"),
    ("Requested time limit is invalid (missing or exceeds some limit)", "runtime is longer"),
    ("allocation failure: Invalid partition name specified", "partition does not exist"),
    ("Invalid qos specification", "quality of service"),
    ("Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)", "limit of your account"),
    ("Requested reservation is invalid", "reservation cannot be used"),
    ("Access denied to requested reservation", "reservation cannot be used"),
    ("Something new\nand odd.", "Slurm says: Something new and odd"),
    ("", "Slurm gave no reason"),
])
def test_refusals_in_plain_words(reason, words):
    text = explain_refusal(reason)
    assert words in text
    assert "\n" not in text and not text.endswith(".")
