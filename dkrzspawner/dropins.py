"""The hub configuration drop-ins that ship with dkrzspawner, and a command that copies them out.

A pip-installed dkrzspawner carries them as package data (``share/jupyterhub_config.d/``). A site copies the ones
it wants into its own ``jupyterhub_config.d/`` (or loads them in place with ``load_subconfig(dropins.path(NAME))``)::

    python -m dkrzspawner.dropins --list
    python -m dkrzspawner.dropins /etc/jupyterhub/jupyterhub_config.d accounts announcements pages

Existing files are never overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "share", "jupyterhub_config.d")


def names() -> list[str]:
    """The shipped drop-ins, by name (file name without ``.py``), sorted."""
    return sorted(f[:-3] for f in os.listdir(FOLDER) if f.endswith(".py"))


def path(name: str) -> str:
    """The shipped drop-in ``name``'s file, for ``load_subconfig``; a ValueError names the known ones."""
    if name not in names():
        raise ValueError(f"No drop-in {name!r}; there are: {', '.join(names())}.")
    return os.path.join(FOLDER, name + ".py")


def summary(name: str) -> str:
    """The first line of the drop-in's docstring."""
    with open(path(name), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return doc.splitlines()[0] if doc else ""


def copy(folder: str, wanted: list[str] | None = None, force: bool = False) -> list[str]:
    """Copy the drop-ins named in ``wanted`` (all when empty) into ``folder``; returns the files written."""
    wanted = wanted or names()
    sources = [path(name) for name in wanted]  # every name checked before anything is written
    targets = [os.path.join(folder, os.path.basename(source)) for source in sources]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not force:
        raise FileExistsError(f"Not overwriting {', '.join(existing)} (use --force).")
    os.makedirs(folder, exist_ok=True)
    for source, target in zip(sources, targets):
        shutil.copyfile(source, target)
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dkrzspawner.dropins",
                                     description="Copy dkrzspawner's hub configuration drop-ins into a folder.")
    parser.add_argument("folder", nargs="?", help="where to copy them (your jupyterhub_config.d/)")
    parser.add_argument("names", nargs="*", help="which ones (default: all)")
    parser.add_argument("--list", action="store_true", help="list the shipped drop-ins and stop")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist")
    args = parser.parse_args(argv)
    if args.list or not args.folder:
        for name in names():
            print(f"{name:14} {summary(name)}")
        return 0
    try:
        written = copy(args.folder, args.names, force=args.force)
    except (ValueError, FileExistsError) as exc:
        print(f"dkrzspawner.dropins: {exc}", file=sys.stderr)
        return 2
    for target in written:
        print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
