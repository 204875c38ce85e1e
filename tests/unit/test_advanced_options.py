"""options.py with cluster facts: advanced requests, presets against partitions, accounts, reservations, the
site's partition policy, and the form/URL conversions that feed the same validate()."""

from __future__ import annotations

import pytest

from dkrzspawner import cluster
from dkrzspawner.cluster import Access, Reservation, Snapshot
from dkrzspawner.form import options_from_form, options_from_query, preselect
from dkrzspawner.offer import Facts, make_facts
from dkrzspawner.options import (DKRZ_PRESETS, JobRequest, OptionsError, load_partition_settings, load_presets,
                                 validate)
from tests.unit.test_cluster import SCONTROL_PARTITIONS, SCONTROL_RESTRICTED, SINFO_MIXED

DEMO_POLICY = {"*": {"max_gpus": 0}, "gpu": {"max_gpus": 2, "description": "With GPUs."}}
RESERVATIONS = (
    Reservation("course", state="ACTIVE", end="2099-01-01T00:00:00", users=("alice", "carol")),
    Reservation("project", state="ACTIVE", end="2099-01-01T00:00:00", accounts=("ab0000",)),
)


def slurm_partitions(text=SCONTROL_PARTITIONS, sinfo=SINFO_MIXED):
    return cluster.merge(cluster.parse_partitions(text), cluster.parse_sinfo(sinfo))


def facts_for(user="carol", policy=DEMO_POLICY, accounts=None, default=None, advanced=True, partitions="recorded",
              reservations=RESERVATIONS) -> Facts:
    if accounts is None:
        accounts = {"alice": ("bb1234",), "bob": ("ab0000",), "carol": ("bb1234", "ab0000")}.get(user, ())
    access = None if accounts == "unknown" else Access(user, default or (accounts[0] if accounts else None),
                                                        tuple((a, "") for a in accounts))
    snapshot = Snapshot(user=user, partitions=slurm_partitions() if partitions == "recorded" else partitions,
                        access=access, reservations=reservations)
    return make_facts(snapshot, load_partition_settings(policy), advanced=advanced)


@pytest.fixture(scope="module")
def presets():
    return load_presets(DKRZ_PRESETS)


def refused(user_options, presets, facts) -> OptionsError:
    with pytest.raises(OptionsError) as info:
        validate(user_options, presets, facts=facts)
    message = str(info.value)
    assert message[0].isupper() and message.endswith(".") and "\n" not in message, message
    return info.value


# -- the contract's advanced example --------------------------------------------------------------------
def test_the_design_example(presets):
    body = {"partition": "gpu", "account": "bb1234", "nodes": 1, "cores": 4, "memory": "8G", "gpus": 1,
            "runtime": "02:00:00", "reservation": ""}
    request = validate(body, presets, facts=facts_for("carol"))
    assert request == JobRequest(partition="gpu", cores=4, memory_mb=8192, runtime_seconds=7200, account="bb1234",
                                 nodes=1, gpus=1, reservation=None, preset=None)
    assert (request.memory, request.runtime) == ("8G", "02:00:00"), "Slurm's text for the batch script"
    assert request.core_hours == 8
    assert validate({"user_options": body}, presets, facts=facts_for("carol")) == request, "JupyterHub 6 body"


def test_defaults_come_from_the_partition(presets):
    request = validate({"partition": "prepost"}, presets, facts=facts_for("alice"))
    # 16000 MB / 8 cores per node = 2000M per core; Slurm's DefaultTime 01:00:00; the user's default account
    assert request == JobRequest(partition="prepost", cores=1, memory_mb=2000, runtime_seconds=3600,
                                 account="bb1234", nodes=1, gpus=0, reservation=None)
    assert (request.memory, request.runtime) == ("2000M", "01:00:00")
    assert validate({"partition": "gpu", "cores": 3}, presets, facts=facts_for("alice")).memory == "6000M"


def test_site_defaults_win_over_slurms(presets):
    policy = {"shared": {"default_runtime": "04:00:00", "default_cores": 2, "memory_per_core": "1G"}}
    request = validate({"partition": "shared"}, presets, facts=facts_for("alice", policy=policy))
    assert (request.cores, request.memory_mb, request.runtime) == (2, 2048, "04:00:00")
    assert request.memory == "2G", "Slurm's text for whole gigabytes, as Slurm prints it"


