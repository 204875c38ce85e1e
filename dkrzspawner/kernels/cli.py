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
Slurm kernels, against what Slurm says about partitions, limits and the user's accounts (read-only queries).
Imports the core (site file, cluster facts, modules, options, the Slurm runner and
:mod:`~dkrzspawner.slurm.allocations`) and the other modules of :mod:`dkrzspawner.kernels`; never JupyterHub.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2
from jupyter_core.paths import jupyter_data_dir

from .. import siteconfig
from ..cluster import Cluster
from ..modules import ModuleCatalog
from ..offer import Offer
from ..options import OptionsError, check_modules
from ..slurm import SlurmError, SlurmRunner, allocations
from . import activation, kernelspec, system, wrap

TEMPLATES = ("python-slurm", "conda-slurm")
KERNEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
SHARE = Path(__file__).resolve().parent.parent / "share" / "kernels"


class CLIError(Exception):
    """A refusal: printed as one line, exit status 2, nothing written."""


def kernels_dir() -> Path:
    return Path(jupyter_data_dir()) / "kernels"


def render(template: str, **values) -> dict:
    """A kernel.json from ``share/kernels/TEMPLATE/kernel.json.j2``, parsed (so it is valid JSON)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(SHARE)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True)
    text = env.get_template(f"{template}/kernel.json.j2").render(template=template, **values)
    return json.loads(text)


def kernel_name(name: str) -> str:
    """The kernel's folder name (lower case); CLIError if it is not one."""
    lowered = (name or "").lower()
    if not KERNEL_NAME.fullmatch(lowered):
        raise CLIError(f"Name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                       "or digit.")
    return lowered


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


async def _facts(runner, user: str, site: siteconfig.SiteConfig, offer: Offer):
    snapshot = await Cluster(runner, ttl=0).snapshot(user)
    offered = await site.module_catalog(runner).offered(logging.getLogger("dkrz-kernel"))
    return offer.facts_from(snapshot, modules=offered)


def check_options(config: dict, *, runner=None, with_slurm: bool = True):
    """Shape first (no Slurm), then the cluster's facts, against what the hub offers this user (the site file,
    see :func:`dkrzspawner.siteconfig.for_kernels`), and the nodes of the allocation ``node`` picks from.
    Returns the KernelOptions; raises OptionsError, or SiteConfigError for a site file that cannot be used."""
    site = siteconfig.for_kernels()
    user = getpass.getuser()
    offer = siteconfig.kernel_offer(site, user)
    options = kernelspec.check_shape(config, offer)
    runner = runner or SlurmRunner()
    if with_slurm and (options.modules or not options.reuses_allocation):
        facts = asyncio.run(_facts(runner, user, site, offer))
        admin_modules = () if options.reuses_allocation else kernelspec.to_job_request(options, offer, facts).modules
        check_modules(options.modules, facts, admin_modules)
    if with_slurm and options.node is not None:
        try:
            shape = asyncio.run(allocations.shape_of(runner, options.job_id, 30.0))
        except SlurmError as exc:
            raise OptionsError("job_id", f"Job id {options.job_id} is not a running allocation of yours "
                                         f"({exc.reason}).") from None
        kernelspec.check_node(options.node, options.job_id, shape.hostnames)
    return options


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


def _environment(path: str) -> Path:
    prefix = Path(os.path.expanduser(path)).absolute()
    if not prefix.is_dir():
        raise CLIError(f"Environment {path} does not exist or is not a directory.")
    return prefix


def _check_ipykernel(python: str) -> None:
    try:
        done = subprocess.run([python, "-c", "import ipykernel"], capture_output=True, timeout=60,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CLIError(f"Cannot run {python}: {exc}") from None
    if done.returncode != 0:
        raise CLIError(f"ipykernel is not installed in the environment of {python}; install it there first "
                       "(pip install ipykernel, or conda install ipykernel).")


def write_kernel(name: str, spec: dict, *, force: bool = False, base: Path | None = None, files=()) -> Path:
    """Write ``BASE/NAME/kernel.json`` (BASE: the user's kernels dir) atomically, with ``files`` copied along
    (a wrapped kernel's logos); refuse to overwrite unless ``force``. Folder and files are world-readable."""
    folder = (base or kernels_dir()) / name
    if folder.exists() and not force:
        raise CLIError(f"A kernel named {name} exists already ({folder}); remove it first or use --force.")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for source in files:
        shutil.copyfile(source, folder / source.name)
        os.chmod(folder / source.name, 0o644)
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as handle:
        json.dump(spec, handle, indent=2)
        handle.write("\n")
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, folder / "kernel.json")
    return folder


def cmd_create(args, runner=None) -> int:
    name = kernel_name(args.name)
    config = options_from_args(args)
    variables = user_env(args.env)
    if args.wrap and (args.python or args.environment):
        raise CLIError("--wrap runs the installed kernel's own command, so it takes neither --python nor "
                       "--environment.")
    try:
        options = check_options(config, runner=runner, with_slurm=not args.no_check)
    except (OptionsError, siteconfig.SiteConfigError) as exc:
        raise CLIError(str(exc)) from None
    if args.wrap:
        return _create_wrapped(name, args, options, config, variables)
    env: dict[str, str] = {}
    prefix = None
    python = args.python or sys.executable
    if args.template == "conda-slurm":
        if not args.environment:
            raise CLIError("The conda-slurm template needs --environment PATH (the conda environment's prefix).")
        prefix = _environment(args.environment)
        python = activation.python_of(prefix) if not args.python else args.python
        if not (prefix / "conda-meta").is_dir():
            print(f"dkrz-kernel: note: {prefix} has no conda-meta/; activating it the way conda would anyway.",
                  file=sys.stderr)
        for script in activation.activate_d_scripts(prefix):
            print(f"dkrz-kernel: note: {script} is not run (a kernel starts without a shell).", file=sys.stderr)
        env = activation.conda_activation(prefix)
    elif args.environment:
        prefix = _environment(args.environment)
        kind = activation.kind_of(prefix)
        python = activation.python_of(prefix) if not args.python else args.python
        env = activation.activation(prefix, kind)
    display = args.display_name or f"{args.name} (Slurm: {kernelspec.describe(options)})"
    spec = render(args.template, python=python, display_name=display, env={**env, **variables}, config=config,
                  prefix=str(prefix) if prefix else None)
    folder = write_kernel(name, spec, force=args.force)
    print(f"Created kernel {name} in {folder}")
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
    try:
        prefix = _environment(args.path)
        kind = activation.kind_of(prefix)
        python = activation.python_of(prefix)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    name = kernel_name(args.name or prefix.name)
    if not args.no_check:
        _check_ipykernel(python)
    env = {**activation.activation(prefix, kind), **user_env(args.env)}
    display = args.display_name or f"{args.name or prefix.name} ({kind}: {prefix})"
    spec = render("local-env", python=python, display_name=display, env=env, prefix=str(prefix), kind=kind)
    folder = write_kernel(name, spec, force=args.force)
    if kind == "conda":
        for script in activation.activate_d_scripts(prefix):
            print(f"dkrz-kernel: note: {script} is not run (a kernel starts without a shell).", file=sys.stderr)
    print(f"Registered {kind} environment {prefix} as kernel {name} in {folder}")
    return 0


def installed() -> list[dict]:
    """The user's own kernels (in their Jupyter data dir), with what this tool knows of them."""
    found = []
    folder = kernels_dir()
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        try:
            spec = json.loads((entry / "kernel.json").read_text())
        except (OSError, ValueError):
            continue
        meta = spec.get("metadata") or {}
        provisioner = meta.get("kernel_provisioner") or {}
        found.append({
            "name": entry.name,
            "display_name": spec.get("display_name", ""),
            "template": (meta.get("dkrzspawner") or {}).get("template"),
            "slurm": provisioner.get("provisioner_name") == "dkrz-slurm-provisioner",
            "config": provisioner.get("config") or {},
            "path": str(entry),
        })
    return found


def cmd_install_system(args, runner=None) -> int:
    """Check the admins' file (:mod:`.system`), then write its kernels into the system kernel folder."""
    if os.geteuid() != 0:
        raise CLIError("install-system writes kernels for every user, so it runs as root "
                       "(sudo dkrz-kernel install-system ...).")
    try:
        config = system.load(args.config)
        catalog = ModuleCatalog(runner or SlurmRunner(), lmod_command=config.modules.lmod_command,
                                module_path=config.modules.module_path)
        offered = asyncio.run(catalog.offered(logging.getLogger("dkrz-kernel")))
        system.check(config, offered)
    except system.SystemConfigError as exc:
        raise CLIError(str(exc)) from None
    names = [kernel_name(kernel.name) for kernel in config.kernel]
    if not args.no_check:
        for kernel in config.kernel:
            if kernel.slurm:
                try:
                    check_options(kernel.options, runner=runner)
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
    kernels = installed()
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
    name = kernel_name(args.name)
    folder = kernels_dir() / name
    if not (folder / "kernel.json").is_file():
        raise CLIError(f"No kernel named {name} in {kernels_dir()}.")
    shutil.rmtree(folder)
    print(f"Removed kernel {name}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dkrz-kernel", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create a kernel that runs on a compute node through Slurm")
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument("--template", choices=TEMPLATES)
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
    except CLIError as exc:
        print(f"dkrz-kernel: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
