"""Job side: start the Jupyter server in this interpreter with the imports it does not need to answer deferred.

Usage: ``dkrzspawner-leanstart [--defer MODULE]... -- COMMAND [ARGS...]``. The spawner puts it between
the wrapper (:mod:`dkrzspawner.singleuser`) and ``jupyterhub-singleuser`` when ``DKRZSpawner.lean_job_start`` is
on. Each ``--defer`` module is replaced by a stand-in until one of its functions is first called, at which
moment the real module is imported and the call goes to it: nothing is lost, only moved to the first use. The
default is ``rfc3987_syntax``: jsonschema imports it for its ``iri`` format check (jupyter_server's event schemas
load jsonschema at start), and its import builds an Earley grammar, about a second of CPU on a compute node,
though no schema the server loads at start asks for that format.

``COMMAND`` runs in this interpreter (``runpy``) when it is a Python script for the interpreter of this very
environment (the console scripts of ``pip install``); anything else is executed unchanged, without deferring.
Imports only the standard library.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import types

USAGE = "usage: dkrzspawner-leanstart [--defer MODULE]... -- COMMAND [ARGS...]"


class Deferred(types.ModuleType):
    """The stand-in for a module: each attribute is a function that imports the real module on its first call
    and calls the real function of that name. For modules that the importer uses only through functions, as
    jsonschema uses ``rfc3987_syntax.is_valid_syntax``."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        module_name = self.__name__

        def forward(*args, **kwargs):
            return getattr(load(module_name), name)(*args, **kwargs)

        forward.__name__ = forward.__qualname__ = name
        return forward


def defer(name: str) -> None:
    """Put a stand-in for module ``name`` in place, unless the module is already imported."""
    sys.modules.setdefault(name, Deferred(name))


def load(name: str) -> types.ModuleType:
    """The real module ``name``, imported now if its stand-in is still in place."""
    if isinstance(sys.modules.get(name), Deferred):
        del sys.modules[name]
    return importlib.import_module(name)


def runs_here(command: str) -> bool:
    """True if ``command`` is a Python script whose ``#!`` names an interpreter of this environment's ``bin/``."""
    try:
        with open(command, "rb") as f:
            first = f.readline(512)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    interpreter = first[2:].split()[0].decode(errors="replace") if first[2:].split() else ""
    here = os.path.dirname(os.path.abspath(sys.executable))
    return os.path.dirname(interpreter) == here and os.path.basename(interpreter).startswith("python")


def parse(argv: list[str]) -> tuple[list[str], list[str]]:
    """(modules to defer, command) from the command line; exits with the usage on anything else."""
    deferred = []
    while argv and argv[0] == "--defer" and len(argv) > 1:
        deferred.append(argv[1])
        argv = argv[2:]
    if not argv or argv[0] != "--" or len(argv) < 2:
        raise SystemExit(USAGE)
    return deferred, argv[1:]


def main(argv=None) -> None:
    deferred, command = parse(list(sys.argv[1:] if argv is None else argv))
    if not runs_here(command[0]):
        os.execvp(command[0], command)
    for name in deferred:
        defer(name)
    sys.argv = command
    sys.path[0] = os.path.dirname(os.path.abspath(command[0]))  # as if Python ran the script (never the cwd)
    runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