def test_explicit_nulls_mean_defaults(presets):
    body = {"partition": "gpu", "account": None, "nodes": None, "cores": None, "memory": None, "gpus": None,
            "runtime": None, "reservation": None}
    assert validate(body, presets, facts=facts_for("bob")) == validate({"partition": "gpu"}, presets,
                                                                        facts=facts_for("bob"))


def test_the_limits_themselves_are_allowed(presets):
    body = {"partition": "gpu", "cores": 8, "memory": "16000M", "gpus": 2, "runtime": "12:00:00", "nodes": 1}
    assert validate(body, presets, facts=facts_for("carol")).gpus == 2
    assert validate({"partition": "shared", "runtime": "7-00:00:00"}, presets, facts=facts_for()).runtime == \
        "7-00:00:00"
    assert validate({"partition": "shared", "memory": "15G"}, presets, facts=facts_for()).memory == "15G"


ADVANCED_REFUSALS = [
    # (user_options, field, words in the message)
    ({"partition": "gpu", "colour": "red"}, "colour", ["Unknown option", "'colour'", "partition, account"]),
    ({"partition": "gpu", "preset_runtime": "01:00:00"}, "preset_runtime", ["Unknown option"]),
    ({"partition": "gpu", "preset": "shared"}, "partition", ["either a preset or a partition"]),
    ({"partition": 3}, "partition", ["Partition", "text"]),
    ({"partition": "nosuch"}, "partition", ["'nosuch'", "not offered", "shared, prepost, gpu"]),
    ({"partition": "gpu\n#SBATCH --x"}, "partition", ["Partition", "name"]),
    ({"partition": "gpu "}, "partition", ["Partition"]),
    ({"partition": ""}, "partition", ["Partition"]),
    ({"partition": "gpu", "nodes": 0}, "nodes", ["Nodes", "between 1 and 1", "gpu"]),
    ({"partition": "gpu", "nodes": 2}, "nodes", ["Nodes", "between 1 and 1"]),
    ({"partition": "gpu", "nodes": "1"}, "nodes", ["Nodes", "whole number"]),
    ({"partition": "gpu", "nodes": 1.0}, "nodes", ["Nodes", "whole number"]),
    ({"partition": "gpu", "nodes": True}, "nodes", ["Nodes", "whole number"]),
    ({"partition": "gpu", "cores": 0}, "cores", ["Cores", "between 1 and 8"]),
    ({"partition": "gpu", "cores": 9}, "cores", ["Cores", "between 1 and 8 per node", "gpu"]),
    ({"partition": "gpu", "cores": "4"}, "cores", ["Cores", "whole number"]),
    ({"partition": "gpu", "memory": "64G"}, "memory", ["Memory", "at most 16000M", "16 GB", "gpu"]),
    ({"partition": "gpu", "memory": "16001M"}, "memory", ["Memory", "at most"]),
    ({"partition": "gpu", "memory": "8 G"}, "memory", ["Memory", "500M or 8G"]),
    ({"partition": "gpu", "memory": "8GB"}, "memory", ["Memory", "Slurm's units"]),
    ({"partition": "gpu", "memory": "8g"}, "memory", ["Memory"]),
    ({"partition": "gpu", "memory": "8G\n"}, "memory", ["Memory"]),
    ({"partition": "gpu", "memory": "0M"}, "memory", ["Memory", "at least 1M"]),
    ({"partition": "gpu", "memory": "512K"}, "memory", ["Memory", "at least"]),
    ({"partition": "gpu", "memory": 8192}, "memory", ["Memory", "text"]),
    ({"partition": "gpu", "gpus": 3}, "gpus", ["GPUs", "between 0 and 2", "gpu"]),
    ({"partition": "gpu", "gpus": -1}, "gpus", ["GPUs", "between 0 and 2"]),
    ({"partition": "shared", "gpus": 1}, "gpus", ["GPUs", "partition shared has none", "choose gpu"]),
    ({"partition": "gpu", "gpus": "1"}, "gpus", ["GPUs", "whole number"]),
    ({"partition": "gpu", "runtime": "12:00:01"}, "runtime", ["Runtime", "between 00:01:00 and 12:00:00", "gpu"]),
    ({"partition": "shared", "runtime": "7-00:00:01"}, "runtime", ["Runtime", "7-00:00:00", "shared"]),
    ({"partition": "gpu", "runtime": "00:00:30"}, "runtime", ["Runtime", "00:01:00"]),
    ({"partition": "gpu", "runtime": "2h"}, "runtime", ["Runtime", "HH:MM:SS"]),
    ({"partition": "gpu", "runtime": "\u0661:00:00"}, "runtime", ["Runtime", "HH:MM:SS"]),
    ({"partition": "gpu", "runtime": 7200}, "runtime", ["Runtime", "text"]),
    ({"partition": "gpu", "account": "xx0000"}, "account", ["Account xx0000", "not one of yours", "bb1234, ab0000"]),
    ({"partition": "gpu", "account": "bb1234\n"}, "account", ["Account", "Slurm account name"]),
    ({"partition": "gpu", "account": ""}, "account", ["Account"]),
    ({"partition": "gpu", "reservation": "nosuch"}, "reservation", ["Reservation nosuch", "does not exist"]),
    ({"partition": "gpu", "reservation": "a b"}, "reservation", ["Reservation", "name"]),
    ({"partition": "gpu", "reservation": 1}, "reservation", ["Reservation", "text"]),
    ({"partition": "gpu", "account": "bb1234", "reservation": "project"}, "reservation",
     ["Reservation project", "not open to you", "bb1234"]),
]


