"""Environment modules: Lmod's list, the one validation, the form's multi-select, the batch script's lines."""

from __future__ import annotations

import logging

import pytest

from dkrzspawner import form, modules, options, script
from dkrzspawner.form import options_from_form
from dkrzspawner.offer import Facts, PartitionLimits
from dkrzspawner.options import OptionsError, check_modules, validate
from dkrzspawner.slurm import Result, SlurmUnreachable
from tests.unit.fakeslurm import FakeRunner
from tests.unit.recorded import LMOD_AVAIL

OFFERED = ("broken", "broken/1.0", "example", "example/1.0", "example/2.0", "jobpython", "jobpython/3.11",
           "tools", "tools/1.0")
PRESETS = options.load_presets({
    "shared": {"display_name": "Shared", "partition": "shared", "modules": ["jobpython/3.11"]},
    "plain": {"display_name": "Plain", "partition": "shared"},
})
SHARED = PartitionLimits(name="shared", display_name="shared", max_cores=8, max_memory_mb=16000,
                         max_runtime=86400, memory_per_core_mb=1000, modules=("example/1.0",))
GPU = PartitionLimits(name="gpu", display_name="gpu", max_cores=8, max_memory_mb=16000, max_runtime=86400,
                      memory_per_core_mb=1000, max_gpus=2)


def facts(offered=OFFERED):
    return Facts(user="alice", partitions={"shared": SHARED, "gpu": GPU}, modules=offered)


# -- Lmod's list -------------------------------------------------------------------------------------------
def test_parse_avail_keeps_names_and_versions_drops_headers_and_markers():
    assert modules.parse_avail(LMOD_AVAIL) == OFFERED
    assert modules.parse_avail("") == ()
    assert modules.parse_avail("/x:\n  weird name with spaces\nok/1\n") == ("ok/1",)


def test_default_module_path_reads_lmods_file(tmp_path):
    there = tmp_path / "mods"
    there.mkdir()
    listing = tmp_path / "modulespath"
    listing.write_text(f"# comment\n{there}/  # trailing comment\n/does/not/exist\n\n")
    assert modules.default_module_path(listing) == [str(there)]
    assert modules.default_module_path(tmp_path / "missing") == []


def lmod(answer) -> FakeRunner:
    """A runner whose Lmod (``/bin/true``) lists ``answer`` on stderr (an exception: raised)."""
    return FakeRunner({("true", "bash", "--terse", "avail"): answer if isinstance(answer, Exception)
                       else Result("", answer, 0.01)})


async def test_the_catalog_asks_lmod_once_with_the_module_path():
    runner = lmod(LMOD_AVAIL)
    catalog = modules.ModuleCatalog(runner, lmod_command="/bin/true", module_path=["/a", "/b"])
    assert await catalog.offered(logging.getLogger()) == OFFERED
    assert await catalog.available() == OFFERED
    assert [(c.argv, c.env) for c in runner.commands] == [(["/bin/true", "bash", "--terse", "avail"],
                                                           {"MODULEPATH": "/a:/b"})]


async def test_no_lmod_or_a_failing_lmod_offers_nothing(caplog):
    assert await modules.ModuleCatalog(lmod(LMOD_AVAIL), lmod_command="/nonexistent/lmod",
                                       module_path=["/a"]).offered(logging.getLogger()) is None
    assert await modules.ModuleCatalog(lmod(LMOD_AVAIL), lmod_command="/bin/true",
                                       module_path=[]).offered(logging.getLogger()) is None
    failing = lmod(SlurmUnreachable(["lmod"], None, "", "cannot run lmod"))
    assert await modules.ModuleCatalog(failing, lmod_command="/bin/true",
                                       module_path=["/a"]).offered(logging.getLogger()) is None
    assert "modules is not available: cannot run lmod" in caplog.text


