"""slurm/runner.py: typed errors from Slurm's real messages, the sudo command line, and running real (harmless)
programs (the job commands: test_jobs.py)."""

from __future__ import annotations

import asyncio
import getpass
import os
import time

import pytest

from dkrzspawner import slurm
from dkrzspawner.slurm import (JobUnknown, Result, SlurmError, SlurmRejected, SlurmRunner, SlurmTimeout,
                               SlurmUnreachable, classify)

# stderr recorded on the local Slurm 22.05 (see slurm-local.md: "Controller outages", "sbatch errors", "scancel")
UNREACHABLE = [
    (["squeue"], 1, "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"),
    (["sinfo"], 1, "slurm_load_partitions: Unable to contact slurm controller (connect failure)\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n"),
    (["scancel", "71"], 8, "scancel: error: Kill job error on job id 71: Unable to contact slurm controller "
                           "(connect failure)\n"),
    (["squeue"], 1, "slurm_load_jobs error: Socket timed out on send/recv operation\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"),
]
JOB_UNKNOWN = [
    (["squeue", "-h", "-j", "999999"], 1, "slurm_load_jobs error: Invalid job id specified\n"),
    (["scancel", "-v", "999999"], 1, "scancel: error: Kill job error on job id 999999: Invalid job id specified\n"),
]
REJECTED = [
    (["sbatch"], 1, "sbatch: error: invalid partition specified: nosuch\n"
                    "sbatch: error: Batch job submission failed: Invalid partition name specified\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: Invalid account or account/partition combination "
                    "specified\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: Invalid qos specification\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds "
                    "some limit)\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: More processors requested than permitted\n"),
    (["sbatch"], 1, "sbatch: error: Memory specification can not be satisfied\n"),
    (["sbatch"], 1, "sbatch: error: Batch job submission failed: Requested node configuration is not available\n"),
    (["sbatch"], 255, "sbatch: error: Invalid --time specification\n"),
    (["sbatch"], 1, "sbatch: error: Unable to open file /tmp/nonexistent.sh\n"),
    (["sbatch", "--test-only"], 1, "sbatch: error: invalid partition specified: nosuch\n"
                                   "allocation failure: Invalid partition name specified\n"),
    (["scancel", "96"], 210, "scancel: error: Kill job error on job id 96: Access/permission denied\n"),
    (["sacct"], 1, "Slurm accounting storage is disabled\n"),
    (["sbatch"], 1, ""),
]


def _ids(cases):
    return [stderr.strip().splitlines()[-1][-45:] if stderr.strip() else "empty" for _, _, stderr in cases]


@pytest.mark.parametrize("argv, rc, stderr", UNREACHABLE, ids=_ids(UNREACHABLE))
def test_classify_unreachable(argv, rc, stderr):
    error = classify(argv, rc, stderr)
    assert type(error) is SlurmUnreachable
    assert not isinstance(error, (JobUnknown, SlurmRejected))


@pytest.mark.parametrize("argv, rc, stderr", JOB_UNKNOWN, ids=_ids(JOB_UNKNOWN))
def test_classify_job_unknown(argv, rc, stderr):
    assert type(classify(argv, rc, stderr)) is JobUnknown


@pytest.mark.parametrize("argv, rc, stderr", REJECTED, ids=_ids(REJECTED))
def test_classify_rejected(argv, rc, stderr):
    assert type(classify(argv, rc, stderr)) is SlurmRejected


def test_error_hierarchy():
    for cls in (SlurmUnreachable, SlurmTimeout, SlurmRejected, JobUnknown):
        assert issubclass(cls, SlurmError)
    assert issubclass(SlurmTimeout, SlurmUnreachable)  # a timeout says nothing about any job either
    assert not issubclass(JobUnknown, SlurmUnreachable)
    assert not issubclass(SlurmRejected, SlurmUnreachable)


def test_error_keeps_argv_returncode_and_stripped_stderr():
    error = classify(("sbatch", "--parsable"), 1, "  sbatch: error: Batch job submission failed: Invalid qos "
                                                   "specification\n\n")
    assert error.argv == ["sbatch", "--parsable"]
    assert error.returncode == 1
    assert error.stderr == "sbatch: error: Batch job submission failed: Invalid qos specification"
    assert str(error) == error.stderr


