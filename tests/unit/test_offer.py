"""offer.py: what one user is offered (cluster facts x site settings x group policy), built once per request;
its validation unwraps the body once and applies the group policy once."""

from __future__ import annotations

import dataclasses

import pytest

from dkrzspawner import offer as offer_module
from dkrzspawner import options as options_module
from dkrzspawner.cluster import Access, Partition, Snapshot
from dkrzspawner.offer import Facts, Offer, PartitionLimits, make_facts, partition_limits, settings_for
from dkrzspawner.options import DKRZ_PRESETS, OptionsError, PartitionSettings, load_partition_settings, load_presets
from dkrzspawner.policy import Allowance, allowance_for, load_policy
from tests.unit.builders import STUDENT_REFUSALS

PRESETS = load_presets({**DKRZ_PRESETS, "big": {"display_name": "Big", "partition": "shared", "cores": [8]}})
POLICY = load_policy({"groups": {"students": {"presets": ["shared"], "partitions": [], "accounts": ["bb1234"]},
                                 "gpu-users": {"partitions": ["gpu"]}}}, PRESETS)
STUDENT = allowance_for(POLICY, {"students"})
GPU_USER = allowance_for(POLICY, {"gpu-users"})
LIMITS = dict(max_nodes=2, max_cores=8, max_memory_mb=16000, max_runtime=12 * 3600, memory_per_core_mb=2000)


def facts(access=Access("carol", "bb1234", (("bb1234", ""), ("ab0000", "")))) -> Facts:
    partitions = {"shared": PartitionLimits(name="shared", display_name="shared", default=True, **LIMITS),
                  "prepost": PartitionLimits(name="prepost", display_name="prepost", **LIMITS),
                  "gpu": PartitionLimits(name="gpu", display_name="gpu", max_gpus=2, **LIMITS)}
    return Facts(user="carol", partitions=partitions, access=access, reservations=())


# -- what the form and the kernels read -------------------------------------------------------------------
def test_the_presets_and_facts_the_user_may_use():
    offer = Offer(PRESETS, allowance=STUDENT).with_facts(facts())
    assert list(offer.presets) == ["shared"] and list(offer.site_presets) == ["shared", "prepost", "big"]
    assert offer.facts.visible() == [], "students: presets only"
    assert offer.facts.partitions["shared"].hidden, "hidden from advanced requests; presets may still use it"
    assert offer.facts.access.accounts == ("bb1234",), "other accounts left out"
    everyone = Offer(PRESETS).with_facts(facts())
    assert list(everyone.presets) == list(PRESETS) and [p.name for p in everyone.facts.visible()] == \
        ["shared", "prepost", "gpu"]
    assert Offer(PRESETS).facts is None, "without the cluster"


def test_with_cluster_applies_the_sites_partition_settings_then_the_group_policy():
    slurm = {"shared": Partition("shared", default=True, total_nodes=1, total_cpus=8, cpus_per_node=8,
                                 memory_per_node=16000),
             "gpu": Partition("gpu", total_nodes=1, total_cpus=8, cpus_per_node=8, memory_per_node=16000,
                              gpus_per_node=2, total_gpus=2, free_gpus=2)}
    snapshot = Snapshot("carol", slurm, Access("carol", "bb1234", (("bb1234", ""),)), ())
    settings = load_partition_settings({"*": {"max_gpus": 0}, "gpu": {"max_gpus": 1, "description": "GPUs."}})
    offer = Offer(PRESETS, settings, allowance=GPU_USER).with_cluster(snapshot, modules=("tools/1.0",))
    assert offer.facts.partitions["gpu"].max_gpus == 1 and offer.facts.partitions["shared"].max_gpus == 0
    assert offer.facts.partitions["gpu"].description == "GPUs."
    assert [p.name for p in offer.facts.visible()] == ["gpu"] and offer.facts.modules == ("tools/1.0",)
    assert offer.facts_from(snapshot).partitions["shared"].hidden is False, "before the group policy"


def test_settings_for_puts_the_partitions_own_entry_on_top():
    settings = load_partition_settings({"*": {"max_gpus": 0, "hint": "all"}, "gpu": {"max_gpus": 2}})
    assert (settings_for(settings, "gpu").max_gpus, settings_for(settings, "gpu").hint) == (2, "all")
    assert settings_for(settings, "shared").max_gpus == 0
    assert settings_for({}, "shared") == PartitionSettings()


def test_partition_rules():
    limits = partition_limits(Partition("p", state="DRAIN", allow_accounts=("a", "b"), deny_accounts=("b",)),
                              settings_for({}, "p"))
    assert not limits.up and limits.allows_account("a") and not limits.allows_account("b")
    assert not limits.allows_account("c")
    assert PartitionLimits(name="q", display_name="q").allows_account("anyone")


def test_make_facts_keeps_what_slurm_did_not_answer():
    made = make_facts(Snapshot("carol", None, None, None, errors=("sinfo timed out",)), {}, advanced=False)
    assert (made.partitions, made.access, made.reservations, made.advanced, made.errors) == \
        (None, None, None, False, ("sinfo timed out",))


