"""Turn a wrapspawner ``c.ProfilesSpawner.profiles`` list into dkrzspawner presets.

Each profile is ``(display, key, spawner_class, config)`` with a batchspawner ``SlurmSpawner`` as the class and
its ``req_*`` settings in ``config``. What a preset can hold is translated:

- ``req_partition`` -> ``partition`` (required),
- ``req_nprocs`` -> ``cores`` (one choice),
- ``req_memory`` (per job) -> ``memory_per_core`` (divided by the cores, in MB),
- ``req_runtime`` -> ``runtime`` and ``max_runtime`` (users could not change it in batchspawner either).

Everything else is refused with the reason and what to do instead; nothing is dropped silently. Neither
batchspawner nor wrapspawner is imported: the console command reads the site's config file without running it.

    dkrzspawner-migrate-profiles /etc/jupyterhub/jupyterhub_config.py
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass, field

from .options import Preset, load_presets
from .units import SLUG, format_runtime, memory_mb, slurm_duration_seconds as duration_seconds

#: settings a batchspawner profile may carry that cannot become part of a preset, and what to do instead
NOT_TRANSLATED = {
    "req_account": "a preset does not fix the account: users pick one of their own Slurm accounts in the form "
                   "(default: their default account)",
    "req_ngpus": "presets have no GPUs: offer the GPU partition in the Advanced tab (c.DKRZSpawner.partitions, "
                 "max_gpus)",
    "req_gres": "presets have no GPUs or other generic resources: offer the partition in the Advanced tab "
                "(c.DKRZSpawner.partitions)",
    "req_qos": "dkrzspawner sets no QOS: the association's default QOS applies",
    "req_reservation": "a preset cannot name a reservation: users choose one in the Advanced tab",
    "req_cluster": "dkrzspawner submits to one cluster only",
    "req_options": "extra sbatch options go into your own batch-script template (c.DKRZSpawner.batch_script_template)",
    "req_prologue": "commands before the server go into your own batch-script template "
                    "(c.DKRZSpawner.batch_script_template)",
    "req_epilogue": "commands after the server go into your own batch-script template "
                    "(c.DKRZSpawner.batch_script_template)",
    "req_queue": "SlurmSpawner's script does not use it: use req_partition",
    "req_srun": "dkrzspawner starts the server itself",
    "req_host": "dkrzspawner runs Slurm commands on the hub host",
    "req_username": "jobs always run as the hub user's own Unix account",
    "req_homedir": "dkrzspawner takes the home directory from the user's Unix account",
    "req_keepvars": "dkrzspawner passes an explicit list of variables to the job",
    "req_keepvars_extra": "dkrzspawner passes an explicit list of variables to the job",
}
TRANSLATED = ("req_partition", "req_nprocs", "req_memory", "req_runtime")
PROFILES_TARGET = "c.ProfilesSpawner.profiles"


class MigrationError(ValueError):
    """Profiles that cannot be translated; ``problems`` has one sentence per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass
class Converted:
    """One profile as a preset, with notes for the config snippet (a renamed key, rounded memory)."""

    name: str
    preset: dict
    notes: list[str] = field(default_factory=list)


def class_name(spawner_class) -> str:
    """A spawner class, given as a class or as its dotted name, as its dotted name."""
    if isinstance(spawner_class, type):
        return f"{spawner_class.__module__}.{spawner_class.__qualname__}"
    return str(spawner_class)


def is_slurm_spawner(spawner_class) -> bool:
    """Whether a profile's class is batchspawner's ``SlurmSpawner`` (by name: batchspawner is never imported)."""
    parts = class_name(spawner_class).split(".")
    return parts[-1] == "SlurmSpawner" and (len(parts) == 1 or parts[0] == "batchspawner")


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", str(key).strip().lower()).strip("-")[:32]