@pytest.mark.parametrize("user_options, field, words", ADVANCED_REFUSALS,
                         ids=[repr(r[0])[:70] for r in ADVANCED_REFUSALS])
def test_advanced_refusals_name_the_field_in_one_sentence(presets, user_options, field, words):
    error = refused(user_options, presets, facts_for("carol"))
    assert error.field == field
    for word in words:
        assert word in str(error)


def test_reservations_open_to_the_user(presets):
    assert validate({"partition": "gpu", "reservation": "course"}, presets, facts=facts_for("alice")).reservation \
        == "course"
    assert refused({"partition": "gpu", "reservation": "course"}, presets, facts_for("bob")).field == "reservation"
    request = validate({"partition": "gpu", "reservation": "project", "account": "ab0000"}, presets,
                       facts=facts_for("carol"))
    assert (request.reservation, request.account) == ("project", "ab0000")
    # without Slurm's reservation list, Slurm decides (the pre-flight)
    assert validate({"partition": "gpu", "reservation": "other"}, presets,
                    facts=facts_for("alice", reservations=None)).reservation == "other"


# -- accounts -------------------------------------------------------------------------------------------
def test_accounts_follow_the_associations(presets):
    assert validate({"partition": "gpu"}, presets, facts=facts_for("bob")).account == "ab0000"
    assert validate({"preset": "shared"}, presets, facts=facts_for("carol")).account == "bb1234"
    assert validate({"preset": "shared"}, presets, facts=facts_for("carol", default="ab0000")).account == "ab0000"
    assert validate({"preset": "shared", "account": "ab0000"}, presets, facts=facts_for("carol")).account == "ab0000"
    error = refused({"preset": "shared", "account": "ab0000"}, presets, facts_for("alice"))
    assert (error.field, str(error)) == ("account", "Account ab0000 is not one of yours (bb1234).")


def test_a_user_without_associations_is_told(presets):
    error = refused({"preset": "shared"}, presets, facts_for("dave", accounts=()))
    assert error.field == "account" and "no Slurm account" in str(error)


def test_unknown_associations_leave_the_account_to_slurm(presets):
    facts = facts_for("alice", accounts="unknown")
    assert validate({"preset": "shared"}, presets, facts=facts).account is None
    assert validate({"preset": "shared", "account": "zz9999"}, presets, facts=facts).account == "zz9999"


def test_partition_specific_associations(presets):
    access = Access("erin", "ab0000", (("ab0000", ""), ("bb1234", "gpu")))
    facts = Facts(user="erin", partitions=facts_for().partitions, access=access)
    assert validate({"partition": "gpu", "account": "bb1234"}, presets, facts=facts).account == "bb1234"
    error = refused({"partition": "shared", "account": "bb1234"}, presets, facts)
    assert error.field == "account"
    assert str(error) == "Account bb1234 may not be used in partition shared; yours there: ab0000."