def test_the_module_settings_are_the_spawners_and_the_provisioners_own_config_names(tmp_path):
    from jupyter_client.kernelspec import KernelSpec
    from traitlets.config import Config

    from dkrzspawner.kernels.provisioner import SlurmProvisioner
    from dkrzspawner.spawner import DKRZSpawner

    names = ("lmod_command", "module_path", "modules_init", "modules_cache_ttl")
    for cls in (DKRZSpawner, SlurmProvisioner):
        assert issubclass(cls, modules.ModuleSettings)
        assert all(cls.class_traits()[name].help for name in names)
    config = Config()
    config.SlurmProvisioner.lmod_command = "/sw/lmod"
    config.SlurmProvisioner.module_path = ["/sw/modules"]
    config.SlurmProvisioner.modules_cache_ttl = 5.0
    spec = KernelSpec(argv=["/py"], display_name="t", language="python")
    kernel = SlurmProvisioner(kernel_id="k1", kernel_spec=spec, parent=None, config=config)
    assert (kernel.lmod_command, kernel.module_path, kernel.modules_cache_ttl) == ("/sw/lmod", ["/sw/modules"], 5.0)
    assert kernel.modules_init == modules.DEFAULT_INIT
    catalog = kernel.new_module_catalog(lmod(LMOD_AVAIL), timeout=3.0)
    assert (catalog.lmod_command, catalog.module_path, catalog.cache.ttl, catalog.timeout) == \
        ("/sw/lmod", ["/sw/modules"], 5.0, 3.0)


async def test_a_kernel_asks_lmod_once_until_its_module_settings_change(monkeypatch):
    from jupyter_client.kernelspec import KernelSpec

    from dkrzspawner.kernels.provisioner import SlurmProvisioner

    runner = lmod(LMOD_AVAIL)
    monkeypatch.setattr(SlurmProvisioner, "runner_factory", lambda: runner)
    spec = KernelSpec(argv=["/py"], display_name="t", language="python")
    kernel = SlurmProvisioner(kernel_id="k1", kernel_spec=spec, parent=None, lmod_command="/bin/true",
                              module_path=["/a"])
    assert await kernel.offered_modules() == OFFERED
    assert await kernel.offered_modules() == OFFERED
    assert len(runner.commands) == 1
    kernel.module_path = ["/b"]  # the site file's settings arrive
    assert await kernel.offered_modules() == OFFERED
    assert [command.env for command in runner.commands] == [{"MODULEPATH": "/a"}, {"MODULEPATH": "/b"}]


# -- the one validation ------------------------------------------------------------------------------------
def test_the_partitions_then_the_presets_then_the_users_modules_in_order_each_once():
    request = validate({"preset": "shared", "modules": ["tools/1.0", "example/1.0", "tools/1.0"]}, PRESETS,
                       facts=facts())
    assert request.modules == ("example/1.0", "jobpython/3.11", "tools/1.0")


def test_an_advanced_request_loads_two_modules_in_the_order_given():
    request = validate({"partition": "gpu", "modules": ["tools/1.0", "example/2.0"]}, PRESETS, facts=facts())
    assert request.modules == ("tools/1.0", "example/2.0")
    assert validate({"partition": "gpu"}, PRESETS, facts=facts()).modules == ()


@pytest.mark.parametrize("requested, words", [
    (["example/9.9"], "'example/9.9' is not a module of this cluster"),
    (["example/1.0\nexport X=1"], "is not a module name"),
    (["example/1.0; rm -rf ~"], "is not a module name"),
    (["../../etc"], "is not a module name"),
    (["tools/../../etc"], "is not a module of this cluster"),
    ([""], "is not a module name"),
    ([3], "Modules:"),
    ("example/1.0", "Modules:"),
    (["m"] * 33, "at most 32"),
])
def test_bad_modules_are_refused_with_a_message_naming_the_field(requested, words):
    with pytest.raises(OptionsError, match=words) as refused:
        validate({"partition": "gpu", "modules": requested}, PRESETS, facts=facts())
    assert refused.value.field == "modules"


