"""cluster.py: parsers of recorded Slurm 22.05 output, and the Cluster's query budget (its cache: test_cache.py)."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from dkrzspawner import cluster
from dkrzspawner.cluster import (Access, Cluster, Partition, Reservation, gpu_count, parse_all_associations,
                                 parse_associations, parse_partitions, parse_reservations, parse_sinfo)
from dkrzspawner.slurm import Result, SlurmRejected, SlurmTimeout, SlurmUnreachable
from tests.unit.fakeslurm import HUB_CLUSTER, FakeRunner
from tests.unit.recorded import (RESERVATIONS, SACCTMGR_ALICE, SACCTMGR_ALL, SACCTMGR_CAROL, SCONTROL_PARTITIONS,
                                 SCONTROL_RESTRICTED, SINFO_IDLE, SINFO_MIXED, TEST_ONLY)

# -- parsers ---------------------------------------------------------------------------------------------
def test_partitions_from_scontrol():
    parts = parse_partitions(SCONTROL_PARTITIONS)
    assert list(parts) == ["shared", "prepost", "gpu"]
    shared = parts["shared"]
    assert shared.default and shared.up and not shared.hidden
    assert (shared.max_time, shared.default_time) == (7 * 86400, 3600)
    assert shared.max_nodes is None and shared.total_nodes == 1 and shared.total_cpus == 8
    assert shared.max_cpus_per_node is None and shared.max_mem_per_node is None
    assert shared.allow_accounts is None and shared.allows_account("anything")
    assert parts["prepost"].max_time == 12 * 3600 and not parts["prepost"].default


def test_restricted_partition():
    (compute,) = parse_partitions(SCONTROL_RESTRICTED).values()
    assert compute.hidden and compute.state == "DOWN" and not compute.up
    assert (compute.max_nodes, compute.max_time, compute.default_time) == (4, None, None)
    assert (compute.max_cpus_per_node, compute.def_mem_per_cpu, compute.max_mem_per_cpu) == (64, 1920, 3840)
    assert compute.allow_accounts == ("bb1234", "cc0000") and compute.deny_accounts == ("xx0000",)
    assert compute.allows_account("bb1234") and not compute.allows_account("ab0000")
    assert not Partition("p", deny_accounts=("xx0000",)).allows_account("xx0000")


def test_free_resources_from_one_sinfo():
    idle = parse_sinfo(SINFO_IDLE)
    assert set(idle) == {"shared", "prepost", "gpu"}
    assert (idle["gpu"].cpus, idle["gpu"].memory, idle["gpu"].gpus) == (8, 16000, 2)
    assert (idle["gpu"].idle_cpus, idle["gpu"].free_gpus, idle["gpu"].free_memory) == (8, 2, 16000)
    busy = parse_sinfo(SINFO_MIXED)
    assert (busy["shared"].idle_cpus, busy["shared"].free_gpus, busy["shared"].free_memory) == (5, 1, 13000)


def test_sinfo_sums_nodes_and_skips_unusable_ones():
    text = ("compute|n1|alloc|64/0/0/64|256000|256000|gpu:a100:4(S:0-1)|gpu:a100:4(IDX:0-3)|\n"
            "compute|n2|mix|16/48/0/64|256000|64000|gpu:a100:4(S:0-1)|gpu:a100:1(IDX:0)|\n"
            "compute|n3|drain|0/0/64/64|256000|0|gpu:a100:4(S:0-1)|gpu:a100:0(IDX:N/A)|\n"
            "compute*|n4|down*|0/0/64/64|512000|0|(null)|(null)|\n")
    usage = parse_sinfo(text)["compute"]
    assert (usage.cpus, usage.memory, usage.gpus) == (64, 512000, 4)
    assert (usage.idle_cpus, usage.free_gpus, usage.total_gpus) == (48, 3, 12)
    assert (usage.free_memory, usage.usable_nodes) == (192000, 2)


def test_merge_fills_in_the_nodes():
    merged = cluster.merge(parse_partitions(SCONTROL_PARTITIONS), parse_sinfo(SINFO_MIXED))
    gpu = merged["gpu"]
    assert (gpu.cpus_per_node, gpu.memory_per_node, gpu.gpus_per_node) == (8, 16000, 2)
    assert (gpu.idle_cpus, gpu.free_gpus, gpu.total_gpus, gpu.usable_nodes) == (5, 1, 2, 1)
    lonely = cluster.merge({"x": Partition("x")}, {})["x"]
    assert lonely.cpus_per_node == 0 and lonely.usable_nodes == 0


@pytest.mark.parametrize("text", ["garbage", "shared|vm|idle|x/y|16000|0|gpu:2|gpu:0|", "shared|vm|idle|0/8/0/8"])
def test_unexpected_sinfo_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_sinfo(text)


def test_unexpected_scontrol_is_a_value_error():
    with pytest.raises(ValueError):
        parse_partitions("slurm_load_partitions: something odd\n")
    with pytest.raises(ValueError, match="shared"):
        parse_partitions("PartitionName=shared MaxTime=soon\n")


@pytest.mark.parametrize("gres, count", [
    ("gpu:2", 2), ("gpu:0", 0), ("(null)", 0), ("", 0), ("gpu:a100:4(S:0-1)", 4), ("gpu:a100:1(IDX:0)", 1),
    ("gpu:a100:2,gpu:v100:1", 3), ("gpu:a100:2(S:0),mps:100,gpu:v100:1(S:1)", 3), ("gpu", 1), ("shard:8", 0),
])
def test_gpu_count(gres, count):
    assert gpu_count(gres) == count


def test_associations_in_one_call():
    carol = parse_associations("carol", SACCTMGR_CAROL)
    assert carol == Access("carol", "bb1234", (("bb1234", ""), ("ab0000", "")))
    assert carol.accounts == ("bb1234", "ab0000")
    assert carol.accounts_for("gpu") == ("bb1234", "ab0000")
    assert parse_associations("alice", SACCTMGR_ALICE).accounts == ("bb1234",)
    nobody = parse_associations("dave", "")
    assert nobody.accounts == () and nobody.default_account is None


def test_associations_limited_to_partitions():
    text = "ab0000|bb1234|gpu\nab0000|ab0000|\nab0000|bb1234|prepost\n"
    access = parse_associations("erin", text)
    assert access.accounts == ("ab0000", "bb1234"), "the default account first"
    assert access.accounts_for("gpu") == ("ab0000", "bb1234")
    assert access.accounts_for("shared") == ("ab0000",)
    with pytest.raises(ValueError):
        parse_associations("erin", "just one field\n")


def test_reservations():
    found = parse_reservations(RESERVATIONS)
    assert [r.name for r in found] == ["dkrz_probe", "dkrz_probe2"]
    users, accounts = found
    assert users.users == ("alice", "carol") and users.accounts is None and users.state == "INACTIVE"
    assert users.partition == "shared" and users.flags == ("SPEC_NODES",)
    assert users.allows("alice", "bb1234") and not users.allows("bob", "ab0000")
    assert accounts.accounts == ("ab0000",) and accounts.users is None
    assert accounts.allows("carol", "ab0000") and not accounts.allows("carol", "bb1234")
    assert not accounts.allows("carol", None)
    assert parse_reservations("No reservations in the system\n") == ()
    with pytest.raises(ValueError):
        parse_reservations("Something=else\n")


def test_reservation_lists_that_exclude():
    (maint,) = parse_reservations("ReservationName=most Users=-bob Accounts=(null) State=ACTIVE "
                                  "EndTime=2026-11-22T06:00:00\n")
    assert maint.users_excluded and maint.allows("alice", "bb1234") and not maint.allows("bob", "ab0000")
    (both,) = parse_reservations("ReservationName=both Users=carol Accounts=-ab0000 State=ACTIVE\n")
    assert both.allows("carol", "bb1234") and not both.allows("carol", "ab0000") and not both.allows("bob", "bb1234")
    assert not Reservation("groups-only").allows("alice", "bb1234")


def test_reservation_end():
    (probe,) = parse_reservations(RESERVATIONS.splitlines()[1])
    assert probe.ended(datetime.datetime(2026, 11, 22, 5, 6, 31))
    assert not probe.ended(datetime.datetime(2026, 11, 22, 5, 6, 30))
    assert not Reservation("no-end").ended(datetime.datetime.now())


# -- the Cluster with a recorded runner ------------------------------------------------------------------
async def test_snapshot_asks_each_thing_once_per_ttl():
    runner = FakeRunner(HUB_CLUSTER, delay=0.01)
    shared = Cluster(runner, ttl=60)
    snapshots = await asyncio.gather(*(shared.snapshot(user) for user in ["carol", "alice"] * 10))
    carol = snapshots[0]
    assert carol.partitions["gpu"].free_gpus == 1
    assert carol.access.accounts == ("bb1234", "ab0000")
    assert snapshots[1].access.accounts == ("bb1234",)
    assert carol.errors == () and carol.as_of
    programs = sorted(tuple(argv[:2]) for argv in runner.argvs())
    assert programs == sorted([("scontrol", "show"), ("sinfo", "-h"), ("scontrol", "show"),
                               ("sacctmgr", "-n")]), "one sinfo for all partitions, one sacctmgr for all users"
    assert all(c.user is None for c in runner.commands), "cluster queries run as the hub"


def test_every_users_associations_in_one_table():
    table = parse_all_associations(SACCTMGR_ALL)
    assert table["carol"] == parse_associations("carol", SACCTMGR_CAROL), "each user as if asked alone"
    assert table["alice"] == parse_associations("alice", SACCTMGR_ALICE)
    assert table["bob"].accounts == ("ab0000",) and table["root"].default_account == "root"
    assert parse_all_associations("") == {}
    with pytest.raises(ValueError):
        parse_all_associations("|bb1234|bb1234|\n")


async def test_a_thousand_users_cost_one_association_query():
    crowd = "".join(f"crowd{n:04d}|bb1234|bb1234|\n" for n in range(1, 1001))
    runner = FakeRunner(HUB_CLUSTER, {cluster.ALL_ASSOCIATIONS_ARGV: SACCTMGR_ALL + crowd}, delay=0.001)
    shared = Cluster(runner, ttl=60)
    found = await asyncio.gather(*(shared.access(f"crowd{n:04d}") for n in range(1, 1001)))
    assert {access.accounts for access in found} == {("bb1234",)}
    assert runner.argvs() == [list(cluster.ALL_ASSOCIATIONS_ARGV)]


async def test_a_user_missing_from_the_table_is_asked_about_alone():
    runner = FakeRunner(HUB_CLUSTER, {cluster.associations_argv("dave"): "ab0000|ab0000|\n"})
    shared = Cluster(runner, ttl=60)
    assert (await shared.access("dave")).accounts == ("ab0000",), "added in Slurm since the table was read"
    assert (await shared.access("erin")).accounts == (), "no association at all"
    await shared.access("dave")
    assert runner.argvs() == [list(cluster.ALL_ASSOCIATIONS_ARGV), list(cluster.associations_argv("dave")),
                              list(cluster.associations_argv("erin"))]


async def test_a_kernel_asks_about_its_own_user_only():
    runner = FakeRunner(HUB_CLUSTER, {cluster.associations_argv("alice"): SACCTMGR_ALICE})
    assert (await Cluster(runner, all_users=False).access("alice")).accounts == ("bb1234",)
    assert runner.argvs() == [list(cluster.associations_argv("alice"))]


async def test_reservations_that_ended_are_dropped():
    text = ("ReservationName=past EndTime=2000-01-01T00:00:00 Users=alice State=ACTIVE\n"
            "ReservationName=future EndTime=2099-01-01T00:00:00 Users=alice State=INACTIVE\n")
    found = await Cluster(FakeRunner(HUB_CLUSTER, {cluster.RESERVATIONS_ARGV: text})).reservations()
    assert [r.name for r in found] == ["future"]


async def test_a_failed_part_leaves_the_others():
    runner = FakeRunner(HUB_CLUSTER, {cluster.ALL_ASSOCIATIONS_ARGV:
                             SlurmUnreachable(["sacctmgr"], 1, "slurmdbd: Connection refused")})
    snapshot = await Cluster(runner).snapshot("carol")
    assert snapshot.access is None and snapshot.partitions is not None and snapshot.reservations is not None
    assert snapshot.errors and "Connection refused" in snapshot.errors[0]


async def test_garbled_output_counts_as_a_failed_query():
    runner = FakeRunner(HUB_CLUSTER, {cluster.SINFO_ARGV: "this is not sinfo"})
    snapshot = await Cluster(runner).snapshot("carol")
    assert snapshot.partitions is None
    assert "sinfo" in snapshot.errors[0]