def test_partition_account_lists(presets):
    restricted = cluster.merge(cluster.parse_partitions(SCONTROL_RESTRICTED.replace("State=DOWN", "State=UP")
                                                        .replace("Hidden=YES", "Hidden=NO")), {})
    facts = make_facts(Snapshot("carol", restricted, Access("carol", "ab0000", (("ab0000", ""), ("bb1234", "")))),
                       {})
    assert validate({"partition": "compute"}, presets, facts=facts).account == "bb1234", "the one the partition allows"
    error = refused({"partition": "compute", "account": "ab0000"}, presets, facts)
    assert "may not be used in partition compute" in str(error)
    only_denied = make_facts(Snapshot("bob", restricted, Access("bob", "ab0000", (("ab0000", ""),))), {})
    error = refused({"partition": "compute"}, presets, only_denied)
    assert error.field == "account" and "none of your accounts (ab0000)" in str(error)


# -- partitions: hidden, down, unknown, Slurm silent ------------------------------------------------------
def test_hidden_partitions_are_not_offered_but_presets_may_use_them(presets):
    facts = facts_for("alice", policy={"shared": {"hidden": True}, "prepost": {"hidden": True}})
    assert [p.name for p in facts.visible()] == ["gpu"]
    error = refused({"partition": "shared"}, presets, facts)
    assert error.field == "partition" and "choose one of gpu" in str(error)
    assert validate({"preset": "shared"}, presets, facts=facts).partition == "shared"


def test_a_down_partition_is_refused(presets):
    partitions = slurm_partitions(SCONTROL_PARTITIONS.replace("State=UP", "State=DOWN", 1))
    facts = facts_for("alice", partitions=partitions)
    error = refused({"partition": "shared"}, presets, facts)
    assert str(error) == "Partition shared is down right now; choose another."


def test_slurm_silent_refuses_advanced_but_keeps_presets(presets):
    facts = facts_for("alice", partitions=None)
    error = refused({"partition": "gpu"}, presets, facts)
    assert error.field == "partition" and "Slurm did not answer" in str(error)
    assert validate({"preset": "prepost", "cores": 2}, presets, facts=facts).cores == 2


def test_advanced_can_be_switched_off(presets):
    error = refused({"partition": "gpu"}, presets, facts_for("alice", advanced=False))
    assert str(error) == "Advanced requests (partition) are not available on this hub."
    error = refused({"cores": 2}, presets, facts_for("alice", advanced=False))
    assert str(error) == "Choose a preset."
    assert str(refused({"cores": 2}, presets, facts_for("alice"))) == "Choose a preset or a partition."


# -- presets against the partition ------------------------------------------------------------------------
def test_preset_runtime_is_capped_by_the_partition(presets):
    long = load_presets({"long": {"display_name": "Long", "partition": "prepost", "max_runtime": "2-00:00:00"}})
    facts = facts_for("alice")
    assert validate({"preset": "long", "runtime": "12:00:00"}, long, facts=facts).runtime == "12:00:00"
    error = refused({"preset": "long", "runtime": "12:00:01"}, long, facts)
    assert str(error) == "Runtime must be between 00:01:00 and 12:00:00 for preset long."


def test_preset_of_a_missing_partition(presets):
    broken = load_presets({"old": {"display_name": "Old", "partition": "retired"}})
    error = refused({"preset": "old"}, broken, facts_for("alice"))
    assert error.field == "preset" and "no partition retired" in str(error)


def test_preset_bigger_than_the_partition(presets):
    big = load_presets({"big": {"display_name": "Big", "partition": "shared", "cores": [16],
                                "memory_per_core": "500M"},
                        "fat": {"display_name": "Fat", "partition": "shared", "cores": [8],
                                "memory_per_core": "4G"}})
    facts = facts_for("alice")
    assert "at most 8 per node" in str(refused({"preset": "big"}, big, facts))
    error = refused({"preset": "fat"}, big, facts)
    assert error.field == "cores" and "32768M" in str(error)


def test_presets_still_refuse_advanced_keys(presets):
    error = refused({"preset": "shared", "memory": "8G"}, presets, facts_for("alice"))
    assert error.field == "memory" and "Unknown option" in str(error)


