"""dkrz-kernel: templates, option checks before anything is written, list/remove, register-env; entry points."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from dkrzspawner import siteconfig
from dkrzspawner.kernels import cli
from dkrzspawner.modules import ModuleCatalog
from tests.unit.fakeslurm import KERNEL_CLUSTER, FakeRunner

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def lmod_everywhere(monkeypatch):
    """Lmod as on the local cluster, whether or not this machine has it: the runner answers for it."""
    monkeypatch.setattr(siteconfig.SiteConfig, "module_catalog",
                        lambda site, runner: ModuleCatalog(runner, lmod_command="/bin/true", module_path=["/tmp"]))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def create(*argv, runner=None):
    return cli.main(["create", "--template", "python-slurm", "--name", "k", *argv], runner=runner)


def test_templates_render_valid_kernelspecs():
    for template in cli.TEMPLATES:
        spec = cli.render(template, python="/env/bin/python", display_name='say "hi"\n', env={"A": "1"},
                          config={"preset": "shared", "cores": 2}, prefix="/env")
        assert spec["argv"] == ["/env/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        assert spec["display_name"] == 'say "hi"\n' and spec["env"] == {"A": "1"}
        assert spec["metadata"]["kernel_provisioner"] == {"provisioner_name": "dkrz-slurm-provisioner",
                                                          "config": {"preset": "shared", "cores": 2}}
        assert spec["metadata"]["dkrzspawner"]["template"] == template
    local = cli.render("local-env", python="/v/bin/python", display_name="v", env={}, prefix="/v", kind="venv")
    assert "kernel_provisioner" not in local["metadata"]


def test_create_checks_with_slurm_then_writes(data_dir, capsys):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert create("--preset", "shared", "--cores", "2", "--modules", "example/2.0,broken", "--modules", "example",
                  "--tasks", "2", runner=runner) == 0
    spec = json.loads((data_dir / "kernels" / "k" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"] == {"preset": "shared", "cores": 2, "tasks": 2,
                                                                "modules": ["example/2.0", "broken", "example"]}
    assert spec["display_name"] == "k (Slurm: preset shared, 2 cores)"
    assert {call[0] for call in runner.argvs()} == {"scontrol", "sinfo", "sacctmgr", "/bin/true"}  # read-only
    assert "Created kernel k" in capsys.readouterr().out


def test_an_unknown_module_is_refused_and_nothing_is_written(data_dir, capsys):
    assert create("--preset", "shared", "--modules", "example/9.9", runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert "'example/9.9' is not a module of this cluster" in capsys.readouterr().err
    assert not (data_dir / "kernels" / "k").exists()


@pytest.mark.parametrize("argv, words", [
    (["--preset", "shared", "--cores", "3"], "Cores must be one of 1, 2, 4"),
    (["--partition", "shared", "--runtime", "soon"], "Runtime must look like"),
    (["--partition", "shared", "--account", "bb1234\nx"], "Account must be"),
    (["--job-id", "1 2"], "Job id must be the number"),
    (["--job-id", "5", "--cores", "2"], "cannot be combined"),
    (["--modules", "a b"], "not a module name"),
])
def test_bad_shapes_refused_without_any_slurm_call(data_dir, capsys, argv, words):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert create(*argv, runner=runner) == 2
    assert runner.commands == []
    err = capsys.readouterr().err
    assert err.startswith("dkrz-kernel: error: ") and words in err and err.count("\n") == 1
    assert not (data_dir / "kernels").exists()


@pytest.mark.parametrize("argv, words", [
    (["--partition", "shared", "--cores", "99"], "Cores must be between 1 and 8"),
    (["--partition", "gpu", "--gpus", "3"], "GPUs must be between 0 and 2"),
    (["--partition", "shared", "--account", "ab0000"], "Account ab0000 is not one of yours"),
    (["--partition", "nosuch"], "Partition 'nosuch' is not offered"),
])
def test_limits_refused_after_read_only_queries(data_dir, capsys, argv, words):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert create(*argv, runner=runner) == 2
    assert words in capsys.readouterr().err
    assert not any(call[0] in ("salloc", "sbatch", "srun") for call in runner.argvs())
    assert not (data_dir / "kernels").exists()


def test_job_id_needs_no_facts(data_dir):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert create("--job-id", "1234", runner=runner) == 0 and runner.commands == []
    spec = json.loads((data_dir / "kernels" / "k" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"] == {"job_id": "1234"}


def test_no_check_skips_slurm_but_not_the_shape(data_dir, capsys):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert create("--partition", "gpu", "--gpus", "1", "--no-check", runner=runner) == 0 and runner.commands == []
    assert create("--preset", "shared", "--cores", "3", "--no-check", "--force", runner=runner) == 2


def test_names_and_overwrites(data_dir, capsys):
    assert cli.main(["create", "--template", "python-slurm", "--name", "../evil", "--no-check"]) == 2
    assert "Name '../evil'" in capsys.readouterr().err
    assert cli.main(["create", "--template", "python-slurm", "--name", "Mixed.Case", "--no-check"]) == 0
    assert (data_dir / "kernels" / "mixed.case" / "kernel.json").exists()
    assert cli.main(["create", "--template", "python-slurm", "--name", "mixed.case", "--no-check"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert cli.main(["create", "--template", "python-slurm", "--name", "mixed.case", "--no-check", "--force"]) == 0


def test_conda_template_needs_an_env_and_uses_condas_activation(data_dir, tmp_path, capsys):
    assert cli.main(["create", "--template", "conda-slurm", "--name", "c", "--no-check"]) == 2
    assert "needs --environment" in capsys.readouterr().err
    prefix = tmp_path / "envs" / "climate"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").touch()
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "state").write_text('{"env_vars": {"X": "1"}}')
    assert cli.main(["create", "--template", "conda-slurm", "--name", "c", "--env", str(prefix), "--no-check",
                     "--preset", "prepost"]) == 2
    assert "--env takes NAME=VALUE" in capsys.readouterr().err  # the folder is --environment's
    assert cli.main(["create", "--template", "conda-slurm", "--name", "c", "--environment", str(prefix),
                     "--no-check", "--preset", "prepost", "--env", "PROJ_HOME=${CONDA_PREFIX}/share/proj"]) == 0
    spec = json.loads((data_dir / "kernels" / "c" / "kernel.json").read_text())
    assert spec["argv"][0] == f"{prefix}/bin/python"
    assert spec["env"]["CONDA_PREFIX"] == str(prefix) and spec["env"]["CONDA_DEFAULT_ENV"] == "climate"
    assert spec["env"]["X"] == "1" and spec["metadata"]["dkrzspawner"]["environment"] == str(prefix)
    assert spec["env"]["PROJ_HOME"] == "${CONDA_PREFIX}/share/proj"


def test_register_env_list_remove(data_dir, tmp_path, capsys):
    prefix = tmp_path / "venvs" / "tools"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").touch()
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert cli.main(["register-env", str(prefix), "--no-check"]) == 0
    spec = json.loads((data_dir / "kernels" / "tools" / "kernel.json").read_text())
    assert spec["env"]["VIRTUAL_ENV"] == str(prefix) and "kernel_provisioner" not in spec["metadata"]
    capsys.readouterr()
    assert cli.main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["name"], k["slurm"]) for k in listed] == [("tools", False)]
    assert cli.main(["remove", "tools"]) == 0 and not (data_dir / "kernels" / "tools").exists()
    assert cli.main(["remove", "tools"]) == 2
    assert cli.main(["register-env", str(tmp_path)]) == 2
    assert "neither a conda environment" in capsys.readouterr().err


def test_register_env_checks_for_ipykernel(data_dir, tmp_path, capsys):
    prefix = tmp_path / "bare"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to("/usr/bin/python3")
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert cli.main(["register-env", str(prefix)]) == 2
    assert "ipykernel is not installed" in capsys.readouterr().err
    assert not (data_dir / "kernels" / "bare").exists()


def test_node_is_checked_against_the_allocations_nodes(data_dir, capsys):
    runner = FakeRunner(KERNEL_CLUSTER)
    assert create("--job-id", "1234", "--node", "vm", runner=runner) == 0
    assert runner.argvs() == [["squeue", "-h", "-j", "1234", "-O", "NumTasks:|,cpus-per-task:|,NodeList:"]]
    spec = json.loads((data_dir / "kernels" / "k" / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["config"] == {"job_id": "1234", "node": "vm"}
    assert create("--job-id", "1234", "--node", "l40123", "--force", runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert "Node 'l40123' is not one of allocation 1234's nodes (vm)." in capsys.readouterr().err
    assert create("--preset", "shared", "--node", "vm", "--force", runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert "Node picks a node of an existing allocation, so it needs job_id" in capsys.readouterr().err


def test_env_variables_go_into_the_kernelspec(data_dir, capsys):
    assert create("--job-id", "5", "--env", "PROJ_HOME=/work/proj", "--env", "B=x=y") == 0
    spec = json.loads((data_dir / "kernels" / "k" / "kernel.json").read_text())
    assert spec["env"] == {"PROJ_HOME": "/work/proj", "B": "x=y"}
    assert create("--job-id", "5", "--env", "SLURM_NTASKS=4", "--force") == 2
    assert "Env SLURM_NTASKS: Slurm's variables come from Slurm" in capsys.readouterr().err


def plain_kernel(data_dir, name="plain", **overrides) -> Path:
    """An installed (local) kernelspec to wrap, with a logo."""
    folder = data_dir / "kernels" / name
    folder.mkdir(parents=True)
    spec = {"argv": ["/opt/R/bin/R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"],
            "display_name": "R 4.3", "language": "R", "env": {"R_LIBS": "/opt/R/lib"}, "interrupt_mode": "message",
            **overrides}
    (folder / "kernel.json").write_text(json.dumps(spec))
    (folder / "logo-64x64.png").write_bytes(b"png")
    return folder


def test_wrap_runs_an_installed_kernels_command_through_slurm(data_dir, capsys):
    plain_kernel(data_dir)
    assert cli.main(["create", "--wrap", "plain", "--name", "r-compute", "--job-id", "7", "--env", "PROJ_HOME=/p"],
                    runner=FakeRunner(KERNEL_CLUSTER)) == 0
    folder = data_dir / "kernels" / "r-compute"
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["argv"] == ["/opt/R/bin/R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    assert (spec["language"], spec["interrupt_mode"]) == ("R", "message")
    assert spec["env"] == {"R_LIBS": "/opt/R/lib", "PROJ_HOME": "/p"}
    assert spec["display_name"] == "R 4.3 (Slurm: allocation 7)"
    assert spec["metadata"]["kernel_provisioner"] == {"provisioner_name": "dkrz-slurm-provisioner",
                                                      "config": {"job_id": "7"}}
    assert spec["metadata"]["dkrzspawner"]["wraps"] == "plain" and spec["metadata"]["debugger"] is False
    assert (folder / "logo-64x64.png").read_bytes() == b"png"
    assert "running kernel plain through Slurm" in capsys.readouterr().out


@pytest.mark.parametrize("setup, argv, words", [
    (lambda d: None, ["--wrap", "nosuch"], "Wrap: no kernel named 'nosuch' is installed"),
    (lambda d: plain_kernel(d, metadata={"kernel_provisioner": {"provisioner_name": "dkrz-slurm-provisioner"}}),
     ["--wrap", "plain"], "runs through Slurm already"),
    (lambda d: plain_kernel(d, metadata={"kernel_provisioner": {"provisioner_name": "other-provisioner"}}),
     ["--wrap", "plain"], "started by the provisioner other-provisioner"),
    (lambda d: plain_kernel(d, argv=["/bin/kernel"]), ["--wrap", "plain"], "does not take {connection_file}"),
    (lambda d: plain_kernel(d), ["--wrap", "plain", "--python", "/py"], "takes neither --python nor"),
    (lambda d: plain_kernel(d), ["--wrap", "plain", "--template", "python-slurm"], None),
])
def test_wrap_refusals(data_dir, capsys, setup, argv, words):
    setup(data_dir)
    if words is None:  # argparse: --wrap and --template exclude each other
        with pytest.raises(SystemExit):
            cli.main(["create", "--name", "w", "--job-id", "7", *argv])
        return
    assert cli.main(["create", "--name", "w", "--job-id", "7", *argv], runner=FakeRunner(KERNEL_CLUSTER)) == 2
    assert words in capsys.readouterr().err
    assert not (data_dir / "kernels" / "w").exists()


def test_setup_cfg_declares_entry_points_that_load():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    entry_points = parser["options.entry_points"]
    provisioners = dict(line.split(" = ") for line in entry_points["jupyter_client.kernel_provisioners"].split("\n")
                        if line.strip())
    scripts = dict(line.split(" = ") for line in entry_points["console_scripts"].split("\n") if line.strip())
    assert scripts["dkrz-kernel"] == "dkrzspawner.kernels.cli:main"
    from importlib.metadata import EntryPoint
    ep = EntryPoint("dkrz-slurm-provisioner", provisioners["dkrz-slurm-provisioner"],
                    "jupyter_client.kernel_provisioners")
    from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
    assert issubclass(ep.load(), KernelProvisionerBase)
    assert "share/kernels/*/*" in parser["options.package_data"]["dkrzspawner"]


async def test_main_works_where_an_event_loop_runs_already(data_dir):
    assert create("--preset", "shared", "--no-check") == 0, "main() called from async code (IPython, a test)"
    assert (data_dir / "kernels" / "k" / "kernel.json").is_file()
