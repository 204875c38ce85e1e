"""siteconfig.py: one site file for the hub and the kernels; loading, precedence, the job's environment, and
kernels that validate against the site's own presets and group policy with the hub's sentences."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyter_client.kernelspec import KernelSpec
from tornado import web
from traitlets import TraitError
from traitlets.config import Config

from dkrzspawner import policy, siteconfig
from dkrzspawner.cluster import Cluster
from dkrzspawner.kernels import cli
from dkrzspawner.kernels import kernelspec
from dkrzspawner.kernels import provisioner as prov
from dkrzspawner.options import OptionsError
from dkrzspawner.slurm import SlurmRunner
from dkrzspawner.registry import REGISTRY
from dkrzspawner.spawner import DKRZSpawner
from tests.unit.builders import make_spawner
from tests.unit.fakeslurm import KERNEL_CLUSTER, FakeRunner, allocating

#: a site that is not DKRZ: its own presets, partition policy and group policy
SITE = """\
[presets.tiny]
display_name = "Tiny"
description = "One core for small things."
partition = "prepost"
cores = [1]
memory_per_core = "1000M"
runtime = "00:10:00"
max_runtime = "01:00:00"

[presets.small]
display_name = "Small"
partition = "shared"
cores = [1, 2]

[partitions."*"]
max_gpus = 0

[partitions.gpu]
max_gpus = 2

[policy.groups.students]
presets = ["tiny"]
partitions = []
accounts = ["bb1234"]

[policy.groups.gpu-users]
partitions = ["gpu"]

[policy.default]
presets = ["tiny", "small"]
partitions = ["shared"]
"""


@pytest.fixture
def site_file(tmp_path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE)
    return path


def write(tmp_path, text: str, name="site.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def groups(monkeypatch, *names):
    """The user's Unix groups, as the policy sees them on this host."""
    monkeypatch.setattr(policy, "unix_groups", lambda user: set(names))


# -- loading -------------------------------------------------------------------------------------------------
def test_the_shipped_example_loads():
    example = resources.files("dkrzspawner") / "share" / "site.toml.example"
    site = siteconfig.load(str(example))
    assert list(site.presets) == ["shared", "prepost"] and site.presets["prepost"].modules == ("example/1.0",)
    assert site.partitions["gpu"].max_gpus == 2 and set(site.policy.groups) == {"students", "gpu-users"}
    assert site.advanced and site.settings["lmod_command"].endswith("/lmod")


def test_a_site_file_replaces_the_dkrz_presets(site_file):
    site = siteconfig.load(str(site_file))
    assert list(site.presets) == ["tiny", "small"]
    tiny = site.presets["tiny"]
    assert (tiny.partition, tiny.cores, tiny.memory_per_core) == ("prepost", (1,), "1000M")
    assert set(site.settings) == {"presets", "partitions", "policy"}


@pytest.mark.parametrize("text, message", [
    ("presets = [\n", "not valid TOML: "),
    ("preset = {}\n", "unknown setting 'preset'; a site file may set presets, partitions, policy, "),
    ("advanced_options = 'yes'\n", "advanced_options: input should be a valid boolean."),
    ("module_path = '/sw'\n", "module_path: input should be a valid list."),
    ("presets = 3\n", "presets: input should be a valid dictionary."),
    ("[presets.Tiny]\ndisplay_name = 'T'\npartition = 'prepost'\n", "preset name 'Tiny' must be a lower-case slug."),
    ("[presets.tiny]\ndisplay_name = 'T'\npartition = 'prepost'\ncores = [0]\n", "preset 'tiny': cores: "),
    ("[presets.tiny]\ndisplay_name = 'T'\npartition = 'prepost'\nmemory = '1G'\n", "preset 'tiny': memory: "),
    ("[presets.tiny]\npartition = 'prepost'\n", "preset 'tiny': display_name: "),
    ("[partitions.gpu]\nmax_gpus = -1\n", "partition 'gpu': max_gpus: "),
    ("[partitions.gpu]\nmax_runtime = 'long'\n", "partition 'gpu': max_runtime: "),
    ("[policy.groups.students]\npresets = ['tiny']\n", "policy: groups.students.presets: no preset 'tiny' "
                                                       "(presets: shared, prepost)."),
    ("[policy.groups.students]\nmax_servers = 0\n", "policy: groups.students.max_servers: "),
])
def test_a_bad_file_is_one_sentence_naming_the_file_and_the_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(siteconfig.SiteConfigError) as error:
        siteconfig.load(path)
    text = str(error.value)
    assert text.startswith(f"Site config {path}: ") and message in text, text
    assert "\n" not in text and text.endswith(".")