# -- the one validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("user_options, field, message", STUDENT_REFUSALS)
def test_the_group_policy_refuses_by_name(user_options, field, message):
    for offer in (Offer(PRESETS, allowance=STUDENT), Offer(PRESETS, allowance=STUDENT).with_facts(facts())):
        with pytest.raises(OptionsError) as refused:
            offer.validate(user_options)
        assert (refused.value.field, str(refused.value)) == (field, message)


def test_validation_against_what_the_user_may_use():
    offer = Offer(PRESETS, allowance=GPU_USER).with_facts(facts())
    request = offer.validate({"user_options": {"partition": "gpu", "gpus": 1, "memory": "8G"}})
    assert (request.partition, request.gpus, request.memory_mb, request.memory, request.account) == \
        ("gpu", 1, 8192, "8G", "bb1234")
    with pytest.raises(OptionsError, match=r"^Partition shared is not open to you; yours are gpu\.$"):
        offer.validate({"partition": "shared"})
    assert Offer(PRESETS).validate({}).preset == "shared", "no facts: presets only"


def test_a_body_is_unwrapped_once_and_the_policy_applied_once(monkeypatch):
    calls = []

    class Counting(Allowance):
        def check(self, options, presets):
            calls.append("check")
            return super().check(options, presets)

        def allowed_facts(self, facts):
            calls.append("allowed_facts")
            return super().allowed_facts(facts)

    for module in (offer_module, options_module):
        real = module.unwrap
        monkeypatch.setattr(module, "unwrap", lambda body, real=real: calls.append("unwrap") or real(body))
    offer = Offer(PRESETS, allowance=Counting()).with_facts(facts())
    assert calls == ["allowed_facts"], "narrowed once, when the offer is built"
    offer.validate({"user_options": {"preset": "shared"}})
    assert calls == ["allowed_facts", "unwrap", "check"]
    with pytest.raises(OptionsError) as refused:
        offer.validate({"user_options": {"user_options": {"preset": "shared"}}})
    assert refused.value.field == "preset", "unwrapped once: the inner body is not a request"


def test_accounts_fail_closed_where_the_policy_limits_them_and_slurm_did_not_say():
    unknown = facts(access=None)
    assert Offer(PRESETS, allowance=STUDENT).with_facts(unknown).validate({"preset": "shared"}).account == "bb1234"
    two = Allowance(accounts=frozenset({"bb1234", "ab0000"}))
    with pytest.raises(OptionsError) as refused:
        Offer(PRESETS, allowance=two).with_facts(unknown).validate({"preset": "shared"})
    assert refused.value.field == "account" and "ab0000, bb1234" in str(refused.value)
    assert Offer(PRESETS, allowance=two).validate({"preset": "shared"}).account is None, "shape only: Slurm decides"


# -- before Slurm is asked (kernelspecs) -------------------------------------------------------------------------
@pytest.mark.parametrize("user_options, field, message", [
    ({"partition": "gpu", "nodes": 0}, "nodes", "Nodes must be at least 1."),
    ({"partition": "gpu", "cores": 0}, "cores", "Cores must be at least 1."),
    ({"partition": "gpu", "gpus": -1}, "gpus", "GPUs must be 0 or more."),
    ({"partition": "gpu", "memory": "8 GB"}, "memory", "Memory must be a size in Slurm's units, such as 500M or 8G."),
    ({"partition": "gpu", "memory": "0M"}, "memory", "Memory must be at least 1M."),
    ({"partition": "gpu", "runtime": "2h"}, "runtime", "Runtime must look like HH:MM:SS or D-HH:MM:SS."),
    ({"partition": "g pu"}, "partition", "Partition must be a Slurm partition name (letters, digits, '_', '.', '-')."),
    ({"partition": "gpu", "account": "a b"}, "account",
     "Account must be a Slurm account name (letters, digits, '_', '.', '-')."),
    ({"partition": "gpu", "reservation": "a;b"}, "reservation", "Reservation must be a Slurm reservation name."),
    ({"preset": "shared", "cores": 3}, "cores", "Cores must be one of 1, 2, 4 for preset shared."),
])
def test_check_shape_refuses_what_needs_no_slurm(user_options, field, message):
    with pytest.raises(OptionsError) as refused:
        Offer(PRESETS).check_shape(user_options)
    assert (refused.value.field, str(refused.value)) == (field, message)


def test_check_shape_leaves_the_partitions_limits_to_slurms_facts():
    Offer(PRESETS).check_shape({"partition": "anything", "nodes": 999, "gpus": 9, "reservation": ""})
    with pytest.raises(OptionsError, match=r"^Advanced requests \(partition\) are not available on this hub\.$"):
        Offer(PRESETS, advanced=False).check_shape({"partition": "gpu"})
    with pytest.raises(OptionsError, match="not open to you"):
        Offer(PRESETS, allowance=STUDENT).check_shape({"partition": "gpu"})


def test_an_offer_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Offer(PRESETS).advanced = False
