"""policy.py and the spawner's side of it: groups, the union of rules, server counts, maintenance."""

from __future__ import annotations

import dataclasses

import re
from types import SimpleNamespace

import pytest
from tornado import web

from dkrzspawner import policy
from dkrzspawner.lifecycle import JobRecord
from dkrzspawner.registry import REGISTRY
from dkrzspawner.options import DKRZ_PRESETS, OptionsError, load_presets, unwrap
from dkrzspawner.policy import Allowance, allowance_for, check_server_counts, load_policy
from tests.unit.builders import STUDENT_REFUSALS, PageSpawner, make_spawner

PRESETS = load_presets({**DKRZ_PRESETS, "big": {"display_name": "Big", "partition": "shared", "cores": [8]}})
POLICY = {
    "groups": {
        "students": {"presets": ["shared"], "partitions": [], "accounts": ["bb1234"], "max_servers": 1},
        "gpu-users": {"partitions": ["gpu"], "max_servers": 3},
        "staff": {},
    },
    "default": {"presets": ["shared", "prepost"], "partitions": ["shared"]},
    "max_servers_per_partition": {"gpu": 2},
}


# -- the config, checked once --------------------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ({"groups": {"students": {"presets": ["nosuch"]}}}, "policy: groups.students.presets: no preset 'nosuch'"),
    ({"groups": {"students": {"preset": ["shared"]}}}, "policy: groups.students.preset: Extra inputs"),
    ({"groups": {"students": {"presets": []}}}, "policy: groups.students.presets: "),
    ({"groups": {"students": {"max_servers": 0}}}, "policy: groups.students.max_servers: "),
    ({"default": {"accounts": ["bb 1234"]}}, "policy: default.accounts: 'bb 1234' is not a Slurm name"),
    ({"default": {"partitions": "gpu"}}, "policy: default.partitions: "),
    ({"max_servers_per_partition": {"gpu": 0}}, "policy: max_servers_per_partition.gpu: "),
    ({"maintenance": "soon"}, "policy: maintenance: Extra inputs"),
])
def test_bad_config_names_the_entry(config, message):
    with pytest.raises(ValueError) as error:
        load_policy(config, PRESETS)
    assert str(error.value).startswith(message), str(error.value)


def test_empty_config_allows_everything():
    assert allowance_for(load_policy({}, PRESETS), {"anyone"}) == Allowance()


# -- groups --------------------------------------------------------------------------------------------
def test_unix_groups_are_primary_and_supplementary(monkeypatch):
    names = {100: "users", 2001: "students", 2002: "gpu-users"}

    def getgrgid(gid):
        if gid not in names:
            raise KeyError(gid)
        return SimpleNamespace(gr_name=names[gid])

    monkeypatch.setattr(policy.pwd, "getpwnam", lambda user: SimpleNamespace(pw_gid=100))
    monkeypatch.setattr(policy.os, "getgrouplist", lambda user, gid: [gid, 2001, 2002, 9999])
    monkeypatch.setattr(policy.grp, "getgrgid", getgrgid)
    assert policy.unix_groups("alice") == {"users", "students", "gpu-users"}, "a gid without a name is skipped"

    def no_such_user(user):
        raise KeyError(user)

    monkeypatch.setattr(policy.pwd, "getpwnam", no_such_user)
    assert policy.unix_groups("ghost") == set()


def test_no_listed_group_gets_the_default():
    allowed = allowance_for(load_policy(POLICY, PRESETS), {"users", "nobody"})
    assert allowed == Allowance(presets=frozenset({"shared", "prepost"}), partitions=frozenset({"shared"}))


def test_several_groups_get_the_union():
    allowed = allowance_for(load_policy(POLICY, PRESETS), {"students", "gpu-users"})
    assert allowed.presets is None, "gpu-users lists no presets: every preset"
    assert allowed.partitions == frozenset({"gpu"}), "[] and ['gpu'] joined"
    assert allowed.accounts is None
    assert allowed.max_servers == 3, "the highest limit"
    assert allowed.groups == ("gpu-users", "students")


def test_a_rule_without_a_limit_lifts_it():
    allowed = allowance_for(load_policy(POLICY, PRESETS), {"students", "staff"})
    assert allowed.max_servers is None and allowed.partitions is None and allowed.presets is None


# -- refusals, in one sentence naming the field -----------------------------------------------------------
STUDENT = allowance_for(load_policy(POLICY, PRESETS), {"students"})


@pytest.mark.parametrize("user_options, field, message", STUDENT_REFUSALS)
def test_check_refuses_what_the_groups_do_not_allow(user_options, field, message):
    with pytest.raises(OptionsError) as refused:
        STUDENT.check(unwrap(user_options), PRESETS)  # the Offer unwraps once, then checks (see test_offer.py)
    assert (refused.value.field, str(refused.value)) == (field, message)