# -- the site's policy ----------------------------------------------------------------------------------
def test_policy_tightens_limits_and_describes():
    facts = facts_for("alice", policy={"*": {"max_runtime": "06:00:00", "max_gpus": 0},
                                       "gpu": {"max_gpus": 1, "max_cores": 4, "max_memory": "8G",
                                               "display_name": "GPU nodes", "hint": "Ask for 1 GPU."},
                                       "shared": {"max_runtime": "30-00:00:00"}})
    gpu, shared = facts.partitions["gpu"], facts.partitions["shared"]
    assert (gpu.max_gpus, gpu.max_cores, gpu.max_memory_mb, gpu.max_runtime) == (1, 4, 8192, 6 * 3600)
    assert (gpu.display_name, gpu.hint) == ("GPU nodes", "Ask for 1 GPU.")
    assert shared.max_runtime == 7 * 86400, "a policy cannot give more than Slurm"
    assert shared.max_gpus == 0 and shared.total_gpus == 0
    assert gpu.free_gpus == 1 and gpu.idle_cores == 5


def test_partition_defaults_from_slurm_memory_settings():
    restricted = cluster.merge(cluster.parse_partitions(SCONTROL_RESTRICTED), {})
    limits = make_facts(Snapshot("alice", restricted), {}).partitions["compute"]
    assert limits.memory_per_core_mb == 1920 and limits.max_memory_per_core_mb == 3840
    assert limits.max_runtime is None and limits.default_runtime == 3600
    assert limits.max_nodes == 4 and limits.max_cores == 64


def test_max_memory_per_core(presets):
    restricted = cluster.merge(cluster.parse_partitions(SCONTROL_RESTRICTED.replace("State=DOWN", "State=UP")
                                                        .replace("Hidden=YES", "Hidden=NO")),
                               {"compute": cluster.NodeUsage(cpus=64, memory=256000, usable_nodes=4)})
    facts = make_facts(Snapshot("alice", restricted, Access("alice", "bb1234", (("bb1234", ""),))), {})
    assert validate({"partition": "compute", "cores": 2, "memory": "7680M"}, presets, facts=facts).memory == "7680M"
    error = refused({"partition": "compute", "cores": 2, "memory": "7681M"}, presets, facts)
    assert error.field == "memory" and "3840M per core" in str(error)
    assert validate({"partition": "compute", "cores": 2}, presets, facts=facts).memory == "3840M"


@pytest.mark.parametrize("config, words", [
    ({"gpu": {"max_cores": 0}}, ["'gpu'", "max_cores"]),
    ({"gpu": {"max_memory": "lots"}}, ["'gpu'", "max_memory"]),
    ({"gpu": {"max_runtime": "6h"}}, ["'gpu'", "max_runtime"]),
    ({"gpu": {"colour": "red"}}, ["'gpu'", "colour"]),
    ({"gpu": {"hidden": "perhaps"}}, ["'gpu'", "hidden"]),
    ({"g pu": {}}, ["'g pu'", "partition name"]),
])
def test_bad_partition_policy_names_the_partition(config, words):
    with pytest.raises(ValueError) as info:
        load_partition_settings(config)
    for word in words:
        assert word in str(info.value)


# -- the form and URL conversions -----------------------------------------------------------------------
def form(**fields):
    return {key: [value] for key, value in fields.items()}


def test_form_preset_mode():
    data = form(mode="preset", preset="prepost:2", preset_runtime="", account="bb1234", partition="gpu", nodes="",
                cores="", memory="", gpus="", runtime="", reservation="", _xsrf="token")
    assert options_from_form(data) == {"preset": "prepost", "cores": 2, "account": "bb1234"}
    data.update(form(preset_runtime="02:00:00", account=""))
    assert options_from_form(data) == {"preset": "prepost", "cores": 2, "runtime": "02:00:00"}
    assert options_from_form(form(preset="shared")) == {"preset": "shared"}


def test_form_advanced_mode_converts_numbers_and_drops_empty_fields():
    data = form(mode="advanced", preset="shared:1", preset_runtime="05:00:00", account="ab0000", partition="gpu",
                nodes="1", cores=" 4 ", memory="8G", gpus="1", runtime="", reservation="")
    assert options_from_form(data) == {"partition": "gpu", "nodes": 1, "cores": 4, "memory": "8G", "gpus": 1,
                                       "account": "ab0000"}
    assert options_from_form(form(mode="advanced", partition="gpu", cores="four"))["cores"] == "four"


