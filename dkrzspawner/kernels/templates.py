"""The user's own kernels, made from the package's templates and the site's own: create, edit, register an
environment, list, remove; and the environments the user may pick. One code path for ``dkrz-kernel`` (:mod:`.cli`) and the
JupyterLab extension's REST API (:mod:`dkrzspawner.lab`): both validate with :func:`check_options` (the hub's
offer from the site file, :func:`dkrzspawner.siteconfig.for_kernels`, and the cluster's facts) and write the same
kernel.json. A refusal is :class:`KernelRefused`, one sentence naming the field; nothing is written then.

Kernels go to the user's Jupyter data dir (``jupyter --data-dir``/kernels). Slurm is asked only read-only
queries (partitions, limits, accounts, the Lmod catalogue, an existing allocation's nodes). Imports the core (site
file, cluster facts, offer, options, the Slurm runner and :mod:`~dkrzspawner.slurm.allocations`) and
:mod:`.activation` and :mod:`.kernelspec`; never JupyterHub.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jupyter_core.paths import jupyter_data_dir
from pydantic import BaseModel, ConfigDict, Field

from .. import siteconfig
from ..cluster import Cluster
from ..offer import Offer
from ..options import OptionsError, check_modules
from ..slurm import SlurmError, SlurmRunner, allocations
from . import activation, kernelspec

@dataclass(frozen=True)
class Template:
    """A template users make Slurm kernels from: the package's (``base`` is its own name) or the site's, which
    starts from one of the package's with default Slurm ``options`` (the dialog's starting values; what the user
    sends wins)."""

    name: str
    display_name: str
    description: str = ""
    base: str = "python-slurm"
    options: dict = field(default_factory=dict)

    @property
    def needs_environment(self) -> bool:
        return self.base == "conda-slurm"

    def as_dict(self) -> dict:
        return {"name": self.name, "display_name": self.display_name, "description": self.description,
                "needs_environment": self.needs_environment, "options": dict(self.options)}


#: the package's Slurm templates (``share/kernels/NAME/kernel.json.j2``)
SLURM_TEMPLATES = {
    "python-slurm": Template("python-slurm", "Python via Slurm", "This server's Python (ipykernel) on a compute "
                                                                 "node, in an allocation of its own.", "python-slurm"),
    "conda-slurm": Template("conda-slurm", "Conda via Slurm", "One of your conda environments (it needs ipykernel) "
                                                              "on a compute node, in an allocation of its own.",
                            "conda-slurm"),
}
TEMPLATES = tuple(SLURM_TEMPLATES)
#: where a site puts templates of its own: a folder NAME/ with a template.json (display_name, description, base:
#: one of :data:`TEMPLATES`, options); the variable, if set, replaces this list (folders separated by ``:``)
SITE_TEMPLATE_DIRS = ("/etc/dkrzspawner/kernels", f"{sys.prefix}/share/dkrzspawner/kernels")
SITE_TEMPLATES_ENV = "DKRZSPAWNER_KERNEL_TEMPLATES"
KERNEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
SHARE = Path(__file__).resolve().parent.parent / "share" / "kernels"
log = logging.getLogger("dkrzspawner.kernels")
#: conda installs in the home whose ``envs/`` folders hold the user's environments
CONDA_HOMES = ("miniconda3", "miniforge3", "anaconda3", ".conda")


class KernelRefused(ValueError):
    """A refused kernel: ``field`` names what was wrong (None: nothing the user typed), the message says why."""

    def __init__(self, field: str | None, message: str):
        self.field = field
        super().__init__(message)


@dataclass
class Written:
    """A kernel written: its name, folder and display name, and notes for the user (what does not apply)."""

    name: str
    folder: Path
    display_name: str
    notes: list[str] = field(default_factory=list)
    environment: Path | None = None  # the environment's folder, if it has one
    kind: str | None = None  # a registered environment's kind (conda, venv)


class _SiteTemplate(BaseModel):
    """A site's template.json."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    base: str = "python-slurm"
    options: dict = {}


