"""``dkrz-kernel create --wrap NAME``: run an installed kernel (R, Julia, another Python, ...) through Slurm.

The installed kernelspec (found by jupyter_client's :class:`~jupyter_client.kernelspec.KernelSpecManager`, in
the user's, the environment's and the system's kernel folders) gives the command (``argv``), ``env``, language
and interrupt mode; the new kernelspec runs that command as the kernel's job step on the compute node. Imports
jupyter_client's kernelspec classes and :mod:`.provisioner`'s name only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

from .provisioner import PROVISIONER_NAME

#: the launcher's icons of a kernel (copied along, so that the wrapped kernel looks like the original)
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


class NotWrappable(ValueError):
    """The kernel cannot be wrapped; the message says why."""


@dataclass(frozen=True)
class Wrapped:
    """What the new kernelspec takes from the installed one."""

    name: str
    argv: list[str]
    env: dict[str, str]
    language: str
    display_name: str
    interrupt_mode: str
    debugger: bool
    logos: tuple[Path, ...]


def read(name: str, manager: KernelSpecManager | None = None) -> Wrapped:
    """The installed kernel ``name``; :class:`NotWrappable` if it is missing, runs through Slurm already,
    is started by another provisioner, or its command does not take a connection file."""
    manager = manager or KernelSpecManager()
    folder = manager.find_kernel_specs().get(name.lower())
    if folder is None:
        raise NotWrappable(f"Wrap: no kernel named {name!r} is installed (see `jupyter kernelspec list`).")
    try:
        spec = manager.get_kernel_spec(name)
    except NoSuchKernel:  # it is there, but names a provisioner that is not installed here
        spec = KernelSpec.from_resource_dir(folder)
    provisioner = (spec.metadata or {}).get("kernel_provisioner") or {}
    started_by = provisioner.get("provisioner_name")
    if started_by == PROVISIONER_NAME:
        raise NotWrappable(f"Wrap: kernel {name} runs through Slurm already; wrap the kernel it was made from.")
    if started_by not in (None, "local-provisioner"):
        raise NotWrappable(f"Wrap: kernel {name} is started by the provisioner {started_by}, not as a command, "
                           "so it cannot be wrapped.")
    if not spec.argv or not any("{connection_file}" in arg for arg in spec.argv):
        raise NotWrappable(f"Wrap: kernel {name}'s command does not take {{connection_file}}, so it cannot be "
                           "told where to listen.")
    folder = Path(spec.resource_dir)
    return Wrapped(name=name, argv=list(spec.argv), env=dict(spec.env or {}), language=spec.language or "",
                   display_name=spec.display_name or name, interrupt_mode=spec.interrupt_mode or "signal",
                   debugger=bool((spec.metadata or {}).get("debugger", False)),
                   logos=tuple(folder / logo for logo in LOGOS if (folder / logo).is_file()))
