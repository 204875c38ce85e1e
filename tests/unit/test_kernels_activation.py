"""kernels/activation.py: what activating a virtualenv or a conda env sets."""

from __future__ import annotations

import json

import pytest

from dkrzspawner.kernels import activation


def make_venv(path):
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").touch()
    (path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return path


def make_conda(path, env_vars=None):
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python3").touch()
    (path / "conda-meta").mkdir()
    if env_vars is not None:
        (path / "conda-meta" / "state").write_text(json.dumps({"env_vars": env_vars}))
    return path


def test_kinds(tmp_path):
    assert activation.kind_of(make_venv(tmp_path / "v")) == "venv"
    assert activation.kind_of(make_conda(tmp_path / "c")) == "conda"
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="neither a conda environment"):
        activation.kind_of(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a directory"):
        activation.kind_of(tmp_path / "missing")


def test_venv_activation(tmp_path):
    prefix = make_venv(tmp_path / "tools")
    env = activation.activation(prefix)
    assert env == {"PATH": f"{prefix}/bin:${{PATH}}", "VIRTUAL_ENV": str(prefix), "VIRTUAL_ENV_PROMPT": "(tools) "}
    assert activation.python_of(prefix) == f"{prefix}/bin/python"


def test_conda_activation_by_prefix_and_env_vars(tmp_path):
    prefix = make_conda(tmp_path / "climate", {"OMP_NUM_THREADS": "4", "HDF5_USE_FILE_LOCKING": "FALSE"})
    env = activation.activation(prefix)
    assert env["PATH"] == f"{prefix}/bin:${{PATH}}"
    assert env["CONDA_PREFIX"] == str(prefix) and env["CONDA_DEFAULT_ENV"] == str(prefix)
    assert env["CONDA_SHLVL"] == "1" and env["CONDA_PROMPT_MODIFIER"] == f"({prefix}) "
    assert env["OMP_NUM_THREADS"] == "4" and env["HDF5_USE_FILE_LOCKING"] == "FALSE"
    assert activation.python_of(prefix) == f"{prefix}/bin/python3"


def test_named_conda_env_under_envs(tmp_path):
    prefix = make_conda(tmp_path / "miniconda" / "envs" / "py311")
    assert activation.conda_activation(prefix)["CONDA_DEFAULT_ENV"] == "py311"


def test_broken_conda_state_is_ignored(tmp_path):
    prefix = make_conda(tmp_path / "c")
    (prefix / "conda-meta" / "state").write_text("{not json")
    assert activation.conda_env_vars(prefix) == {}


def test_activate_d_scripts_are_listed(tmp_path):
    prefix = make_conda(tmp_path / "c")
    folder = prefix / "etc" / "conda" / "activate.d"
    folder.mkdir(parents=True)
    (folder / "gdal.sh").write_text("export GDAL_DATA=...\n")
    assert activation.activate_d_scripts(prefix) == [str(folder / "gdal.sh")]


def test_substitution_by_jupyter_client(tmp_path):
    """jupyter_client fills ${PATH} from the starting process's environment."""
    from string import Template
    env = activation.activation(make_venv(tmp_path / "v"))
    assert Template(env["PATH"]).safe_substitute({"PATH": "/usr/bin:/bin"}) == f"{tmp_path}/v/bin:/usr/bin:/bin"