@pytest.mark.parametrize("stderr, reason", [
    ("sbatch: error: invalid partition specified: nosuch\n"
     "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
     "Batch job submission failed: Invalid partition name specified"),
    ("sbatch: error: Memory specification can not be satisfied\n", "Memory specification can not be satisfied"),
    ("scancel: error: Kill job error on job id 96: Access/permission denied\n",
     "Kill job error on job id 96: Access/permission denied"),
    ("slurm_load_jobs error: Invalid job id specified\n", "slurm_load_jobs error: Invalid job id specified"),
    ("Slurm accounting storage is disabled\n", "Slurm accounting storage is disabled"),
    ("sbatch: error: first\n\n   \n", "first"),
])
def test_reason_strips_the_program_prefix(stderr, reason):
    assert classify(["sbatch"], 1, stderr).reason == reason


def test_reason_without_stderr_falls_back_to_the_message():
    error = SlurmError(["sbatch", "--parsable"], 3, "")
    assert str(error) == "sbatch exited with 3"
    assert error.reason == "sbatch exited with 3"
    assert SlurmTimeout(["squeue"], None, "", "squeue did not answer within 1 s").reason == \
        "squeue did not answer within 1 s"


# -- the command line -----------------------------------------------------------------------------------
def test_command_line_as_another_user():
    runner = SlurmRunner()
    runner.hub_user = "jupyterhub"
    assert runner.command_line(["sbatch", "--parsable"], user="alice", env_names=["JUPYTERHUB_API_TOKEN", "HOME",
                                                                                  "DKRZSPAWNER_BIND_IP"]) == [
        "sudo", "-n", "-u", "alice", "--preserve-env=DKRZSPAWNER_BIND_IP,HOME,JUPYTERHUB_API_TOKEN", "--",
        "sbatch", "--parsable"]


def test_command_line_without_env():
    runner = SlurmRunner()
    runner.hub_user = "jupyterhub"
    assert runner.command_line(["scancel", "42"], user="bob") == ["sudo", "-n", "-u", "bob", "--", "scancel", "42"]


def test_command_line_with_a_custom_sudo():
    runner = SlurmRunner(sudo=("/usr/bin/sudo", "-n", "-E"))
    runner.hub_user = "jupyterhub"
    assert runner.command_line(["squeue"], user="carol", env_names={"B": 1, "A": 2}.keys()) == [
        "/usr/bin/sudo", "-n", "-E", "-u", "carol", "--preserve-env=A,B", "--", "squeue"]


def test_command_line_for_the_hub_itself_has_no_sudo():
    runner = SlurmRunner()
    assert runner.hub_user == getpass.getuser()
    argv = ["squeue", "-h", "-j", "1,2"]
    assert runner.command_line(argv) == argv
    assert runner.command_line(argv, user=runner.hub_user, env_names=["X"]) == argv
    assert runner.command_line(argv) is not argv  # a copy


# -- running real programs ----------------------------------------------------------------------------
async def test_run_returns_output():
    runner = SlurmRunner()
    result = await runner.run(["/bin/echo", "hello", "world"])
    assert isinstance(result, Result)
    assert result.stdout == "hello world\n"
    assert result.stderr == ""
    assert 0 <= result.seconds < 5
    assert runner.calls["echo"] == 1
    assert runner.failures["echo"] == 0


def overlap(log_path) -> int:
    """The most commands that were running at once, from their "+" (started) and "-" (ended) lines."""
    running = most = 0
    for mark in log_path.read_text().split():
        running += 1 if mark == "+" else -1
        most = max(most, running)
    return most


async def test_at_most_concurrency_commands_run_at_once_and_the_others_wait_their_turn(tmp_path):
    log_path = tmp_path / "marks"
    runner = SlurmRunner(concurrency=2)
    argv = ["/bin/sh", "-c", f"echo + >> {log_path}; sleep 0.2; echo - >> {log_path}"]
    results = await asyncio.gather(*(runner.run(argv) for _ in range(6)))
    assert [r.stdout for r in results] == [""] * 6
    assert overlap(log_path) == 2
    assert runner.most_waiting == 4 and runner.waiting == 0
    assert runner.calls["sh"] == 6


async def test_a_waiting_commands_timeout_starts_when_it_runs():
    # Four half-second commands one at a time take two seconds, each within its one-second timeout.
    runner = SlurmRunner(concurrency=1)
    await asyncio.gather(*(runner.run(["/bin/sleep", "0.5"], timeout=1.0) for _ in range(4)))
    assert runner.failures["sleep"] == 0


async def test_a_failed_or_cancelled_command_gives_its_place_back(tmp_path):
    runner = SlurmRunner(concurrency=1)
    with pytest.raises(SlurmRejected):
        await runner.run(["/bin/sh", "-c", "exit 3"])
    waiting = asyncio.ensure_future(runner.run(["/bin/sleep", "30"]))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await runner.run(["/bin/echo", "free"])).stdout == "free\n"


