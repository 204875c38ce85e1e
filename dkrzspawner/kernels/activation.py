"""What activating an environment sets, as a kernelspec ``env`` (pure functions, no process started; imports
only the standard library).

``env`` values may use ``${NAME}``: jupyter_client substitutes them from the environment of the process that
starts the kernel, so ``"PATH": "/env/bin:${PATH}"`` prepends like ``activate`` does.

Conda's ``activate`` also runs the env's ``etc/conda/activate.d`` scripts; a kernelspec cannot run them (no
shell is involved), :func:`activate_d_scripts` lists them so the CLI can say so. Variables set with
``conda env config vars set`` (kept in ``conda-meta/state``) are applied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class NotAnEnvironment(ValueError):
    """The path is not an environment this module can activate."""


def kind_of(prefix: str | os.PathLike) -> str:
    """``conda`` (has ``conda-meta/``), ``venv`` (has ``pyvenv.cfg``); ValueError otherwise."""
    path = Path(prefix)
    if not path.is_dir():
        raise NotAnEnvironment(f"{path} is not a directory.")
    if (path / "conda-meta").is_dir():
        return "conda"
    if (path / "pyvenv.cfg").is_file():
        return "venv"
    raise NotAnEnvironment(f"{path} is neither a conda environment (no conda-meta/) nor a virtualenv "
                            "(no pyvenv.cfg).")


def python_of(prefix: str | os.PathLike) -> str:
    """The environment's Python interpreter."""
    for name in ("bin/python", "bin/python3"):
        candidate = Path(prefix) / name
        if candidate.exists():
            return str(candidate)
    raise NotAnEnvironment(f"{prefix} has no bin/python.")


def conda_env_vars(prefix: str | os.PathLike) -> dict[str, str]:
    """Variables set with ``conda env config vars set`` (``conda-meta/state``'s ``env_vars``)."""
    state = Path(prefix) / "conda-meta" / "state"
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError):
        return {}
    found = data.get("env_vars") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items() if isinstance(k, str) and k and "\x00" not in str(v)}


def activate_d_scripts(prefix: str | os.PathLike) -> list[str]:
    """Activation scripts conda would source (``etc/conda/activate.d/*.sh``), which a kernelspec cannot run."""
    folder = Path(prefix) / "etc" / "conda" / "activate.d"
    return sorted(str(p) for p in folder.glob("*.sh")) if folder.is_dir() else []


def conda_activation(prefix: str | os.PathLike, name: str | None = None) -> dict[str, str]:
    """What ``conda activate PREFIX`` sets (for a first-level activation)."""
    prefix = str(Path(prefix).absolute())
    env_name = name or (os.path.basename(prefix) if "/envs/" in prefix else prefix)
    env = {
        "PATH": f"{prefix}/bin:${{PATH}}",
        "CONDA_PREFIX": prefix,
        "CONDA_DEFAULT_ENV": env_name,
        "CONDA_SHLVL": "1",
        "CONDA_PROMPT_MODIFIER": f"({env_name}) ",
    }
    env.update(conda_env_vars(prefix))
    return env


def venv_activation(prefix: str | os.PathLike) -> dict[str, str]:
    """What ``source PREFIX/bin/activate`` sets."""
    prefix = str(Path(prefix).absolute())
    return {
        "PATH": f"{prefix}/bin:${{PATH}}",
        "VIRTUAL_ENV": prefix,
        "VIRTUAL_ENV_PROMPT": f"({os.path.basename(prefix)}) ",
    }


def activation(prefix: str | os.PathLike, kind: str | None = None) -> dict[str, str]:
    """The activation variables of ``prefix`` (its kind found out unless given)."""
    kind = kind or kind_of(prefix)
    return conda_activation(prefix) if kind == "conda" else venv_activation(prefix)