def test_form_results_go_through_the_same_validation(presets):
    facts = facts_for("carol")
    good = options_from_form(form(mode="advanced", partition="gpu", cores="4", memory="8G", gpus="1",
                                  runtime="02:00:00", account="bb1234", nodes="1", reservation=""))
    assert validate(good, presets, facts=facts).gpus == 1
    assert refused(options_from_form(form(mode="advanced", partition="gpu", cores="four")), presets,
                   facts).field == "cores"
    assert refused(options_from_form(form(mode="preset", preset="shared:3")), presets, facts).field == "cores"
    assert refused(options_from_form(form(mode="preset", preset="shared", colour="red")), presets,
                   facts).field == "colour"


@pytest.mark.parametrize("data, field", [
    ({"mode": ["advanced", "preset"], "partition": ["gpu"]}, "mode"),
    ({"mode": ["advanced"], "partition": ["gpu", "shared"]}, "partition"),
    ({"mode": ["expert"]}, "mode"),
    ({"mode": ["preset"], "preset": []}, "preset"),
])
def test_form_refusals(data, field):
    with pytest.raises(OptionsError) as info:
        options_from_form(data)
    assert info.value.field == field
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


def test_spawn_url_options():
    assert options_from_query({"preset": ["shared"], "cores": ["2"]}) == {"preset": "shared", "cores": 2}
    assert options_from_query({"partition": ["gpu"], "gpus": ["1"], "memory": ["8G"], "reservation": [""]}) == \
        {"partition": "gpu", "gpus": 1, "memory": "8G"}
    assert options_from_query({"mode": ["preset"], "preset": ["prepost:4"]}) == {"preset": "prepost", "cores": 4}
    assert options_from_query({"preset": ["shared"], "exec_prefix": ["id"]})["exec_prefix"] == "id"
    with pytest.raises(OptionsError):
        options_from_query({"preset": ["shared", "prepost"]})


# -- what the form preselects ---------------------------------------------------------------------------
def test_preselect_defaults(presets):
    selected = preselect(None, presets, facts_for("carol"))
    assert selected["mode"] == "preset" and selected["preset"] == "shared" and not selected["remembered"]
    assert selected["cores"] == {"shared": 1, "prepost": 1}
    assert selected["account"] == "bb1234" and selected["partition"] == "shared"
    assert selected["nodes"] == selected["memory"] == selected["gpus"] == ""


def test_preselect_remembers_a_valid_request(presets):
    last = {"partition": "gpu", "cores": 3, "gpus": 1, "runtime": "01:30:00", "account": "ab0000"}
    selected = preselect(last, presets, facts_for("carol"))
    assert selected["mode"] == "advanced" and selected["remembered"]
    assert (selected["partition"], selected["cores_advanced"], selected["gpus"], selected["runtime"]) == \
        ("gpu", "3", "1", "01:30:00")
    assert selected["memory"] == "" and selected["account"] == "ab0000"
    preset = preselect({"preset": "prepost", "cores": 4, "runtime": "02:00:00"}, presets, facts_for("alice"))
    assert (preset["mode"], preset["preset"], preset["cores"]["prepost"], preset["preset_runtime"]) == \
        ("preset", "prepost", 4, "02:00:00")


def test_preselect_drops_each_refused_field(presets):
    last = {"partition": "gpu", "cores": 3, "memory": "64G", "gpus": 9, "account": "xx0000"}
    selected = preselect(last, presets, facts_for("carol"))
    assert selected["mode"] == "advanced" and selected["partition"] == "gpu"
    assert (selected["cores_advanced"], selected["memory"], selected["gpus"]) == ("3", "", "")
    assert selected["account"] == "bb1234"
    gone = preselect({"partition": "retired", "cores": 2}, presets, facts_for("carol"))
    assert gone["mode"] == "preset" and gone["cores"]["shared"] == 1
    junk = preselect({"user_options": "x", "y": 1}, presets, facts_for("carol"))
    assert junk["mode"] == "preset"
    assert preselect("not a dict", presets, None)["mode"] == "preset"
    with_unknown = preselect({"preset": "prepost", "cores": 2, "colour": "red"}, presets, facts_for("alice"))
    assert with_unknown["preset"] == "prepost" and with_unknown["cores"]["prepost"] == 2
