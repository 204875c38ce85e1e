"""kernels/system.py and `dkrz-kernel install-system`: the admins' file, its checks, the kernelspecs written."""

from __future__ import annotations

import json
import os

import pytest

from dkrzspawner.kernels import cli, system
from dkrzspawner.modules import LOAD_AND_EXEC
from tests.unit.fakeslurm import KERNEL_CLUSTER, FakeRunner

TOML = """
[modules]
lmod_command = "/bin/true"
module_path = ["/sw/modules", "/sw/more"]
init = "/sw/lmod/init/bash"

[[kernel]]
name = "py-bleeding"
display_name = "Python 3 (example/1.0)"
modules = ["example/1.0"]
argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
env = {PROJ_LIB = "/sw/proj"}

[[kernel]]
name = "py-compute"
display_name = "Python 3 (example/2.0) on a compute node"
modules = ["example/2.0"]
argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
slurm = true
options = {preset = "shared", cores = 2}
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "kernels.toml"
    path.write_text(TOML)
    return path


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)


OFFERED = ("broken", "broken/1.0", "example", "example/1.0", "example/2.0")


def test_load_toml_and_json(config_file, tmp_path):
    config = system.load(config_file)
    assert [k.name for k in config.kernel] == ["py-bleeding", "py-compute"]
    assert config.modules.module_path == ["/sw/modules", "/sw/more"]
    as_json = tmp_path / "kernels.json"
    as_json.write_text(json.dumps({"kernel": [{"name": "a", "display_name": "A", "argv": ["x", "{connection_file}"]}]}))
    loaded = system.load(as_json)
    assert loaded.kernel[0].slurm is False and loaded.modules.init == "/usr/share/lmod/lmod/init/bash"


@pytest.mark.parametrize("text, words", [
    ("[[kernel]]\nname = 'a'\n", "kernel 'a': display_name: Field required"),
    ("[[kernel]]\nname = 'a'\ndisplay_name = 'A'\nargv = ['x']\nslurm = 'yes'\n", "kernel 'a': slurm"),
    ("[[kernel]]\nname = 'a'\ndisplay_name = 'A'\nargv = ['x']\nwalltime = 1\n", "kernel 'a': walltime"),
    ("kernel = []\n", "kernel: List should have at least 1 item"),
    ("[[kernel\n", "is not valid TOML"),
])
def test_bad_files_are_refused(tmp_path, text, words):
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(system.SystemConfigError, match=words.replace("(", r"\(")):
        system.load(path)


def declared(**kernel):
    base = {"name": "a", "display_name": "A", "argv": ["python", "-f", "{connection_file}"]}
    return system.SystemConfig.model_validate({"kernel": [{**base, **kernel}]})


@pytest.mark.parametrize("kernel, offered, words", [
    ({"display_name": "two\nlines"}, OFFERED, "display_name must be one line"),
    ({"argv": ["python", "-f", "k.json"]}, OFFERED, "argv must pass {connection_file}"),
    ({"argv": ["", "{connection_file}"]}, OFFERED, "argv must be a list of non-empty"),
    ({"modules": ["example/9.9"]}, OFFERED, "'example/9.9' is not a module of this cluster"),
    ({"modules": ["example/1.0"]}, None, "Lmod gave no list of modules"),
    ({"env": {"SLURM_NTASKS": "2"}}, OFFERED, "Slurm's variables"),
    ({"options": {"preset": "shared"}}, OFFERED, "set slurm = true"),
    ({"slurm": True, "options": {"preset": "shared", "cores": 3}}, OFFERED, "Cores must be one of"),
    ({"slurm": True, "options": {"job_id": 5}}, OFFERED, "a system kernel cannot have one"),
    ({"slurm": True, "options": {"modules": ["example"]}}, OFFERED, "go into the kernel's modules"),
])
def test_checks_name_the_kernel(kernel, offered, words):
    with pytest.raises(system.SystemConfigError) as error:
        system.check(declared(**kernel), offered)
    assert str(error.value).startswith("System kernel ") and words in str(error.value)


def test_two_kernels_of_one_name_are_refused():
    config = system.SystemConfig.model_validate({"kernel": [
        {"name": "a", "display_name": "A", "argv": ["{connection_file}"]},
        {"name": "A", "display_name": "B", "argv": ["{connection_file}"]}]})
    with pytest.raises(system.SystemConfigError, match="declared twice"):
        system.check(config, OFFERED)


def test_install_writes_world_readable_kernelspecs(config_file, tmp_path, as_root, capsys):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p")],
                    runner=runner) == 0
    kernels = tmp_path / "p" / "share" / "jupyter" / "kernels"
    local = json.loads((kernels / "py-bleeding" / "kernel.json").read_text())
    assert local["argv"] == ["/bin/bash", "-c", LOAD_AND_EXEC, "dkrz-kernel", "python", "-m", "ipykernel_launcher",
                             "-f", "{connection_file}"]
    assert local["env"] == {"PROJ_LIB": "/sw/proj", "DKRZ_MODULES_INIT": "/sw/lmod/init/bash",
                            "DKRZ_MODULES": "example/1.0", "MODULEPATH": "/sw/modules:/sw/more"}
    assert "kernel_provisioner" not in local["metadata"] and local["metadata"]["dkrzspawner"]["system"] is True
    remote = json.loads((kernels / "py-compute" / "kernel.json").read_text())
    assert remote["argv"] == ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert remote["metadata"]["kernel_provisioner"] == {"provisioner_name": "dkrz-slurm-provisioner", "config": {
        "preset": "shared", "cores": 2, "modules": ["example/2.0"]}}
    for name in ("py-bleeding", "py-compute"):
        assert (kernels / name).stat().st_mode & 0o777 == 0o755
        assert (kernels / name / "kernel.json").stat().st_mode & 0o777 == 0o644
    assert capsys.readouterr().out.count("Installed system kernel") == 2
    programs = {call[0] for call in runner.argvs()}
    assert "/bin/true" in programs and "sinfo" in programs  # the file's Lmod; Slurm's limits for py-compute
    assert programs <= {"/bin/true", "scontrol", "sinfo", "sacctmgr", cli.ModuleCatalog(runner).lmod_command}
    # again: its own kernels are replaced; a kernel it did not write is not, unless --force
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p")],
                    runner=FakeRunner(KERNEL_CLUSTER)) == 0
    (kernels / "py-compute" / "kernel.json").write_text(json.dumps({"argv": ["x"], "display_name": "theirs"}))
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p")],
                    runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert "exists already" in capsys.readouterr().err
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p"), "--force"],
                    runner=FakeRunner(KERNEL_CLUSTER)) == 0


def test_install_refuses_before_writing_anything(config_file, tmp_path, as_root, capsys):
    config_file.write_text(TOML.replace("example/2.0", "example/9.9"))
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p")],
                    runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert "System kernel 'py-compute': Modules: 'example/9.9' is not a module" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_install_refuses_a_bad_name(config_file, tmp_path, as_root, capsys):
    config_file.write_text(TOML.replace('name = "py-compute"', 'name = "../evil"'))
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p")],
                    runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert "Name '../evil' must be" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_install_is_for_root(config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    assert cli.main(["install-system", "--config", str(config_file), "--prefix", str(tmp_path / "p")]) == 2
    assert "runs as root" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_default_folder_is_the_system_one():
    assert str(system.kernels_dir(None)).endswith("share/jupyter/kernels")
    assert system.kernels_dir("/opt/env") == system.Path("/opt/env/share/jupyter/kernels")
    assert os.path.isabs(system.kernels_dir(None))
