"""Render the batch script: pure, data in and text out; imports nothing of dkrzspawner.

Only values of a validated :class:`~dkrzspawner.options.JobRequest` (its ``memory`` and ``runtime`` are Slurm's
text for the numbers it keeps) and the spawner's own settings reach the template (``share/batch_script.sh.j2``);
as a last guard, any value with a line break or control character stops the rendering.
"""

from __future__ import annotations

import functools
import re
import shlex
from importlib import resources

import jinja2
import jinja2.runtime

# No control characters anywhere; in #SBATCH values no white space either (sbatch reads each word as an option).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE = re.compile(r"[\x00-\x20\x7f\s]")


class UnsafeValue(ValueError):
    """A value that could break out of its line in the batch script or add an sbatch option."""


class ShellWords(str):
    """Text already quoted for the shell: it may contain spaces, but no control characters."""


class RenderedBlock(str):
    """A parent block's text as ``{{ super() }}`` gives it: rendered by the template itself, every value in it
    already checked one by one, so its line breaks are the template's own."""


class _ParentBlock(jinja2.runtime.BlockReference):
    """``super()`` in a site's template that extends ours: the parent block's text, marked as rendered."""

    def __call__(self):
        return RenderedBlock(super().__call__())

    @property
    def super(self):
        parent = super().super
        if isinstance(parent, jinja2.runtime.BlockReference):
            parent.__class__ = _ParentBlock
        return parent


class _Context(jinja2.runtime.Context):
    def super(self, name, current):
        parent = super().super(name, current)
        if isinstance(parent, jinja2.runtime.BlockReference):
            parent.__class__ = _ParentBlock
        return parent


def _refuse_unsafe(value):
    if isinstance(value, RenderedBlock):
        return value
    if isinstance(value, str) and (_CONTROL if isinstance(value, ShellWords) else _UNSAFE).search(value):
        raise UnsafeValue(f"refusing to write {value!r} into a batch script")
    return value


def environment(extra_paths=()) -> jinja2.Environment:
    """The template environment: admins' folders first, then the packaged ``share/``. One per list of folders,
    kept: its compiled templates serve every spawn (a class starting at once compiles the script once, not once
    per spawn on the hub's event loop); a template file that changes is read again (Jinja's ``auto_reload``)."""
    return _environment(tuple(extra_paths))


@functools.lru_cache(maxsize=32)
def _environment(extra_paths: tuple[str, ...]) -> jinja2.Environment:
    loaders = [jinja2.FileSystemLoader(list(extra_paths))] if extra_paths else []
    loaders.append(jinja2.FileSystemLoader(str(resources.files("dkrzspawner") / "share")))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_refuse_unsafe,
    )
    env.context_class = _Context
    return env


def render(template: str, *, request, job_name, comment, output, workdir, export_names, path, command,
           modules_init="", module_path=(), extra_paths=(), umask="0022") -> str:
    """The batch script for ``request``; ``command`` is an argument list, quoted here for the shell.

    ``umask`` (octal digits) is set before anything else runs: the job starts with the submission's (0077).

    ``request.modules`` (validated names) are loaded with ``module load`` after sourcing ``modules_init`` with
    ``MODULEPATH`` set to ``module_path``.
    """
    return environment(extra_paths).get_template(template).render(
        request=request,
        job_name=job_name,
        comment=comment,
        output=output,
        workdir=workdir,
        export=",".join(sorted(export_names)),
        path=ShellWords(shlex.quote(path)),
        command=ShellWords(" ".join(shlex.quote(arg) for arg in command)),
        modules=ShellWords(" ".join(shlex.quote(name) for name in request.modules)),
        modules_init=ShellWords(shlex.quote(modules_init)),
        module_path=ShellWords(shlex.quote(":".join(module_path))),
        umask=umask,
    )