def test_with_no_modules_offered_a_request_for_one_is_refused_but_none_is_fine():
    with pytest.raises(OptionsError, match="offers no environment modules"):
        validate({"partition": "gpu", "modules": ["example/1.0"]}, PRESETS, facts=facts(offered=None))
    assert validate({"partition": "gpu", "modules": []}, PRESETS, facts=facts(offered=None)).modules == ()


def test_without_facts_only_the_shape_is_checked():
    assert check_modules(["anything/1.0"], None, ("first",)) == ("first", "anything/1.0")
    with pytest.raises(OptionsError):
        check_modules(["bad name"], None)


def test_admins_module_names_are_checked_when_the_config_is_read():
    with pytest.raises(ValueError, match="not a module name"):
        options.load_presets({"x": {"display_name": "X", "partition": "shared", "modules": ["a b"]}})
    with pytest.raises(ValueError, match="not a module name"):
        options.load_partition_settings({"shared": {"modules": ["a;b"]}})
    assert options.load_partition_settings({"shared": {"modules": ["example/1.0"]}})["shared"].modules == \
        ("example/1.0",)


# -- the form and spawn URLs -------------------------------------------------------------------------------
def test_the_multi_select_sends_a_list_kept_in_advanced_mode_only():
    form = {"mode": ["advanced"], "partition": ["gpu"], "modules": ["tools/1.0", "example/2.0"], "cores": [""]}
    assert options_from_form(form) == {"partition": "gpu", "modules": ["tools/1.0", "example/2.0"]}
    assert options_from_form({**form, "modules": [""]}) == {"partition": "gpu"}
    assert "modules" not in options_from_form({"mode": ["preset"], "preset": ["shared"], "modules": ["tools"]})


def test_a_spawn_url_takes_modules_repeated_or_comma_separated():
    query = {"partition": ["gpu"], "modules": ["tools/1.0,example/2.0", "broken"]}
    assert form.options_from_query(query) == {"partition": "gpu",
                                                 "modules": ["tools/1.0", "example/2.0", "broken"]}


def test_the_last_modules_are_preselected_when_still_offered():
    last = {"partition": "gpu", "modules": ["tools/1.0"]}
    assert form.preselect(last, PRESETS, facts())["modules"] == ["tools/1.0"]
    assert form.preselect({"partition": "gpu", "modules": ["gone/1.0"]}, PRESETS, facts())["modules"] == []


# -- the batch script --------------------------------------------------------------------------------------
def render(request):
    return script.render("batch_script.sh.j2", request=request, job_name="jupyterhub-x", comment="dkrzspawner:x",
                         output="/home/alice/out", workdir="/home/alice", export_names=["A"], path="/env/bin",
                         command=["/env/bin/dkrzspawner-singleuser"],
                         modules_init="/usr/share/lmod/lmod/init/bash", module_path=["/m1", "/m2"])


def test_the_script_loads_the_modules_before_the_server_and_stops_if_loading_fails():
    text = render(validate({"partition": "gpu", "modules": ["tools/1.0", "example/2.0"]}, PRESETS, facts=facts()))
    lines = text.splitlines()
    # the names are shell words of their own, never inside a double-quoted string (issue 18 item 7)
    load = lines.index("module load tools/1.0 example/2.0 || { echo \"dkrzspawner: this module load failed:\" "
                       "tools/1.0 example/2.0 >&2; exit 1; }")
    assert lines[load - 2] == "export MODULEPATH=/m1:/m2"
    assert lines[load - 1].startswith("source /usr/share/lmod/lmod/init/bash || {")
    assert [line for line in lines[load + 1:] if line][0].startswith("exec /env/bin/dkrzspawner-singleuser")


def test_no_modules_no_module_lines():
    text = render(validate({"partition": "gpu"}, PRESETS, facts=facts()))
    assert "module" not in text