def test_a_toml_error_says_where(tmp_path):
    path = write(tmp_path, "advanced_options = true\n[presets.tiny\n")
    with pytest.raises(siteconfig.SiteConfigError, match=r"not valid TOML: .*line 2"):
        siteconfig.load(path)


def test_a_missing_or_unreadable_file_is_refused(tmp_path):
    with pytest.raises(siteconfig.SiteConfigError, match=r"nosuch.toml: cannot be read \(No such file"):
        siteconfig.load(str(tmp_path / "nosuch.toml"))


# -- which file kernels go by ---------------------------------------------------------------------------------
def test_kernels_go_by_the_hubs_file_then_the_default_path_then_the_defaults(tmp_path, monkeypatch, site_file):
    assert siteconfig.for_kernels({}).path == "" and list(siteconfig.for_kernels({}).presets) == ["shared",
                                                                                                 "prepost"]
    default = write(tmp_path, "advanced_options = false\n", "default.toml")
    monkeypatch.setattr(siteconfig, "DEFAULT_PATH", default)
    assert siteconfig.for_kernels({}).path == default and not siteconfig.for_kernels({}).advanced
    hubs = siteconfig.for_kernels({siteconfig.ENV_PATH: str(site_file)})
    assert hubs.path == str(site_file) and list(hubs.presets) == ["tiny", "small"]
    monkeypatch.setenv(siteconfig.ENV_PATH, str(site_file))
    assert siteconfig.for_kernels().path == str(site_file)
    with pytest.raises(siteconfig.SiteConfigError, match="cannot be read"):
        siteconfig.for_kernels({siteconfig.ENV_PATH: str(tmp_path / "gone.toml")})


def test_kernel_groups_are_unix_groups_and_the_hub_groups_passed_to_the_job(monkeypatch, site_file):
    groups(monkeypatch, "users", "students")
    assert siteconfig.passed_hub_groups({}) == set()
    passed = {siteconfig.ENV_HUB_GROUPS: "gpu-users,,bad name,x\ny"}
    assert siteconfig.passed_hub_groups(passed) == {"gpu-users"}
    site = siteconfig.load(str(site_file))
    assert siteconfig.kernel_offer(site, "alice", {}).allowance.groups == ("students",)
    assert siteconfig.kernel_offer(site, "alice", passed).allowance.groups == ("gpu-users", "students")


# -- kernels: the site's presets, partitions and group policy, in the hub's words --------------------------------
async def kernel_facts(offer):
    return offer.facts_from(await Cluster(FakeRunner(KERNEL_CLUSTER), ttl=0, all_users=False).snapshot("alice"))


async def test_a_kernel_gets_a_preset_that_is_not_dkrzs(site_file):
    offer = siteconfig.kernel_offer(siteconfig.load(str(site_file)), "alice", {})
    options = kernelspec.check_shape({"preset": "tiny"}, offer)
    request = kernelspec.to_job_request(options, offer, await kernel_facts(offer))
    assert (request.partition, request.cores, request.memory, request.runtime, request.preset) == \
        ("prepost", 1, "1000M", "00:10:00", "tiny")
    assert kernelspec.to_job_request(kernelspec.check_shape({}, offer), offer).preset == "tiny", "the site's first preset"
    with pytest.raises(OptionsError) as refused:
        kernelspec.check_shape({"preset": "shared"}, offer)
    assert str(refused.value) == "Preset 'shared' does not exist; choose one of tiny, small."


async def test_a_kernel_gets_the_sites_partition_policy(site_file):
    offer = siteconfig.kernel_offer(siteconfig.load(str(site_file)), "alice", {})
    options = kernelspec.check_shape({"partition": "shared", "gpus": 1}, offer)
    with pytest.raises(OptionsError) as refused:
        kernelspec.to_job_request(options, offer, await kernel_facts(offer))
    assert str(refused.value) == "GPUs: partition shared has none."


@pytest.mark.parametrize("unix, hub, config, message", [
    (["students"], "", {"preset": "small"}, "Preset small is not open to you; yours are tiny."),
    (["students"], "", {"partition": "shared"}, "Partition shared is not open to you; use a preset."),
    (["students"], "", {"preset": "tiny", "account": "ab0000"},
     "Account ab0000 may not be used on this hub by you; allowed: bb1234."),
    ([], "", {"partition": "gpu"}, "Partition gpu is not open to you; yours are shared."),
])
def test_a_kernel_applies_the_group_policy_without_slurm(monkeypatch, site_file, unix, hub, config, message):
    groups(monkeypatch, *unix)
    offer = siteconfig.kernel_offer(siteconfig.load(str(site_file)), "alice", {siteconfig.ENV_HUB_GROUPS: hub})
    with pytest.raises(OptionsError) as refused:
        kernelspec.check_shape(config, offer)
    assert str(refused.value) == message


