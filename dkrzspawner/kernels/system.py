"""System kernels: kernels built on environment modules that the site's admins declare and install for everyone.

DKRZ offered kernels such as "Python 3 from anaconda3/bleeding_edge": a module list and a command. Admins write
them into a TOML (or JSON) file; ``dkrz-kernel install-system --config FILE`` (as root) checks them and writes
world-readable kernelspecs into a system kernel folder, where every user's JupyterLab finds them::

    [modules]                      # optional; these are the defaults (as the spawner's)
    lmod_command = "/usr/share/lmod/lmod/libexec/lmod"
    module_path = ["/sw/modulefiles"]          # default: the folders in /etc/lmod/modulespath
    init = "/usr/share/lmod/lmod/init/bash"

    [[kernel]]
    name = "python3-bleeding"
    display_name = "Python 3 (anaconda3/bleeding_edge)"
    modules = ["anaconda3/bleeding_edge"]
    argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]

    [[kernel]]
    name = "python3-bleeding-compute"
    display_name = "Python 3 (anaconda3/bleeding_edge) on a compute node"
    modules = ["anaconda3/bleeding_edge"]
    argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    slurm = true
    options = {preset = "shared", cores = 2, runtime = "02:00:00"}

A local kernel (``slurm = false``, the default) runs where the user's Jupyter server runs: bash with fixed text
(:data:`~dkrzspawner.modules.LOAD_AND_EXEC`) loads the modules, named through the environment, then becomes the
kernel. A Slurm kernel is an ordinary ``dkrz-slurm-provisioner`` kernelspec whose options carry the modules: the
provisioner loads them in the kernel's job step. The modules are checked against the cluster's ``module avail``
when the kernels are installed (and again by the provisioner when a Slurm kernel starts). Imports pydantic,
jupyter_core's paths, the core's :mod:`~dkrzspawner.modules` and :mod:`~dkrzspawner.options`, and
:mod:`.kernelspec`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from jupyter_core.paths import SYSTEM_JUPYTER_PATH
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import modules as lmod
from ..modules import LOAD_AND_EXEC, job_environment
from ..offer import Facts
from ..options import OptionsError, check_modules
from .kernelspec import CONTROL, check_env, check_shape


class SystemConfigError(ValueError):
    """The admins' file is refused; the message names the kernel and the field."""


class ModulesSetup(BaseModel):
    """Where Lmod is (the defaults are the spawner's ``lmod_command``, ``module_path`` and ``modules_init``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lmod_command: str = lmod.DEFAULT_LMOD
    module_path: list[str] = Field(default_factory=lmod.default_module_path)
    init: str = lmod.DEFAULT_INIT


class SystemKernel(BaseModel):
    """One declared kernel."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    display_name: str
    argv: list[str]
    modules: list[str] = Field(default_factory=list)
    language: str = "python"
    env: dict[str, str] = Field(default_factory=dict)
    interrupt_mode: Literal["signal", "message"] = "signal"
    slurm: bool = False
    #: the Slurm kernel's options (as ``dkrz-kernel create`` takes them: preset, partition, cores, ...)
    options: dict = Field(default_factory=dict)


class SystemConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    modules: ModulesSetup = Field(default_factory=ModulesSetup)
    kernel: list[SystemKernel] = Field(min_length=1)


def load(path: str | Path) -> SystemConfig:
    """The file (``.toml``, otherwise JSON), checked for shape; :class:`SystemConfigError` otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SystemConfigError(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:
        raise SystemConfigError(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") \
            from None
    try:
        return SystemConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the file"
        if error["loc"][:1] == ("kernel",) and len(error["loc"]) > 1 and isinstance(data, dict):
            try:
                where = f"kernel {data['kernel'][error['loc'][1]]['name']!r}: " + ".".join(
                    str(part) for part in error["loc"][2:])
            except (KeyError, IndexError, TypeError):
                pass
        raise SystemConfigError(f"{path}: {where}: {error['msg']}.") from None


def check(config: SystemConfig, offered_modules) -> None:
    """What the shape does not say: unique names, commands, variables, the Slurm options' shape, and the modules
    against ``offered_modules`` (``module avail``; None when Lmod did not answer). The names' form is the
    CLI's (:func:`.cli.kernel_name`)."""
    seen = set()
    for kernel in config.kernel:
        label = f"System kernel {kernel.name!r}"
        if kernel.name.lower() in seen:
            raise SystemConfigError(f"{label} is declared twice.")
        seen.add(kernel.name.lower())
        if not kernel.display_name.strip() or CONTROL.search(kernel.display_name):
            raise SystemConfigError(f"{label}: display_name must be one line of text.")
        if not kernel.argv or any(not arg or CONTROL.search(arg) for arg in kernel.argv):
            raise SystemConfigError(f"{label}: argv must be a list of non-empty one-line texts.")
        if not any("{connection_file}" in arg for arg in kernel.argv):
            raise SystemConfigError(f"{label}: argv must pass {{connection_file}} to the kernel.")
        if "modules" in kernel.options:
            raise SystemConfigError(f"{label}: the modules go into the kernel's modules, not into its options.")
        if kernel.options and not kernel.slurm:
            raise SystemConfigError(f"{label}: options are Slurm options; set slurm = true or leave them out.")
        try:
            check_env(kernel.env)
            if kernel.slurm:
                shape = check_shape({**kernel.options, "modules": kernel.modules})
                if shape.reuses_allocation:
                    raise OptionsError("job_id", "Job id names one user's allocation; a system kernel cannot "
                                                 "have one.")
            if kernel.modules and offered_modules is None:
                raise OptionsError("modules", "Modules: Lmod gave no list of modules (is lmod_command right?), "
                                              "so they cannot be checked.")
            check_modules(kernel.modules, Facts(modules=offered_modules))
        except OptionsError as exc:
            raise SystemConfigError(f"{label}: {exc}") from None


def kernelspec(kernel: SystemKernel, setup: ModulesSetup) -> tuple[str, dict]:
    """The template (under ``share/kernels``) and its values for one checked kernel."""
    about = {"created_by": "dkrz-kernel install-system", "system": True, "modules": kernel.modules}
    values = {"display_name": kernel.display_name, "language": kernel.language, "debugger": kernel.language ==
              "python", "interrupt_mode": kernel.interrupt_mode}
    if kernel.slurm:
        config = {**kernel.options, "modules": kernel.modules} if kernel.modules else dict(kernel.options)
        return "argv-slurm", {**values, "argv": kernel.argv, "env": kernel.env, "config": config,
                              "about": {**about, "template": "argv-slurm"}}
    argv, env = list(kernel.argv), dict(kernel.env)
    if kernel.modules:
        argv = ["/bin/bash", "-c", LOAD_AND_EXEC, "dkrz-kernel", *argv]
        env.update(job_environment(setup.init, kernel.modules), MODULEPATH=":".join(setup.module_path))
    return "argv-local", {**values, "argv": argv, "env": env, "about": {**about, "template": "argv-local"}}


def kernels_dir(prefix: str | None) -> Path:
    """Where system kernels go: ``PREFIX/share/jupyter/kernels`` (as ``jupyter kernelspec install --prefix``),
    or the first system Jupyter folder (``/usr/local/share/jupyter/kernels`` on Linux)."""
    base = Path(prefix) / "share" / "jupyter" if prefix else Path(SYSTEM_JUPYTER_PATH[0])
    return base / "kernels"