def test_check_leaves_the_rest_to_validation():
    for allowed in ({}, {"preset": "shared", "account": "bb1234"}, {"preset": "nosuch"}, {"partition": "x\ny"},
                    {"preset": "shared", "account": "bad name"}):
        STUDENT.check(allowed, PRESETS)
    gpu = allowance_for(load_policy(POLICY, PRESETS), {"gpu-users"})
    gpu.check({"partition": "gpu"}, PRESETS)
    with pytest.raises(OptionsError, match=r"^Partition shared is not open to you; yours are gpu\.$"):
        gpu.check({"partition": "shared"}, PRESETS)


def test_allowed_presets_keep_the_sites_order():
    assert list(STUDENT.allowed_presets(PRESETS)) == ["shared"]
    assert list(Allowance().allowed_presets(PRESETS)) == ["shared", "prepost", "big"]


def test_server_counts():
    checked = load_policy(POLICY, PRESETS)
    check_server_counts(STUDENT, checked, "shared", [], 0)
    with pytest.raises(OptionsError) as refused:
        check_server_counts(STUDENT, checked, "shared", [""], 0)
    assert refused.value.field == "server"
    assert str(refused.value) == ("Servers: you already have 1 running or starting (default), the most allowed "
                                  "per user here; stop one first.")
    check_server_counts(Allowance(), checked, "gpu", ["a", "b", "c"], 1)
    with pytest.raises(OptionsError) as refused:
        check_server_counts(Allowance(), checked, "gpu", [], 2)
    assert refused.value.field == "partition"
    assert str(refused.value) == ("Partition gpu already has 2 servers running or starting, the most this hub "
                                  "allows there; choose another or try later.")


# -- the spawner: the one validation path, the form, maintenance ---------------------------------------------
def policy_spawner(monkeypatch, unix=(), hub_groups=(), **config):
    monkeypatch.setattr(policy, "unix_groups", lambda user: set(unix))
    spawner, runner = make_spawner(monkeypatch, policy=POLICY, **config)
    spawner.user.groups = [SimpleNamespace(name=name) for name in hub_groups]
    return spawner


async def refusal(spawner, user_options) -> web.HTTPError:
    with pytest.raises(web.HTTPError) as refused:
        await spawner.validate_options(user_options)
    return refused.value


async def test_validate_options_applies_the_policy(monkeypatch):
    student = policy_spawner(monkeypatch, unix=["students"])
    request = await student.validate_options({})
    assert (request.preset, request.account) == ("shared", "bb1234"), "carol's default account is one allowed"
    error = await refusal(student, {"preset": "prepost"})
    assert error.status_code == 400 and error.jupyterhub_message == "Preset prepost is not open to you; yours are shared."
    error = await refusal(student, {"partition": "shared"})
    assert error.jupyterhub_message == "Partition shared is not open to you; use a preset."


async def test_hub_groups_count_like_unix_groups(monkeypatch):
    spawner = policy_spawner(monkeypatch, hub_groups=["gpu-users"])
    assert (await spawner.validate_options({"partition": "gpu", "gpus": 1})).partition == "gpu"
    other = policy_spawner(monkeypatch)  # in no group: the default
    error = await refusal(other, {"partition": "gpu"})
    assert error.jupyterhub_message == "Partition gpu is not open to you; yours are shared."


async def test_the_account_default_follows_the_policy(monkeypatch):
    spawner = policy_spawner(monkeypatch, unix=["students"])
    facts = (await spawner.offer()).facts
    assert facts.access.accounts == ("bb1234",)
    assert facts.partitions["gpu"].hidden and not facts.visible()


async def test_the_form_offers_only_what_is_allowed(monkeypatch):
    html = await policy_spawner(monkeypatch, unix=["students"]).render_options_form()
    assert 'value="shared:1"' in html and 'value="prepost:1"' not in html
    assert 'id="dkrz-mode-advanced"' not in html, "no partition: no Advanced tab"
    assert re.search(r'<option value="bb1234"', html) and 'value="ab0000"' not in html
    html = await policy_spawner(monkeypatch).render_options_form()
    assert 'value="prepost:1"' in html and '<option value="shared"' in html and '<option value="gpu"' not in html


def active_spawner(user, name, partition):
    spawner = PageSpawner(user=user, hub=SimpleNamespace(base_url="/hub/", api_url="http://10.0.0.1:8081/hub/api"), lmod_command="")
    spawner.server_name, spawner.record.job_partition = name, partition
    spawner._spawn_pending = True
    user.spawners[name] = spawner
    return spawner


async def test_servers_per_user_count_named_servers(monkeypatch):
    spawner = policy_spawner(monkeypatch, unix=["students"])
    spawner._spawn_pending = True  # the spawner being started does not count itself
    await spawner.validate_options({"preset": "shared"})
    active_spawner(spawner.user, "analysis", "shared")
    error = await refusal(spawner, {"preset": "shared"})
    assert error.jupyterhub_message == ("Servers: you already have 1 running or starting (analysis), the most "
                                        "allowed per user here; stop one first.")
    spawner.user.spawners["analysis"]._spawn_pending = False  # stopped: counts no more
    await spawner.validate_options({"preset": "shared"})


