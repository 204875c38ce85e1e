"""The one fake :class:`dkrzspawner.slurm.SlurmRunner` of the unit tests, and the recorded cluster states it answers.

:class:`FakeRunner` has the runner's interface (``run``, ``spawn``, ``command_line``, the ``calls`` and
``failures`` counters by program name) and answers each command from a table: the key is a program name or an
argument-list prefix (a tuple; the longest that fits wins; the program is matched by its name, as the runner counts
it, so ``/bin/true`` is ``true``); the answer is a text (stdout), a :class:`~dkrzspawner.slurm.Result`, an
exception (raised, typed like the runner's: :class:`~dkrzspawner.slurm.SlurmError` subclasses), or a callable of
the argument list returning one of these (for answers that change with the command or the test's state). Every
command is recorded in :attr:`FakeRunner.commands`. A command the table does not know fails the test.

:data:`HUB_CLUSTER` and :data:`KERNEL_CLUSTER` are the tables of the local cluster as the hub's and the kernels'
tests see it, :data:`ACCOUNTING` its accounting database (:func:`unanswered` makes a program time out);
:func:`allocating` is the kernels' cluster that grants an allocation (its squeue: :class:`AllocationQueue`),
:class:`FakeSalloc` the ``salloc`` process it spawns. Imports the texts of :mod:`tests.unit.recorded` and the
argument lists of the production modules that own them; no test file.
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import Any, NamedTuple

from dkrzspawner import cluster
from dkrzspawner.slurm import Result, SlurmError, SlurmRunner, SlurmTimeout
from tests.unit import recorded


class Command(NamedTuple):
    """One command the fake was given: what the runner would run, as whom, with what, and the key that answered."""

    argv: list[str]
    user: str | None
    env: dict
    stdin: str | None
    timeout: float | None
    key: Any


class FakeRunner:
    """Answers like :class:`~dkrzspawner.slurm.SlurmRunner` from a table of recorded answers; records every command.

    ``tables`` (merged in order; a later one wins) and keyword arguments (one per program name) make the table,
    e.g. ``FakeRunner(HUB_CLUSTER, {("sbatch", "--test-only"): refusal})``; tests may change it later
    (``runner.answers["squeue"] = ...``). ``delay`` seconds pass before each answer of :meth:`run`.
    """

    sudo = ["sudo", "-n"]
    hub_user = "hub"
    timeout = 30.0
    command_line = SlurmRunner.command_line

    def __init__(self, *tables, delay: float = 0.0, **by_program):
        self.answers: dict = {}
        for table in (*tables, by_program):
            self.answers.update(table or {})
        self.delay = delay
        #: every command, in order (run and spawn)
        self.commands: list[Command] = []
        #: the processes :meth:`spawn` returned, in order
        self.spawned: list = []
        #: commands run and failed, by program name (as the real runner counts them)
        self.calls: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[str] = collections.Counter()

    def key_for(self, argv) -> Any:
        """The table's key that answers ``argv``: the longest prefix, else the program's name; None if none."""
        named = (os.path.basename(argv[0]), *argv[1:]) if argv else ()
        prefixes = [key for key in self.answers
                    if isinstance(key, tuple) and (tuple(argv[:len(key)]) == key or named[:len(key)] == key)]
        if prefixes:
            return max(prefixes, key=len)
        for key in (argv[0], named[0]) if argv else ():
            if key in self.answers:
                return key
        return None

    def _answer(self, argv, user, env, stdin, timeout):
        argv = list(argv)
        name = os.path.basename(argv[0])
        key = self.key_for(argv)
        self.calls[name] += 1
        self.commands.append(Command(argv, user, dict(env or {}), stdin, timeout, key))
        if key is None:
            raise AssertionError(f"unexpected Slurm call {argv}")
        answer = self.answers[key]
        while callable(answer):
            answer = answer(argv)
        if isinstance(answer, BaseException):
            if isinstance(answer, SlurmError):
                self.failures[name] += 1
            raise answer
        return answer

    async def run(self, argv, *, user=None, env=None, stdin: str | None = None, timeout=None) -> Result:
        """The recorded answer to ``argv`` (a text is stdout), or its exception raised."""
        await asyncio.sleep(self.delay)
        answer = self._answer(argv, user, env, stdin, timeout)
        return answer if isinstance(answer, Result) else Result(answer, "", 0.0)

    async def spawn(self, argv, *, user=None, env=None):
        """The recorded process for ``argv`` (kept in :attr:`spawned`), or its exception raised."""
        process = self._answer(argv, user, env, None, None)
        self.spawned.append(process)
        return process

    def argvs(self, *keys) -> list[list[str]]:
        """The argument lists of the commands answered by one of ``keys`` (of all commands without keys)."""
        return [command.argv for command in self.commands if not keys or command.key in keys]

    def count(self, *keys) -> int:
        """How many commands one of ``keys`` answered."""
        return len(self.argvs(*keys))

    def programs(self) -> list[str]:
        """The program of each command, in order."""
        return [command.argv[0] for command in self.commands]


# -- the local cluster (see tests.unit.recorded) ----------------------------------------------------------------
#: as the hub sees it: alice's job running; carol's and alice's accounts; the recorded reservations
HUB_CLUSTER = {
    cluster.PARTITIONS_ARGV: recorded.SCONTROL_PARTITIONS,
    cluster.SINFO_ARGV: recorded.SINFO_MIXED,
    cluster.RESERVATIONS_ARGV: recorded.RESERVATIONS,
    cluster.ALL_ASSOCIATIONS_ARGV: recorded.SACCTMGR_ALL,
    ("sacctmgr", "-n", "-P", "show", "user"): "",  # a user not in that table has no association either
}
#: as the kernels' tests see it: idle, no reservations, every user in bb1234 only, allocations of one task of one
#: core on vm, the recorded module tree (Lmod at /bin/true, as the tests configure it, or at its default path)
KERNEL_CLUSTER = {
    cluster.PARTITIONS_ARGV: recorded.SCONTROL_PARTITIONS,
    cluster.RESERVATIONS_ARGV: recorded.NO_RESERVATIONS,
    "sinfo": recorded.SINFO_IDLE,
    "sacctmgr": recorded.SACCTMGR_ALICE,
    "squeue": lambda argv: (recorded.SQUEUE_SHAPE if "-O" in argv  # a running allocation's tasks and nodes
                            else AssertionError(f"unexpected Slurm call {argv}")),
    ("true", "bash", "--terse", "avail"): Result("", recorded.LMOD_AVAIL, 0.0),
    ("lmod", "bash", "--terse", "avail"): Result("", recorded.LMOD_AVAIL, 0.0),
}

#: the accounting database: every user's accounts (anyone else has none), their limits and their usage
ACCOUNTING = {
    cluster.ALL_ASSOCIATIONS_ARGV: recorded.SACCTMGR_ALL,
    ("sacctmgr", "-n", "-P", "show", "user"): "",
    ("sacctmgr", "-n", "-P", "show", "assoc"): recorded.SACCTMGR_LIMITS,
    "sacct": recorded.SACCT_USAGE,
}


def unanswered(table: dict, *programs: str, seconds=10) -> dict:
    """``table`` with every command of ``programs`` timing out after ``seconds`` (:class:`SlurmTimeout`)."""
    def timeout(argv):
        return SlurmTimeout(argv, None, "", f"{argv[0]} did not answer within {seconds} s")

    return {**{key: timeout if (key if isinstance(key, str) else key[0]) in programs else answer
               for key, answer in table.items()}, **{program: timeout for program in programs}}


def allocating(squeue=recorded.SQUEUE_ALLOCATION, salloc=recorded.GRANTED, steps="",
               end=recorded.SQUEUE_ALLOCATION_STATE, pending=recorded.SQUEUE_ALLOCATION_PENDING,
               sacct=recorded.SACCT_CANCELLED, fail=None, shape=recorded.SQUEUE_ALLOCATION_SHAPE) -> dict:
    """:data:`KERNEL_CLUSTER` granting kernels an allocation: ``salloc`` spawns a :class:`FakeSalloc` with
    ``salloc``'s messages (a tuple ``(messages, exit code)``: salloc ended; an exception: raised); ``squeue``
    answers as :class:`AllocationQueue` (``table["squeue"]``, which a test may change); ``sacct`` says how the job
    ended."""
    def salloc_process(argv):
        if isinstance(salloc, Exception):
            return salloc
        messages, code = salloc if isinstance(salloc, tuple) else (salloc, None)
        return FakeSalloc(messages, code)

    return {**KERNEL_CLUSTER, "squeue": AllocationQueue(squeue, steps, end, pending, shape, fail),
            "salloc": salloc_process, "scancel": "", "sacct": sacct}


class AllocationQueue:
    """squeue's answers about a kernel's allocation, by the query's format (``-o``): ``squeue`` for the allocation
    (``%T|%N|%C|%D|%L``), ``steps`` its steps, ``end`` its state (``-t all``), ``pending`` a waiting one's;
    ``shape`` the ``-O`` query of tasks and nodes; ``fail`` maps a format to the error squeue raises. Each may be
    changed while a test runs."""

    def __init__(self, squeue, steps, end, pending, shape, fail=None):
        self.squeue, self.steps, self.end, self.pending, self.shape = squeue, steps, end, pending, shape
        self.fail = dict(fail or {})

    def __call__(self, argv):
        if "-O" in argv:
            return self.shape
        fmt = argv[-1]
        if fmt in self.fail:
            return self.fail[fmt]
        by_format = {"%i|%j": self.steps, "%i|%k": "", "%T|%r|%l": self.end, "%T|%r|%S": self.pending}
        return by_format.get(fmt, self.squeue)


class FakeSalloc:
    """salloc as asyncio sees it: messages on stderr, and a stdin pipe whose end makes it give the allocation back."""

    def __init__(self, messages, exit_code=None):
        self.stderr = asyncio.StreamReader()
        self.stdin = FakePipe(self)
        self.returncode = None
        self.signals = []
        self._ended = asyncio.Event()
        for line in messages:
            self.stderr.feed_data(line.encode() + b"\n")
        if exit_code is not None:  # salloc refused and exited
            self.end(exit_code)

    def end(self, code=0):
        if self.returncode is None:
            self.returncode = code
            self.stderr.feed_eof()
            self._ended.set()

    def say(self, line):
        self.stderr.feed_data(line.encode() + b"\n")

    def send_signal(self, signum):
        self.signals.append(signum)
        self.end(-signum)

    async def wait(self):
        await self._ended.wait()
        return self.returncode


class FakePipe:
    """salloc's stdin: closing it ends salloc (its ``cat`` reads end of file)."""

    def __init__(self, salloc):
        self.salloc, self.closed = salloc, False

    def is_closing(self):
        return self.closed

    def close(self):  # cat reads end of file; salloc relinquishes the allocation and exits
        self.closed = True
        self.salloc.end(0)