def convert_profile(profile) -> Converted:
    """One ``(display, key, spawner_class, config)`` profile as a preset; MigrationError lists every problem."""
    if not isinstance(profile, (tuple, list)) or len(profile) != 4:
        raise MigrationError([f"{profile!r} is not a profile (display, key, spawner class, config)"])
    display, key, spawner_class, config = profile
    where = f"profile {key!r}"
    problems = []
    if not is_slurm_spawner(spawner_class):
        problems.append(f"{where} uses {class_name(spawner_class)}; only batchspawner's SlurmSpawner profiles "
                        "become presets (dkrzspawner runs every server as a Slurm job)")
    if not isinstance(config, dict):
        raise MigrationError(problems + [f"{where}: its config must be a dict"])
    given = {name: value for name, value in config.items() if not _empty(value)}
    if given.get("req_ngpus") is not None and str(given["req_ngpus"]).strip() == "0":
        given.pop("req_ngpus")
    for name in given:
        if name in NOT_TRANSLATED:
            problems.append(f"{where}: {name} cannot be translated: {NOT_TRANSLATED[name]}")
        elif name not in TRANSLATED:
            problems.append(f"{where}: {name} is not a batchspawner SlurmSpawner setting the helper knows; set the "
                            "matching c.DKRZSpawner setting by hand (see the configuration reference) and remove "
                            "it from the profile")
    name = _slug(key)
    if not SLUG.fullmatch(name):
        problems.append(f"{where}: the key cannot become a preset name (a lower-case slug starting with a letter)")
    if "req_partition" not in given:
        problems.append(f"{where}: req_partition is missing; a preset needs a partition")
    notes = [] if name == key else [f"key {key!r} renamed to {name!r}"]
    preset = {"display_name": str(display), "partition": str(given.get("req_partition", ""))}
    cores = None
    if "req_nprocs" in given:
        try:
            cores = int(str(given["req_nprocs"]).strip())
            preset["cores"] = [cores]
        except ValueError:
            problems.append(f"{where}: req_nprocs {given['req_nprocs']!r} is not a whole number")
    if "req_memory" in given:
        try:
            total = memory_mb(str(given["req_memory"]).strip().upper().removesuffix("B"))
        except ValueError:
            problems.append(f"{where}: req_memory {given['req_memory']!r} is not a size in Slurm's units")
        else:
            per_core = total // (cores or 1)
            preset["memory_per_core"] = f"{per_core}M"
            if per_core * (cores or 1) != total:
                notes.append(f"req_memory {given['req_memory']} rounded down to {per_core}M per core")
    if "req_runtime" in given:
        try:
            seconds = duration_seconds(str(given["req_runtime"]))
        except ValueError:
            seconds = None
        if seconds is None:
            problems.append(f"{where}: req_runtime {given['req_runtime']!r} is not a limited Slurm time")
        else:
            preset["runtime"] = preset["max_runtime"] = format_runtime(seconds)
    if problems:
        raise MigrationError(problems)
    try:
        load_presets({name: preset})
    except ValueError as exc:
        raise MigrationError([f"{where}: {exc}"]) from None
    return Converted(name=name, preset=preset, notes=notes)


def convert_profiles(profiles) -> list[Converted]:
    """Every profile as a preset, in order; MigrationError lists the problems of all profiles at once."""
    if not isinstance(profiles, (list, tuple)) or not profiles:
        raise MigrationError(["the profiles must be a non-empty list"])
    converted, problems = [], []
    for profile in profiles:
        try:
            converted.append(convert_profile(profile))
        except MigrationError as exc:
            problems += exc.problems
    seen = {}
    for item in converted:
        if item.name in seen:
            problems.append(f"profiles {seen[item.name]!r} and {item.preset['display_name']!r} both become preset "
                            f"{item.name!r}; give them different keys")
        seen.setdefault(item.name, item.preset["display_name"])
    if problems:
        raise MigrationError(problems)
    return converted


def profiles_to_presets(profiles) -> dict[str, dict]:
    """A ``c.ProfilesSpawner.profiles`` list as the value for ``c.DKRZSpawner.presets``.

    Raises :class:`MigrationError` naming every profile setting that cannot be translated.
    """
    return {item.name: item.preset for item in convert_profiles(profiles)}