async def test_hub_groups_passed_to_the_job_count_for_kernels(monkeypatch, site_file):
    groups(monkeypatch)
    site = siteconfig.load(str(site_file))
    offer = siteconfig.kernel_offer(site, "alice", {siteconfig.ENV_HUB_GROUPS: "gpu-users"})
    request = kernelspec.to_job_request(kernelspec.check_shape({"partition": "gpu", "gpus": 1}, offer), offer,
                                   await kernel_facts(offer))
    assert (request.partition, request.gpus) == ("gpu", 1)


def test_advanced_requests_switched_off_by_the_site_are_refused_for_kernels(tmp_path):
    site = siteconfig.load(write(tmp_path, "advanced_options = false\n"))
    offer = siteconfig.kernel_offer(site, "alice", {})
    with pytest.raises(OptionsError) as refused:
        kernelspec.check_shape({"partition": "shared"}, offer)
    assert str(refused.value) == "Advanced requests (partition) are not available on this hub."
    assert kernelspec.check_shape({"preset": "shared"}, offer).job == {"preset": "shared"}


@pytest.mark.parametrize("unix, user_options", [
    (["students"], {"preset": "small"}),
    (["students"], {"partition": "shared"}),
    (["students"], {"preset": "tiny", "account": "ab0000"}),
    ([], {"partition": "gpu"}),
    ([], {"preset": "shared"}),
    ([], {"preset": "tiny", "cores": 2}),
])
async def test_kernels_refuse_what_the_hub_refuses_with_the_same_sentence(monkeypatch, site_file, unix,
                                                                         user_options):
    groups(monkeypatch, *unix)
    spawner, _ = make_spawner(monkeypatch, site_config_file=str(site_file))
    with pytest.raises(web.HTTPError) as hub:
        await spawner.validate_options(user_options)
    offer = siteconfig.kernel_offer(siteconfig.load(str(site_file)), "alice", {})
    with pytest.raises(OptionsError) as kernel:
        kernelspec.to_job_request(kernelspec.check_shape(user_options, offer), offer, await kernel_facts(offer))
    assert str(kernel.value) == hub.value.jupyterhub_message


