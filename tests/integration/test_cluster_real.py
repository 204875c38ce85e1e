"""cluster.py against the real local Slurm: what the form and validation read, and what it costs Slurm."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import pytest

from dkrzspawner.cluster import Cluster
from dkrzspawner.slurm import SlurmRunner
from tests.slurmtools import require_slurm, slurm

pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True)
def cluster_up():
    require_slurm()


@pytest.fixture
def runner():
    return SlurmRunner(timeout=30)


async def test_partitions_limits_and_free_resources(runner):
    partitions = await Cluster(runner).partitions()
    assert list(partitions) == ["shared", "prepost", "gpu"]
    shared, prepost, gpu = partitions.values()
    assert shared.default and not prepost.default
    assert (shared.max_time, prepost.max_time, gpu.max_time) == (7 * 86400, 12 * 3600, 12 * 3600)
    assert shared.default_time == 3600
    nodes = [line.split() for line in slurm("sinfo", "-h", "-N", "-p", "shared", "-o", "%n %c %m").splitlines()]
    assert len(nodes) == 2 and len({(cpus, memory) for _, cpus, memory in nodes}) == 1  # node1, node2: one size
    cpus, memory = int(nodes[0][1]), int(nodes[0][2])
    for partition in partitions.values():
        assert (partition.cpus_per_node, partition.memory_per_node, partition.gpus_per_node) == (cpus, memory, 2)
        assert 0 <= partition.idle_cpus <= 2 * cpus and 0 <= partition.free_gpus <= 2 * 2
        assert partition.usable_nodes == 2 and partition.up


async def test_the_users_accounts(runner):
    shared = Cluster(runner)
    carol, alice, bob = await asyncio.gather(shared.access("carol"), shared.access("alice"), shared.access("bob"))
    assert carol.default_account == "bb1234" and set(carol.accounts) == {"bb1234", "ab0000"}
    assert carol.accounts[0] == "bb1234", "the default first"
    assert alice.accounts == ("bb1234",) and bob.accounts == ("ab0000",)
    assert alice.accounts_for("gpu") == ("bb1234",)
    nobody = await shared.access("no-such-user")
    assert nobody.accounts == ()


async def test_one_query_per_kind_and_refresh_however_many_callers(runner):
    shared = Cluster(runner, ttl=60)
    before = dict(runner.calls)
    await asyncio.gather(*(shared.snapshot(user) for user in ("alice", "bob", "carol") * 20))
    spent = {name: runner.calls[name] - before.get(name, 0) for name in runner.calls}
    assert spent["sinfo"] == 1
    assert spent["scontrol"] == 2, "one for partitions, one for reservations"
    assert spent["sacctmgr"] == 1, "one for every user's associations"


@pytest.fixture
def reservation():
    """A reservation for alice and carol that starts tomorrow: it holds nothing today."""
    name = f"dkrz-test-{uuid.uuid4().hex[:6]}"
    slurm("scontrol", "create", "reservation", f"ReservationName={name}", "StartTime=now+1day", "Duration=60",
          "Users=alice,carol", "Nodes=node1", "CoreCnt=1")
    yield name
    slurm("scontrol", "delete", f"ReservationName={name}", check=False)


async def test_reservations_and_who_may_use_them(runner, reservation):
    found = {r.name: r for r in await Cluster(runner).reservations()}
    ours = found[reservation]
    assert ours.state == "INACTIVE" and ours.users == ("alice", "carol")
    start = datetime.datetime.strptime(ours.start, "%Y-%m-%dT%H:%M:%S")
    assert start > datetime.datetime.now()
    assert ours.allows("alice", "bb1234") and not ours.allows("bob", "ab0000")