def config_snippet(profiles) -> str:
    """Python for ``jupyterhub_config.py`` that replaces the ProfilesSpawner configuration."""
    lines = [
        f"# dkrzspawner presets, translated from {PROFILES_TARGET} by dkrzspawner-migrate-profiles.",
        "# They replace the ProfilesSpawner settings: remove those (and batchspawner's) from the config.",
        'c.JupyterHub.spawner_class = "dkrz"',
        "c.DKRZSpawner.presets = {",
    ]
    defaults = Preset.model_fields
    for item in convert_profiles(profiles):
        for note in item.notes:
            lines.append(f"    # {note}")
        lines.append(f"    {json.dumps(item.name)}: {{")
        for key, value in item.preset.items():
            lines.append(f"        {json.dumps(key)}: {json.dumps(value)},")
        for key in ("cores", "memory_per_core", "runtime", "max_runtime"):
            if key not in item.preset:
                default = defaults[key].default
                shown = list(default) if isinstance(default, tuple) else default
                lines.append(f"        # {json.dumps(key)}: {json.dumps(shown)},  (the default)")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dotted(node) -> str | None:
    """``batchspawner.SlurmSpawner`` written as a name in the config, as text; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _literal(node):
    """A literal value, or a ``dict(name=literal, ...)`` call as wrapspawner's examples write a profile's config."""
    if isinstance(node, ast.Call) and _dotted(node.func) == "dict" and not node.args:
        if any(keyword.arg is None for keyword in node.keywords):
            raise ValueError("dict(**...)")
        return {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
    return ast.literal_eval(node)


def _profile_value(node):
    """One profile from the syntax tree: literals only, except the spawner class, which may be a name."""
    if not isinstance(node, (ast.Tuple, ast.List)) or len(node.elts) != 4:
        raise MigrationError([f"line {node.lineno}: a profile must be a literal (display, key, class, config)"])
    display, key, spawner_class, config = node.elts
    try:
        values = [ast.literal_eval(display), ast.literal_eval(key), None, _literal(config)]
    except (ValueError, TypeError, SyntaxError):
        raise MigrationError([f"line {node.lineno}: the profile is not written as literal values; the helper "
                              "reads the config without running it"]) from None
    values[2] = _dotted(spawner_class)
    if values[2] is None:
        try:
            values[2] = ast.literal_eval(spawner_class)
        except (ValueError, TypeError, SyntaxError):
            raise MigrationError([f"line {node.lineno}: the spawner class must be a name or a string"]) from None
    return tuple(values)


def read_profiles(source: str) -> list[tuple]:
    """The profiles from a config file's text (its last ``c.ProfilesSpawner.profiles = [...]``), or from a
    file that is just the list. The file is parsed, never run."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise MigrationError([f"line {exc.lineno}: not Python: {exc.msg}"]) from None
    value = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(_dotted(target) == PROFILES_TARGET for target in node.targets):
            if value is None or node.lineno > value.lineno:
                value = node.value
    if value is None and len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        value = tree.body[0].value
    if value is None:
        raise MigrationError([f"no `{PROFILES_TARGET} = [...]` found"])
    if not isinstance(value, (ast.List, ast.Tuple)):
        raise MigrationError([f"line {value.lineno}: {PROFILES_TARGET} must be a literal list; the helper reads "
                              "the config without running it"])
    return [_profile_value(element) for element in value.elts]


def main(argv=None) -> int:
    """``dkrzspawner-migrate-profiles [FILE]``: print the presets config for a ProfilesSpawner config."""
    parser = argparse.ArgumentParser(
        prog="dkrzspawner-migrate-profiles",
        description=f"Print dkrzspawner presets for the {PROFILES_TARGET} list in FILE (read, never run).",
    )
    parser.add_argument("file", nargs="?", default="-",
                        help="jupyterhub_config.py, or a file holding just the list; '-' (default): standard input")
    args = parser.parse_args(argv)
    try:
        if args.file == "-":
            source = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                source = handle.read()
        print(config_snippet(read_profiles(source)), end="")
    except OSError as exc:
        print(f"dkrzspawner-migrate-profiles: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 1
    except MigrationError as exc:
        print("dkrzspawner-migrate-profiles: cannot translate these profiles:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
