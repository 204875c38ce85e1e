"""``dkrz-kernel``: make Jupyter kernels that run on compute nodes through Slurm, or in one's own environment.

    dkrz-kernel create --template python-slurm --name analysis --preset shared --cores 2
    dkrz-kernel create --template conda-slurm --name climate --environment ~/envs/climate --partition gpu --gpus 1
    dkrz-kernel create --template python-slurm --name shared-alloc --job-id 1234 --node l40123
    dkrz-kernel create --template python-slurm --name mpi --partition shared --cores 4 --tasks 4
    dkrz-kernel create --wrap ir --name r-compute --preset shared --env PROJ_HOME=/work/bb1234/proj
    dkrz-kernel register-env ~/venvs/mytools --name mytools
    dkrz-kernel list
    dkrz-kernel remove analysis
    dkrz-kernel install-system --config /etc/dkrzspawner/system-kernels.toml     # as root

Kernels go to the user's Jupyter data dir (``jupyter --data-dir``/kernels); ``install-system`` writes the
admins' kernels (:mod:`.system`) into a system kernel folder. Options are checked with the
spawner's options model before anything is written: first their shape (no Slurm involved at all), then, for
Slurm kernels, against what Slurm says about partitions, limits and the user's accounts (read-only queries):
the checks and the writing are :mod:`.templates`', which the JupyterLab extension's REST API uses alike.
Imports the core (site file, cluster facts, modules, options, the Slurm runner and
:mod:`~dkrzspawner.slurm.allocations`) and the other modules of :mod:`dkrzspawner.kernels`; never JupyterHub.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import os
import sys
from pathlib import Path

from .. import siteconfig
from ..modules import ModuleCatalog
from ..options import OptionsError
from ..slurm import SlurmRunner
from . import kernelspec, system, templates, wrap
from .templates import SHARE, TEMPLATES, kernel_name, kernels_dir, render, write_kernel

__all__ = ["SHARE", "TEMPLATES", "kernels_dir", "render", "main", "parser"]


class CLIError(Exception):
    """A refusal: printed as one line, exit status 2, nothing written."""


def run(coroutine):
    """Run ``coroutine`` to its end: in this thread, or, when the caller of :func:`main` runs an event loop already
    (IPython, a test), in a thread of its own with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def options_from_args(args) -> dict:
    """The kernel's options, only those given, with JSON types."""
    config = {}
    for key in ("preset", "partition", "account", "nodes", "cores", "memory", "gpus", "runtime", "reservation",
                "tasks"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    if args.modules:
        config["modules"] = [m for chunk in args.modules for m in chunk.split(",") if m]
    if args.job_id is not None:
        config["job_id"] = args.job_id
    if args.node is not None:
        config["node"] = args.node
    return config


def user_env(texts) -> dict[str, str]:
    """``--env NAME=VALUE`` (repeated) as a kernelspec ``env``; CLIError naming the bad one."""
    for text in texts or ():
        if "=" not in text and os.path.isdir(os.path.expanduser(text)):
            raise CLIError(f"--env takes NAME=VALUE (a variable for the kernel); give the environment's folder "
                           f"{text} with --environment.")
    try:
        return kernelspec.check_env(kernelspec.env_pairs(texts))
    except OptionsError as exc:
        raise CLIError(str(exc)) from None


def _notes(written: templates.Written) -> None:
    for note in written.notes:
        print(f"dkrz-kernel: note: {note}", file=sys.stderr)


def cmd_create(args, runner=None) -> int:
    name = kernel_name(args.name)
    config = options_from_args(args)
    variables = user_env(args.env)
    if args.wrap and (args.python or args.environment):
        raise CLIError("--wrap runs the installed kernel's own command, so it takes neither --python nor "
                       "--environment.")
    if args.wrap:
        try:
            options = run(templates.check_options(config, runner=runner, with_slurm=not args.no_check))
        except (OptionsError, siteconfig.SiteConfigError) as exc:
            raise CLIError(str(exc)) from None
        return _create_wrapped(name, args, options, config, variables)
    written = run(templates.create_kernel(
        args.template, args.name, options=config, display_name=args.display_name, environment=args.environment,
        env=variables, python=args.python, force=args.force, runner=runner, with_slurm=not args.no_check))
    _notes(written)
    print(f"Created kernel {written.name} in {written.folder}")
    return 0


def _create_wrapped(name: str, args, options, config: dict, variables: dict) -> int:
    """``create --wrap KERNEL``: the installed kernel's command, env and language, run through Slurm."""
    try:
        wrapped = wrap.read(args.wrap)
    except wrap.NotWrappable as exc:
        raise CLIError(str(exc)) from None
    display = args.display_name or f"{wrapped.display_name} (Slurm: {kernelspec.describe(options)})"
    about = {"template": "argv-slurm", "created_by": "dkrz-kernel", "wraps": wrapped.name}
    spec = render("argv-slurm", argv=wrapped.argv, display_name=display, language=wrapped.language,
                  interrupt_mode=wrapped.interrupt_mode, env={**wrapped.env, **variables},
                  debugger=wrapped.debugger, about=about, config=config)
    folder = write_kernel(name, spec, force=args.force, files=wrapped.logos)
    if not os.path.isabs(wrapped.argv[0]):
        print(f"dkrz-kernel: note: {wrapped.argv[0]} is looked up in the PATH of the compute node.",
              file=sys.stderr)
    print(f"Created kernel {name} in {folder}, running kernel {wrapped.name} through Slurm")
    return 0


def cmd_register_env(args, runner=None) -> int:
    written = run(templates.register_env(args.path, name=args.name, display_name=args.display_name,
                                                 env=user_env(args.env), force=args.force,
                                                 check=not args.no_check))
    _notes(written)
    print(f"Registered {written.kind} environment {written.environment} as kernel {written.name} in "
          f"{written.folder}")
    return 0


def cmd_install_system(args, runner=None) -> int:
    """Check the admins' file (:mod:`.system`), then write its kernels into the system kernel folder."""
    if os.geteuid() != 0:
        raise CLIError("install-system writes kernels for every user, so it runs as root "
                       "(sudo dkrz-kernel install-system ...).")
    try:
        config = system.load(args.config)
        catalog = ModuleCatalog(runner or SlurmRunner(), lmod_command=config.modules.lmod_command,
                                module_path=config.modules.module_path)
        offered = run(catalog.offered(logging.getLogger("dkrz-kernel")))
        system.check(config, offered)
    except system.SystemConfigError as exc:
        raise CLIError(str(exc)) from None
    names = [kernel_name(kernel.name) for kernel in config.kernel]
    if not args.no_check:
        for kernel in config.kernel:
            if kernel.slurm:
                try:
                    run(templates.check_options(kernel.options, runner=runner))
                except OptionsError as exc:
                    raise CLIError(f"System kernel {kernel.name!r}: {exc}") from None
    base = system.kernels_dir(args.prefix)
    base.mkdir(parents=True, exist_ok=True)
    for name, kernel in zip(names, config.kernel):
        template, values = system.kernelspec(kernel, config.modules)
        folder = write_kernel(name, render(template, **values), base=base,
                              force=args.force or _is_system_kernel(base / name))
        print(f"Installed system kernel {name} ({'Slurm' if kernel.slurm else 'local'}, modules "
              f"{' '.join(kernel.modules) or 'none'}) in {folder}")
    return 0


def _is_system_kernel(folder: Path) -> bool:
    """Whether ``folder`` holds a kernel that install-system wrote (which it replaces without --force)."""
    try:
        spec = json.loads((folder / "kernel.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(((spec.get("metadata") or {}).get("dkrzspawner") or {}).get("system"))


def cmd_list(args, runner=None) -> int:
    kernels = templates.installed()
    if args.json:
        print(json.dumps(kernels, indent=2))
        return 0
    if not kernels:
        print(f"No kernels in {kernels_dir()}")
        return 0
    for kernel in kernels:
        where = "slurm " + json.dumps(kernel["config"], sort_keys=True) if kernel["slurm"] else "local"
        print(f"{kernel['name']:24} {kernel['display_name']:40} {where}")
    return 0


def cmd_remove(args, runner=None) -> int:
    templates.remove_kernel(args.name)
    print(f"Removed kernel {kernel_name(args.name)}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dkrz-kernel", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create a kernel that runs on a compute node through Slurm")
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument("--template", choices=list(templates.templates()))
    what.add_argument("--wrap", metavar="KERNEL",
                      help="run this installed kernel (see `jupyter kernelspec list`) on the compute node")
    create.add_argument("--name", required=True)
    create.add_argument("--display-name")
    create.add_argument("--environment", metavar="PATH",
                        help="environment prefix (conda env; for python-slurm also a virtualenv)")
    create.add_argument("--env", action="append", metavar="NAME=VALUE",
                        help="a variable for the kernel (the kernelspec's env); repeatable")
    create.add_argument("--python", help="the Python that runs the kernel (default: the environment's, or this one)")
    group = create.add_mutually_exclusive_group()
    group.add_argument("--preset")
    group.add_argument("--partition")
    create.add_argument("--account")
    create.add_argument("--nodes", type=int)
    create.add_argument("--cores", type=int)
    create.add_argument("--memory")
    create.add_argument("--gpus", type=int)
    create.add_argument("--runtime")
    create.add_argument("--reservation")
    create.add_argument("--tasks", type=int, help="tasks of the allocation, for srun in the notebook")
    create.add_argument("--modules", action="append", help="module names, comma-separated or repeated")
    create.add_argument("--job-id", help="run in this existing allocation (never cancelled by the kernel)")
    create.add_argument("--node", help="with --job-id: run on this node of the allocation (default: its first)")
    create.add_argument("--force", action="store_true", help="replace a kernel of the same name")
    create.add_argument("--no-check", action="store_true",
                        help="check the options' shape only, not against Slurm's limits")
    create.set_defaults(func=cmd_create)

    register = sub.add_parser("register-env", help="a local kernel (no Slurm) for your conda env or virtualenv")
    register.add_argument("path")
    register.add_argument("--name")
    register.add_argument("--display-name")
    register.add_argument("--env", action="append", metavar="NAME=VALUE",
                          help="a variable for the kernel (the kernelspec's env); repeatable")
    register.add_argument("--force", action="store_true")
    register.add_argument("--no-check", action="store_true", help="do not check that ipykernel is installed")
    register.set_defaults(func=cmd_register_env)

    listing = sub.add_parser("list", help="list your kernels")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    remove = sub.add_parser("remove", help="remove one of your kernels")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_remove)

    install = sub.add_parser("install-system", help="(root) install the admins' module-based kernels for "
                                                    "every user")
    install.add_argument("--config", required=True, help="the kernels' declarations (TOML, or JSON)")
    install.add_argument("--prefix", help="install into PREFIX/share/jupyter/kernels (default: "
                                          f"{system.kernels_dir(None)})")
    install.add_argument("--force", action="store_true",
                         help="replace kernels of the same names that install-system did not write")
    install.add_argument("--no-check", action="store_true",
                         help="check the Slurm kernels' options for shape only, not against Slurm's limits")
    install.set_defaults(func=cmd_install_system)
    return top


def main(argv=None, runner=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args, runner=runner)
    except OSError as exc:
        print(f"dkrz-kernel: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    except (CLIError, templates.KernelRefused) as exc:
        print(f"dkrz-kernel: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