def templates(environ=None) -> dict[str, Template]:
    """The package's Slurm templates, then the site's own (:data:`SITE_TEMPLATE_DIRS`), by name. A site template
    that cannot be read is left out with a warning in the log; one cannot replace a package template."""
    environ = os.environ if environ is None else environ
    found = dict(SLURM_TEMPLATES)
    folders = environ[SITE_TEMPLATES_ENV].split(":") if SITE_TEMPLATES_ENV in environ else SITE_TEMPLATE_DIRS
    for folder in (Path(f) for f in folders if f):
        for path in sorted(folder.glob("*/template.json")) if folder.is_dir() else ():
            name = path.parent.name
            try:
                read = _SiteTemplate.model_validate_json(path.read_text())
                if not KERNEL_NAME.fullmatch(name) or name in found or read.base not in SLURM_TEMPLATES:
                    raise ValueError(f"the folder must be a new kernel name and base one of {', '.join(TEMPLATES)}")
            except (OSError, ValueError) as exc:
                log.warning("Kernel template %s is left out: %s", path, str(exc).splitlines()[0])
                continue
            found[name] = Template(name, read.display_name, read.description, read.base, read.options)
    return found


def template_list() -> list[dict]:
    """The templates, as the JupyterLab extension lists them."""
    return [template.as_dict() for template in templates().values()]


def with_defaults(defaults: dict, options: dict) -> dict:
    """``options`` with the template's ``defaults`` for what they leave out; defaults of the other kind of request
    (a preset's or a partition's) are dropped when ``options`` chooses one."""
    advanced = ("partition", "memory", "gpus", "reservation", "nodes")
    if "preset" in options:
        defaults = {k: v for k, v in defaults.items() if k not in advanced}
    elif "partition" in options:
        defaults = {k: v for k, v in defaults.items() if k != "preset"}
    return {**defaults, **options}


def kernels_dir() -> Path:
    """The user's kernels: ``jupyter --data-dir``/kernels."""
    return Path(jupyter_data_dir()) / "kernels"


def render(template: str, base: str | None = None, **values) -> dict:
    """A kernel.json from ``share/kernels/BASE/kernel.json.j2`` (``base``: the template's own by default), its
    metadata naming ``template``, parsed (so it is valid JSON)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(SHARE)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True)
    text = env.get_template(f"{base or template}/kernel.json.j2").render(template=template, **values)
    return json.loads(text)


def kernel_name(name: str) -> str:
    """The kernel's folder name (lower case); KernelRefused (field ``name``) if it is not one."""
    lowered = (name or "").lower() if isinstance(name, str) else ""
    if not KERNEL_NAME.fullmatch(lowered):
        raise KernelRefused("name", f"Name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with "
                                    "a letter or digit.")
    return lowered


async def cluster_facts(runner, user: str, site: siteconfig.SiteConfig, offer: Offer):
    """The cluster's facts for ``user`` (read-only queries, nothing cached) with the site's Lmod catalogue."""
    snapshot = await Cluster(runner, ttl=0, all_users=False).snapshot(user)
    offered = await site.module_catalog(runner).offered(logging.getLogger("dkrz-kernel"))
    return offer.facts_from(snapshot, modules=offered)


async def check_options(config: dict, *, runner=None, with_slurm: bool = True) -> kernelspec.KernelOptions:
    """Shape first (no Slurm), then the cluster's facts, against what the hub offers this user (the site file,
    see :func:`dkrzspawner.siteconfig.for_kernels`), and the nodes of the allocation ``node`` picks from.
    Returns the KernelOptions; raises OptionsError, or SiteConfigError for a site file that cannot be used."""
    site = siteconfig.for_kernels()
    user = getpass.getuser()
    offer = siteconfig.kernel_offer(site, user)
    options = kernelspec.check_shape(config, offer)
    runner = runner or SlurmRunner()
    if with_slurm and (options.modules or not options.reuses_allocation):
        facts = await cluster_facts(runner, user, site, offer)
        admin_modules = () if options.reuses_allocation else kernelspec.to_job_request(options, offer, facts).modules
        check_modules(options.modules, facts, admin_modules)
    if with_slurm and options.node is not None:
        try:
            shape = await allocations.shape_of(runner, options.job_id, 30.0)
        except SlurmError as exc:
            raise OptionsError("job_id", f"Job id {options.job_id} is not a running allocation of yours "
                                         f"({exc.reason}).") from None
        kernelspec.check_node(options.node, options.job_id, shape.hostnames)
    return options