async def test_servers_per_partition_count_every_user(monkeypatch):
    spawner = policy_spawner(monkeypatch, unix=["gpu-users"])
    others = SimpleNamespace(name="alice", spawners={}, orm_spawners={})
    held = [active_spawner(others, "one", "gpu"), active_spawner(others, "two", "gpu")]
    assert all(s in REGISTRY.spawners for s in held)
    error = await refusal(spawner, {"partition": "gpu"})
    assert error.jupyterhub_message.startswith("Partition gpu already has 2 servers running or starting")
    held[0].record.job_partition = "shared"
    assert (await spawner.validate_options({"partition": "gpu"})).partition == "gpu"


async def test_maintenance_message_refuses_new_servers_only(monkeypatch):
    spawner, runner = make_spawner(monkeypatch, maintenance_message="Maintenance until 14:00; back soon.")
    error = await refusal(spawner, {"preset": "shared"})
    assert (error.status_code, error.jupyterhub_message) == (503, "Maintenance until 14:00; back soon.")
    assert not runner.calls, "refused before Slurm is asked, so no job either"
    html = await spawner.render_options_form()
    assert '<p class="alert alert-warning" role="alert" id="dkrz-maintenance">Maintenance until 14:00; back soon.' in html
    spawner.maintenance_message = ""
    await spawner.validate_options({"preset": "shared"})
    assert 'id="dkrz-maintenance"' not in await spawner.render_options_form()


async def test_maintenance_file_switches_without_a_restart(monkeypatch, tmp_path):
    path = tmp_path / "maintenance"
    spawner, _ = make_spawner(monkeypatch, maintenance_file=str(path), maintenance_message="From the config.")
    assert spawner.maintenance() == "From the config.", "no file: the trait's message"
    path.write_text("Slurm upgrade <today>.\n")
    assert spawner.maintenance() == "Slurm upgrade <today>."
    assert "Slurm upgrade &lt;today&gt;." in await spawner.render_options_form(), "escaped like any text"
    path.write_text("  \n")
    spawner.maintenance_message = ""
    await spawner.validate_options({"preset": "shared"})
    path.unlink()
    assert spawner.maintenance() == ""


async def test_policy_traits_are_documented_and_checked(monkeypatch):
    spawner, _ = make_spawner(monkeypatch)
    for name in ("policy", "maintenance_message", "maintenance_file"):
        assert spawner.traits()[name].help.strip(), name
    assert (await spawner.offer()).allowance == policy.Allowance(), "no policy: everything"
    assert "job_partition" in {field.name for field in dataclasses.fields(JobRecord)}
    spawner.record.job_partition = "gpu"
    assert spawner.get_state()["job_partition"] == "gpu"
    with pytest.raises(ValueError, match=r"^policy: groups.x.presets: no preset 'nosuch'"):
        spawner.policy = {"groups": {"x": {"presets": ["nosuch"]}}}
    with pytest.raises(ValueError, match=r"^policy: default.presets: no preset 'big'"):
        PageSpawner(user=spawner.user, hub=spawner.hub, policy={"default": {"presets": ["big"]}})


# -- fail closed when Slurm does not say which accounts the user has (issue 18 item 4) ----------------------
def unanswered_sacctmgr():
    from dkrzspawner.cluster import ALL_ASSOCIATIONS_ARGV
    from dkrzspawner.slurm import SlurmTimeout
    return {ALL_ASSOCIATIONS_ARGV: SlurmTimeout(["sacctmgr"], None, "", "sacctmgr did not answer within 30 s")}


async def test_without_sacctmgr_the_one_allowed_account_is_written(monkeypatch):
    student = policy_spawner(monkeypatch, unix=["students"], answers=unanswered_sacctmgr())
    request = await student.validate_options({"preset": "shared"})
    assert request.account == "bb1234", "never left to Slurm's default account"


async def test_without_sacctmgr_several_allowed_accounts_need_a_choice(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, policy={"default": {"accounts": ["bb1234", "ab0000"]}},
                              answers=unanswered_sacctmgr())
    error = await refusal(spawner, {"preset": "shared"})
    assert error.status_code == 400
    assert error.jupyterhub_message == ("Account: Slurm did not say which accounts you have, and this hub lets you "
                                        "charge only these: ab0000, bb1234; choose one, or try again in a minute.")
    assert (await spawner.validate_options({"preset": "shared", "account": "ab0000"})).account == "ab0000"
    error = await refusal(spawner, {"preset": "shared", "account": "xy9999"})
    assert "may not be used on this hub by you" in error.jupyterhub_message


async def test_without_a_policy_on_accounts_slurm_still_chooses_the_default(monkeypatch):
    spawner, _ = make_spawner(monkeypatch, answers=unanswered_sacctmgr())
    assert (await spawner.validate_options({"preset": "shared"})).account is None