# -- dkrz-kernel create and the provisioner read the site file --------------------------------------------------
@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_dkrz_kernel_create_uses_the_hubs_site_file(monkeypatch, site_file, data_dir, capsys):
    monkeypatch.setenv(siteconfig.ENV_PATH, str(site_file))
    runner = FakeRunner(KERNEL_CLUSTER)
    argv = ["create", "--template", "python-slurm", "--name", "t", "--preset", "tiny"]
    assert cli.main(argv, runner=runner) == 0
    spec = json.loads((data_dir / "kernels" / "t" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"] == {"preset": "tiny"}
    assert cli.main(["create", "--template", "python-slurm", "--name", "d", "--preset", "shared"], runner=runner) == 2
    assert capsys.readouterr().err == ("dkrz-kernel: error: Preset 'shared' does not exist; choose one of tiny, "
                                       "small.\n")
    assert not (data_dir / "kernels" / "d").exists()


def test_dkrz_kernel_create_refuses_with_a_bad_site_file(monkeypatch, tmp_path, data_dir, capsys):
    monkeypatch.setenv(siteconfig.ENV_PATH, write(tmp_path, "[presets.tiny]\npartition = 'prepost'\n"))
    runner = FakeRunner(KERNEL_CLUSTER)
    assert cli.main(["create", "--template", "python-slurm", "--name", "t", "--no-check"], runner=runner) == 2
    err = capsys.readouterr().err
    assert err.startswith("dkrz-kernel: error: Site config ") and "preset 'tiny': display_name: " in err
    assert err.count("\n") == 1 and runner.commands == [] and not (data_dir / "kernels").exists()


def provisioner(config=None, **kernel_config) -> prov.SlurmProvisioner:
    spec = KernelSpec(argv=["/py", "-m", "ipykernel_launcher", "-f", "{connection_file}"], display_name="t",
                      language="python")
    prov.SlurmProvisioner.runner_factory = lambda: FakeRunner(allocating())
    try:
        return prov.SlurmProvisioner(kernel_id="k1", kernel_spec=spec, parent=None, config=config or Config(),
                                     **kernel_config)
    finally:
        prov.SlurmProvisioner.runner_factory = SlurmRunner


async def test_the_provisioner_validates_against_the_site_file(monkeypatch, site_file):
    monkeypatch.setenv(siteconfig.ENV_PATH, str(site_file))
    fake = FakeRunner(allocating())
    monkeypatch.setattr(prov.SlurmProvisioner, "runner_factory", lambda: fake)
    spec = KernelSpec(argv=["/py"], display_name="t", language="python")
    kernel = prov.SlurmProvisioner(kernel_id="k1", kernel_spec=spec, parent=None, lmod_command="", preset="tiny")
    allocation = await kernel._allocate(kernel.kernel_options())
    salloc = next(call for call in fake.argvs() if call[0] == "salloc")
    assert "--partition=prepost" in salloc and "--mem=1000M" in salloc and "--cpus-per-task=1" in salloc
    assert allocation.job_id == "77"
    refused = provisioner(lmod_command="", preset="shared")
    with pytest.raises(OptionsError, match="Preset 'shared' does not exist; choose one of tiny, small"):
        refused.kernel_options()


def test_a_kernelspec_cannot_bring_its_own_presets(site_file, monkeypatch):
    monkeypatch.setenv(siteconfig.ENV_PATH, str(site_file))
    kernel = provisioner(lmod_command="", preset="big", presets={"big": {"display_name": "B", "partition": "gpu"}})
    with pytest.raises(OptionsError, match="Unknown option 'presets'"):
        kernel.kernel_options()


def test_the_provisioner_takes_the_sites_module_settings_and_refuses_its_own_as_well(monkeypatch, tmp_path):
    path = write(tmp_path, "lmod_command = '/sw/lmod'\nmodule_path = ['/sw/modules']\n")
    monkeypatch.setenv(siteconfig.ENV_PATH, path)
    kernel = provisioner(preset="shared")
    kernel.kernel_options()
    assert (kernel.lmod_command, kernel.module_path) == ("/sw/lmod", ["/sw/modules"])
    config = Config()
    config.SlurmProvisioner.lmod_command = "/other/lmod"
    with pytest.raises(prov.KernelStartError) as refused:
        provisioner(config, preset="shared").kernel_options()
    assert str(refused.value) == (f"Site config {path}: with a site file, these settings belong in it alone; "
                                  "remove c.SlurmProvisioner.lmod_command from the configuration.")


def test_the_retired_provisioner_presets_are_refused_not_ignored():
    config = Config()
    config.SlurmProvisioner.presets = {"x": {"display_name": "X", "partition": "shared"}}
    with pytest.raises(prov.KernelStartError) as refused:
        provisioner(config, lmod_command="", preset="x").kernel_options()
    assert str(refused.value) == ("c.SlurmProvisioner.presets is no longer read: kernels go by the site file (the "
                                  f"hub's, or {siteconfig.DEFAULT_PATH}); move it there.")


def test_a_bad_site_file_fails_the_kernel_start_in_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv(siteconfig.ENV_PATH, write(tmp_path, "presets = 1\n"))
    with pytest.raises(prov.KernelStartError, match=r"^Site config .*: presets: input should be a valid dictionary"):
        provisioner(preset="shared").kernel_options()


# -- the hub: precedence and what each job is told ----------------------------------------------------------------
async def test_the_hub_takes_every_setting_from_the_file(monkeypatch, tmp_path, site_file):
    groups(monkeypatch, "students")
    spawner, _ = make_spawner(monkeypatch, site_config_file=str(site_file))
    assert list(spawner.site_settings().presets) == ["tiny", "small"]
    html = await spawner.render_options_form()
    assert "Tiny" in html and "Small" not in html, "the form offers the site's presets that students may use"
    assert set(spawner.site_settings().partitions) == {"*", "gpu"}
    assert set(spawner.site_settings().policy.groups) == {"students", "gpu-users"}
    path = write(tmp_path, "advanced_options = false\nlmod_command = '/sw/lmod'\nmodule_path = ['/sw/m']\n"
                           "modules_init = '/sw/init/bash'\n", "modules.toml")
    spawner, _ = make_spawner(monkeypatch, site_config_file=path)
    assert (spawner.advanced_options, spawner.lmod_command, spawner.module_path, spawner.modules_init) == \
        (False, "/sw/lmod", ["/sw/m"], "/sw/init/bash")
    assert list(spawner.site_settings().presets) == ["shared", "prepost"], "what the file leaves out keeps its default"


@pytest.mark.parametrize("section, name, value", [
    ("DKRZSpawner", "presets", {"x": {"display_name": "X", "partition": "shared"}}),
    ("DKRZSpawner", "policy", {}),
    ("DKRZSpawner", "advanced_options", False),
    ("DKRZSpawner", "module_path", ["/sw"]),
    ("Spawner", "partitions", {}),
])
def test_the_hub_refuses_a_setting_in_both_places(monkeypatch, site_file, section, name, value):
    config = Config()
    config[section][name] = value
    with pytest.raises(siteconfig.SiteConfigError) as refused:
        make_spawner(monkeypatch, site_config_file=str(site_file), config=config)
    assert str(refused.value) == (f"Site config {site_file}: with a site file, these settings belong in it alone; "
                                  f"remove c.{section}.{name} from the configuration.")


def test_without_a_file_the_hubs_configuration_counts_and_it_warns_once(monkeypatch, caplog):
    config = Config()
    config.DKRZSpawner.presets = {"x": {"display_name": "X", "partition": "shared"}}
    REGISTRY.clear()
    with caplog.at_level("WARNING"):
        first, _ = make_spawner(monkeypatch, config=config)
        make_spawner(monkeypatch, config=config)
    assert list(first.site_settings().presets) == ["x"]
    warnings = [r.getMessage() for r in caplog.records if "kernels (dkrz-kernel" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("c.DKRZSpawner.presets: kernels")
    assert "the built-in defaults" in warnings[0]


def test_the_site_file_must_be_an_absolute_path(monkeypatch):
    with pytest.raises(TraitError, match="absolute path"):
        make_spawner(monkeypatch, site_config_file="site.toml")


async def submit(monkeypatch, hub_groups=(), **config):
    spawner, _ = make_spawner(monkeypatch, **config)
    runner = FakeRunner(KERNEL_CLUSTER, {("sbatch", "--test-only"): "", "sbatch": "4242\n"})  # sbatch taken
    spawner.user.groups = [SimpleNamespace(name=name) for name in hub_groups]
    monkeypatch.setattr(DKRZSpawner, "runner", property(lambda self: runner))
    monkeypatch.setattr(DKRZSpawner, "watcher", property(lambda self: SimpleNamespace(watch=lambda *a, **k: None)))
    monkeypatch.setattr(spawner, "get_env", lambda: {"JUPYTERHUB_API_TOKEN": "secret"})
    monkeypatch.setattr(spawner, "_home", lambda: "/home/carol")
    submission = spawner.submission(await spawner.validate_options({}))
    await spawner.life.preflight(submission)
    await spawner.life._submit(submission)
    return [{"argv": c.argv, "user": c.user, "env": c.env, "script": c.stdin} for c in runner.commands
            if c.argv[0] == "sbatch"]


async def test_the_hub_passes_its_site_file_and_the_policys_hub_groups_to_the_job(monkeypatch, site_file):
    groups(monkeypatch)
    preflight, real = await submit(monkeypatch, hub_groups=["gpu-users", "unrelated"],
                                   site_config_file=str(site_file))
    for submission in (preflight, real):
        assert submission["user"] == "carol"
        assert submission["env"][siteconfig.ENV_PATH] == str(site_file)
        assert submission["env"][siteconfig.ENV_HUB_GROUPS] == "gpu-users"
        export = [line for line in submission["script"].splitlines() if line.startswith("#SBATCH --export=")]
        assert export and {siteconfig.ENV_PATH, siteconfig.ENV_HUB_GROUPS} <= set(export[0][17:].split(","))
    sudo = SlurmRunner(sudo=["sudo", "-n"]).command_line(["sbatch", "--parsable"], user="carol",
                                                         env_names=real["env"])
    preserved = next(arg for arg in sudo if arg.startswith("--preserve-env=")).split("=", 1)[1].split(",")
    assert {siteconfig.ENV_PATH, siteconfig.ENV_HUB_GROUPS} <= set(preserved)
    sudoers = (resources.files("dkrzspawner") / "share" / "sudoers.d" / "dkrzspawner").read_text()
    assert "env_keep" in sudoers and "DKRZSPAWNER_*" in sudoers, "sudo lets both names through to the job"


async def test_without_a_site_file_the_job_is_told_nothing(monkeypatch):
    _, real = await submit(monkeypatch)
    assert siteconfig.ENV_PATH not in real["env"] and siteconfig.ENV_HUB_GROUPS not in real["env"]
    assert "DKRZSPAWNER_SITE" not in real["script"]


def test_hub_groups_value_keeps_only_the_policys_groups():
    checked = policy.load_policy({"groups": {"b": {}, "a": {}, "x y": {}}}, siteconfig.SiteConfig().presets)
    assert siteconfig.hub_groups_value(["b", "c", "a", "x y"], checked) == "a,b"