def variables(pairs) -> dict[str, str]:
    """Variables for the kernelspec's ``env`` (pairs or a dict); KernelRefused (field ``env``) naming the bad one."""
    try:
        return kernelspec.check_env(pairs or {})
    except OptionsError as exc:
        raise KernelRefused(exc.field, str(exc)) from None


def environment_prefix(path, field_name: str = "environment") -> Path:
    """An environment's folder, absolute; KernelRefused when it is no folder."""
    if not isinstance(path, str) or not path or "\n" in path:
        raise KernelRefused(field_name, "Environment must be the path of a conda environment or virtualenv.")
    prefix = Path(os.path.expanduser(path)).absolute()
    if not prefix.is_dir():
        raise KernelRefused(field_name, f"Environment {path} does not exist or is not a directory.")
    return prefix


async def check_ipykernel(python: str, field_name: str = "path") -> None:
    """KernelRefused unless ``python`` can import ipykernel (run in a clean environment, at most 60 s)."""
    try:
        process = await asyncio.create_subprocess_exec(
            python, "-c", "import ipykernel", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())})
    except OSError as exc:
        raise KernelRefused(field_name, f"Cannot run {python}: {exc.strerror}.") from None
    try:
        code = await asyncio.wait_for(process.wait(), 60)
    except asyncio.TimeoutError:
        process.kill()
        raise KernelRefused(field_name, f"Cannot run {python}: it did not answer within 60 s.") from None
    if code != 0:
        raise KernelRefused(field_name, f"ipykernel is not installed in the environment of {python}; install it "
                                        "there first (pip install ipykernel, or conda install ipykernel).")


def write_kernel(name: str, spec: dict, *, force: bool = False, base: Path | None = None, files=()) -> Path:
    """Write ``BASE/NAME/kernel.json`` (BASE: the user's kernels dir) atomically, with ``files`` copied along
    (a wrapped kernel's logos); refuse to overwrite unless ``force``. Folder and files are world-readable."""
    folder = (base or kernels_dir()) / name
    if folder.exists() and not force:
        raise KernelRefused("name", f"A kernel named {name} exists already ({folder}); remove it first, or "
                                    "replace it (--force).")
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


async def create_kernel(template: str, name: str, *, options: dict, display_name: str | None = None,
                        environment: str | None = None, env=None, python: str | None = None, force: bool = False,
                        runner=None, with_slurm: bool = True) -> Written:
    """Check, then write a Slurm kernel from ``template`` (:data:`TEMPLATES`) with ``options`` (the Slurm options
    as ``user_options``; they become the provisioner's config). ``environment``: the conda env (conda-slurm, which
    needs one) or a virtualenv (python-slurm); ``env``: variables for the kernel; ``force``: replace a kernel of
    the same name. Raises KernelRefused (nothing written)."""
    known = templates()
    if template not in known:
        raise KernelRefused("template", f"Template {template!r} is not one of {', '.join(known)}.")
    folder_name = kernel_name(name)
    if not isinstance(options, dict):
        raise KernelRefused("options", "Options must be an object of Slurm options (a preset or a partition).")
    chosen = known[template]
    options = with_defaults(chosen.options, options)
    extra = variables(env)
    if display_name is not None and (not isinstance(display_name, str) or len(display_name) > 200):
        raise KernelRefused("display_name", "Display name must be a text of at most 200 characters.")
    try:
        checked = await check_options(options, runner=runner, with_slurm=with_slurm)
    except (OptionsError, siteconfig.SiteConfigError) as exc:
        raise KernelRefused(getattr(exc, "field", None), str(exc)) from None
    notes: list[str] = []
    values: dict = {}
    prefix = None
    if chosen.needs_environment:
        if not environment:
            raise KernelRefused("environment", f"The {template} template needs --environment PATH (the conda "
                                               "environment's prefix).")
        prefix = environment_prefix(environment)
        values = activation.conda_activation(prefix)
        if not (prefix / "conda-meta").is_dir():
            notes.append(f"{prefix} has no conda-meta/; activating it the way conda would anyway.")
        notes += [f"{script} is not run (a kernel starts without a shell)."
                  for script in activation.activate_d_scripts(prefix)]
    elif environment:
        prefix = environment_prefix(environment)
        try:
            values = activation.activation(prefix)
        except activation.NotAnEnvironment as exc:
            raise KernelRefused("environment", str(exc)) from None
    try:
        interpreter = python or (activation.python_of(prefix) if prefix else sys.executable)
    except activation.NotAnEnvironment as exc:
        raise KernelRefused("environment", str(exc)) from None
    display = display_name or f"{name} (Slurm: {kernelspec.describe(checked)})"
    spec = render(template, chosen.base, python=interpreter, display_name=display, env={**values, **extra},
                  config=options, prefix=str(prefix) if prefix else None)
    return Written(folder_name, write_kernel(folder_name, spec, force=force), display, notes, prefix)


