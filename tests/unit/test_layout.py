"""The package's layout as docs/architecture.rst describes it: data flows one way (each module imports only modules of
its own layer or below, no cycles), only the JupyterHub glue imports JupyterHub, no module imports another's private
names, and Slurm's command lines are built only where the architecture says. Read from the source with ``ast``."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "dkrzspawner"

#: the layers, lowest first; a module may import its own layer and the ones below
LAYERS = [
    ("units and plain data", ["units", "patterns", "metrics", "jobcerts", "dropins", "script"]),
    ("running Slurm's commands", ["slurm", "slurm.runner", "slurm.jobs", "slurm.allocations"]),
    ("shared helpers", ["cache", "reasons"]),
    ("what Slurm and Lmod say", ["cluster", "watcher", "modules", "budgets"]),
    ("what a user may ask for", ["options", "policy", "offer", "schema", "extension", "siteconfig", "form",
                                 "migrate"]),
    ("a job's life; kernels", ["lifecycle", "recent", "registry", "kernels", "kernels.*"]),
    ("the JupyterHub glue and the services", ["spawner", "handlers", "errors", "hubconfig", "config_reference",
                                             "singleuser", "leanstart", "services", "services.*", "lab", "lab.*", ""]),
]
#: the only modules that may import JupyterHub or tornado (the kernels and the lifecycle never do)
HUB_SIDE = {"spawner", "handlers", "errors", "hubconfig", "", "services.web", "services.accounts",
            "services.announcements", "config_reference"}
#: the jupyter_server extension: it may import tornado and jupyter_server, never JupyterHub
SERVER_SIDE = {"lab.handlers", "lab.hubapi"}
#: where a Slurm command line may be written: the commands themselves, and the cached fact queries
ARGV_HOMES = {"slurm.runner", "slurm.jobs", "slurm.allocations", "cluster", "budgets"}
SLURM_PROGRAMS = {"sbatch", "squeue", "sacct", "scancel", "salloc", "srun", "scontrol", "sinfo", "sacctmgr"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "share":
            continue  # drop-in configuration files, not modules
        name = ".".join(relative.with_suffix("").parts)
        found[name.removesuffix("__init__").rstrip(".")] = ast.parse(path.read_text(), str(path))
    return found


def layer_of(name: str) -> int:
    for number, (_, members) in enumerate(LAYERS):
        for member in members:
            if name == member or (member.endswith(".*") and name.startswith(member[:-1])):
                return number
    raise AssertionError(f"dkrzspawner.{name or '__init__'} is in no layer: add it to LAYERS and to "
                         "docs/architecture.rst")


def _runtime_nodes(tree: ast.Module):
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip.update(id(child) for child in ast.walk(node))
    return [node for node in ast.walk(tree) if id(node) not in skip]


def imports(name: str, tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for each import of this package and of third parties."""
    package = name.split(".") if name in ("kernels", "services", "slurm", "lab", "") else name.split(".")[:-1]
    package = [part for part in package if part]
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import a, b
                    found += [(f"{target}.{alias.name}".lstrip("."), []) for alias in node.names]
                    continue
                found.append((target, [alias.name for alias in node.names]))
            else:
                found.append((f"//{node.module}", [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(f"//{alias.name}", []) for alias in node.names]
    return found


def own(target: str, known) -> str | None:
    """The package module ``target`` names (a name taken from a package may itself be a module)."""
    if target.startswith("//dkrzspawner"):
        target = target[len("//dkrzspawner"):].lstrip(".")
    elif target.startswith("//"):
        return None
    return target if target in known else None


@pytest.fixture(scope="module")
def package():
    return modules()


def test_every_import_goes_down_or_sideways_and_there_is_no_cycle(package):
    edges = {}
    for name, tree in package.items():
        for target, _ in imports(name, tree):
            target = own(target, package)
            if target is None or target == name:
                continue
            assert layer_of(target) <= layer_of(name), (
                f"dkrzspawner.{name or '__init__'} ({LAYERS[layer_of(name)][0]}) imports dkrzspawner.{target} "
                f"({LAYERS[layer_of(target)][0]}), a layer above it")
            edges.setdefault(name, set()).add(target)

    def visit(node, path):
        for nxt in edges.get(node, ()):
            if nxt == node or (node.startswith(nxt + ".") and nxt in ("slurm", "kernels", "services", "lab")):
                continue  # a package's __init__ re-exporting its modules
            assert nxt not in path, "import cycle: " + " -> ".join([*path, nxt])
            visit(nxt, [*path, nxt])

    for start in edges:
        visit(start, [start])


def test_only_the_hub_glue_imports_jupyterhub_or_tornado(package):
    for name, tree in package.items():
        hub = [target[2:] for target, _ in imports(name, tree)
               if target.startswith(("//jupyterhub", "//tornado"))]
        if name in SERVER_SIDE:
            hub = [target for target in hub if not target.startswith("tornado")]
        if name not in HUB_SIDE:
            assert not hub, f"dkrzspawner.{name} imports {hub}: only {sorted(HUB_SIDE)} may"


def test_only_the_server_extension_imports_jupyter_server(package):
    for name, tree in package.items():
        server = [target[2:] for target, _ in imports(name, tree) if target.startswith("//jupyter_server")]
        if name not in SERVER_SIDE:
            assert not server, f"dkrzspawner.{name} imports {server}: only {sorted(SERVER_SIDE)} may"


def test_no_module_takes_a_private_name_of_another(package):
    for name, tree in package.items():
        for target, names in imports(name, tree):
            if own(target, package) is None and not target.startswith("//dkrzspawner"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"dkrzspawner.{name} imports {private} from {target}"
        aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.level for alias in node.names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                assert False, f"dkrzspawner.{name} uses {node.value.id}.{node.attr}"


def test_slurm_command_lines_are_written_only_where_the_architecture_says(package):
    for name, tree in package.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) > 1:  # a program and its arguments
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value in SLURM_PROGRAMS:
                    assert name in ARGV_HOMES, (f"dkrzspawner.{name} builds a `{first.value}` command line "
                                                f"(line {node.lineno}); that belongs in {sorted(ARGV_HOMES)}")


def test_the_layers_are_the_architecture_pages(package):
    text = (PACKAGE.parent / "docs" / "architecture.rst").read_text()
    for name in package:
        if name and "." not in name:
            assert f"``{name}" in text, f"docs/architecture.rst does not name dkrzspawner.{name}"