async def test_without_a_bound_nothing_waits():
    runner = SlurmRunner()
    await asyncio.gather(*(runner.run(["/bin/true"]) for _ in range(5)))
    assert runner.concurrency is None and runner.most_waiting == 0


async def test_run_failure_is_classified_and_counted():
    runner = SlurmRunner()
    with pytest.raises(SlurmRejected) as info:
        await runner.run(["/bin/sh", "-c", "echo 'sbatch: error: Invalid qos specification' >&2; exit 3"])
    assert info.value.returncode == 3
    assert info.value.reason == "Invalid qos specification"
    with pytest.raises(SlurmUnreachable):
        await runner.run(["/bin/sh", "-c", "echo 'slurm_load_jobs error: Unable to contact slurm controller "
                                           "(connect failure)' >&2; exit 1"])
    with pytest.raises(JobUnknown):
        await runner.run(["/bin/sh", "-c", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"])
    await runner.run(["/bin/sh", "-c", "echo warning >&2"])  # stderr with rc 0 is no failure
    assert runner.calls["sh"] == 4
    assert runner.failures["sh"] == 3


async def test_run_with_stderr_and_rc_zero_keeps_stderr():
    result = await SlurmRunner().run(["/bin/sh", "-c", "echo 'sbatch: Job 15 to start at 2026-11-22T03:01:31' >&2"])
    assert result.stdout == ""
    assert result.stderr.startswith("sbatch: Job 15 to start")


async def test_spawn_gives_a_running_command_that_ends_when_its_stdin_closes():
    runner = SlurmRunner()
    proc = await runner.spawn(["/bin/sh", "-c", "echo 'salloc: Granted job allocation 5' >&2; exec cat"])
    assert (await proc.stderr.readline()).decode() == "salloc: Granted job allocation 5\n"
    assert proc.returncode is None
    proc.stdin.close()  # as when this process dies: cat reads end of file
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert runner.calls["sh"] == 1
    with pytest.raises(SlurmUnreachable, match="cannot run /nonexistent/salloc"):
        await runner.spawn(["/nonexistent/salloc"])
    assert runner.failures["salloc"] == 1


async def test_run_timeout_kills_the_program(tmp_path):
    runner = SlurmRunner()
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(SlurmTimeout) as info:
        await runner.run(["/bin/sh", "-c", f"echo $$ > {pidfile}; exec /bin/sleep 5"], timeout=0.3)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert isinstance(info.value, SlurmUnreachable)
    assert info.value.returncode is None
    assert "0.3 s" in str(info.value)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)
    assert runner.calls["sh"] == 1
    assert runner.failures["sh"] == 1


async def test_run_timeout_sleep():
    runner = SlurmRunner(timeout=0.3)  # the runner's default timeout applies
    started = time.monotonic()
    with pytest.raises(SlurmTimeout):
        await runner.run(["/bin/sleep", "5"])
    assert time.monotonic() - started < 2.5
    assert runner.failures["sleep"] == 1


async def test_run_timeout_of_a_program_that_ignores_sigterm(tmp_path):
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(SlurmTimeout):
        await SlurmRunner().run(["/bin/sh", "-c", f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.05; done"],
                                timeout=0.3)
    assert time.monotonic() - started < 4.5  # SIGTERM grace of 2 s, then SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


async def test_run_cancelled_kills_the_program(tmp_path):
    pidfile = tmp_path / "pid"
    task = asyncio.ensure_future(SlurmRunner().run(["/bin/sh", "-c", f"echo $$ > {pidfile}; exec /bin/sleep 5"]))
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


async def test_env_is_only_what_is_given(monkeypatch):
    monkeypatch.setenv("FOO", "from-the-hub")
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "secret")
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/test.conf")
    result = await SlurmRunner().run(["/usr/bin/env"], env={"JUPYTERHUB_API_TOKEN": "t0ken", "HOME": "/home/alice"})
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert "FOO" not in env
    assert "JUPYTERHUB_CRYPT_KEY" not in env
    assert env["SLURM_CONF"] == "/etc/slurm/test.conf"
    assert env["JUPYTERHUB_API_TOKEN"] == "t0ken"
    assert env["HOME"] == "/home/alice"
    assert env["PATH"] == slurm.BASE_ENV["PATH"]
    assert env["LANG"] == "C.UTF-8"
    assert set(env) == {"SLURM_CONF", "JUPYTERHUB_API_TOKEN", "HOME", "PATH", "LANG"}


async def test_env_without_slurm_conf(monkeypatch):
    monkeypatch.delenv("SLURM_CONF", raising=False)
    monkeypatch.setenv("FOO", "x")
    result = await SlurmRunner().run(["/usr/bin/env"])
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env == slurm.BASE_ENV


async def test_given_env_overrides_the_base(monkeypatch):
    monkeypatch.setenv("SLURM_CONF", "/hub.conf")
    result = await SlurmRunner().run(["/usr/bin/env"], env={"PATH": "/opt/x/bin:/usr/bin:/bin",
                                                            "SLURM_CONF": "/job.conf"})
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["PATH"] == "/opt/x/bin:/usr/bin:/bin"
    assert env["SLURM_CONF"] == "/job.conf"


async def test_commands_run_with_a_private_umask():
    """sbatch hands its umask to the job, so the job's output file is the user's alone (mode 0600)."""
    old = os.umask(0o022)
    try:
        result = await SlurmRunner().run(["/bin/sh", "-c", "umask"])
    finally:
        os.umask(old)
    assert result.stdout.strip() == "0077"


async def test_stdin_is_delivered():
    text = "#!/bin/bash\n#SBATCH --partition=shared\nexec 'jupyterhub-singleuser'\nünïcode ✓\n"
    result = await SlurmRunner().run(["/bin/cat"], stdin=text)
    assert result.stdout == text


async def test_without_stdin_the_program_reads_nothing():
    result = await SlurmRunner().run(["/bin/cat"], timeout=5)
    assert result.stdout == ""


async def test_output_that_is_not_utf8_is_replaced():
    result = await SlurmRunner().run(["/usr/bin/printf", "caf\\351\\n"])
    assert result.stdout == "caf\ufffd\n"


async def test_no_shell_is_involved(tmp_path):
    marker = tmp_path / "pwned"
    result = await SlurmRunner().run(["/bin/echo", f"x; touch {marker}", "$(id)", "`id`"])
    assert result.stdout == f"x; touch {marker} $(id) `id`\n"
    assert not marker.exists()


async def test_counters_by_program_name():
    runner = SlurmRunner()
    for _ in range(3):
        await runner.run(["/bin/true"])
    with pytest.raises(SlurmError):
        await runner.run(["/bin/false"])
    assert runner.calls == {"true": 3, "false": 1}
    assert runner.failures == {"false": 1}


async def test_runs_concurrently():
    runner = SlurmRunner()
    started = time.monotonic()
    await asyncio.gather(*(runner.run(["/bin/sleep", "0.3"]) for _ in range(5)))
    assert time.monotonic() - started < 1.2
    assert runner.calls["sleep"] == 5


async def test_missing_program_is_a_slurm_error():
    runner = SlurmRunner()
    with pytest.raises(SlurmError):
        await runner.run(["/nonexistent/squeue", "-h"])
    assert runner.failures["squeue"] == 1


# -- bounded output, and a job's output file read safely (the user owns it: it may be an attack) --------------
def test_a_command_that_writes_too_much_is_stopped_not_read_to_the_end():
    runner = SlurmRunner()
    runner.max_output = 1000
    with pytest.raises(slurm.OutputTooLarge, match="more than 1000 bytes"):
        asyncio.run(runner.run(["/bin/sh", "-c", "head -c 100000000 /dev/zero"]))


def test_stdin_still_reaches_a_command():
    assert asyncio.run(SlurmRunner().run(["/bin/cat"], stdin="#!/bin/bash\necho hi\n")).stdout == "#!/bin/bash\necho hi\n"


def test_printable_removes_control_characters_but_keeps_lines_and_tabs():
    assert slurm.printable("ok\x1b[31m red\x07\x00\tx\r\n[E 2026] forged\rline\x9b") == "ok[31m red\tx\n[E 2026] forged\nline"


# -- user names are checked before any command (issue 18 item 6) ----------------------------------------------
@pytest.mark.parametrize("name", ["alice", "first.last", "a_b-c", "_svc", "user@example.org", "host$", "A1"])
def test_unix_user_names_pass(name):
    assert slurm.check_user_name(name) == name


@pytest.mark.parametrize("name", ["alice,carol", "#0", "-u", "a b", "a=b", "al:ice", "../x", "", "1abc", "a\nb",
                                  "x" * 70, ".hidden"])
def test_names_that_would_change_a_command_are_refused(name):
    with pytest.raises(slurm.BadUserName, match="is not a Unix user name"):
        slurm.check_user_name(name)


def test_sudo_never_gets_a_bad_name():
    with pytest.raises(slurm.BadUserName):
        SlurmRunner().command_line(["scancel", "1"], user="#0")
    with pytest.raises(slurm.BadUserName):
        asyncio.run(SlurmRunner().run(["/bin/true"], user="alice,carol"))


def test_sacctmgr_never_gets_a_bad_name():
    from dkrzspawner.cluster import associations_argv
    with pytest.raises(slurm.BadUserName):
        associations_argv("alice,carol")