async def register_env(path: str, *, name: str | None = None, display_name: str | None = None, env=None,
                       force: bool = False, check: bool = True) -> Written:
    """A local kernel (no Slurm) for the user's conda env or virtualenv at ``path``; ``check``: refuse one
    without ipykernel. Raises KernelRefused (nothing written)."""
    prefix = environment_prefix(path, "path")
    try:
        kind = activation.kind_of(prefix)
        python = activation.python_of(prefix)
    except activation.NotAnEnvironment as exc:
        raise KernelRefused("path", str(exc)) from None
    folder_name = kernel_name(name or prefix.name)
    if display_name is not None and (not isinstance(display_name, str) or len(display_name) > 200):
        raise KernelRefused("display_name", "Display name must be a text of at most 200 characters.")
    extra = variables(env)
    if check:
        await check_ipykernel(python)
    display = display_name or f"{name or prefix.name} ({kind}: {prefix})"
    spec = render("local-env", python=python, display_name=display, env={**activation.activation(prefix, kind),
                                                                          **extra}, prefix=str(prefix), kind=kind)
    notes = ([f"{script} is not run (a kernel starts without a shell)."
              for script in activation.activate_d_scripts(prefix)] if kind == "conda" else [])
    folder = write_kernel(folder_name, spec, force=force)
    return Written(folder_name, folder, display, notes, prefix, kind)


def installed() -> list[dict]:
    """The user's own kernels (in their Jupyter data dir), with what this module knows of them."""
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
        ours = meta.get("dkrzspawner") or {}
        found.append({
            "name": entry.name,
            "display_name": spec.get("display_name", ""),
            "template": ours.get("template"),
            "slurm": provisioner.get("provisioner_name") == "dkrz-slurm-provisioner",
            "config": provisioner.get("config") or {},
            "environment": ours.get("environment"),
            "kind": ours.get("kind"),
            "path": str(entry),
        })
    return found


def remove_kernel(name: str) -> None:
    """Remove one of the user's kernels; KernelRefused (field ``name``) when there is none of that name."""
    folder_name = kernel_name(name)
    folder = kernels_dir() / folder_name
    if not (folder / "kernel.json").is_file():
        raise KernelRefused("name", f"No kernel named {folder_name} in {kernels_dir()}.")
    shutil.rmtree(folder)


def environments(home: Path | None = None) -> list[dict]:
    """The user's environments to pick from: conda's own list (``~/.conda/environments.txt``), the ``envs/``
    folders of the conda installs in the home (:data:`CONDA_HOMES`), and the environments registered as kernels
    (``register-env``); each once, as ``{"path", "kind", "name"}``, only those that still exist."""
    home = home or Path.home()
    candidates: list[Path] = []
    try:
        listed = (home / ".conda" / "environments.txt").read_text().splitlines()
    except OSError:
        listed = []
    candidates += [Path(line.strip()) for line in listed if line.strip().startswith("/")]
    for install in CONDA_HOMES:
        envs = home / install / "envs"
        if envs.is_dir():
            candidates += sorted(path for path in envs.iterdir() if path.is_dir())
    candidates += [Path(kernel["environment"]) for kernel in installed()
                   if kernel["kind"] and kernel["environment"]]
    found, seen = [], set()
    for path in candidates:
        if str(path) in seen:
            continue
        seen.add(str(path))
        try:
            kind = activation.kind_of(path)
        except activation.NotAnEnvironment:
            continue
        found.append({"path": str(path), "kind": kind, "name": path.name})
    return found
