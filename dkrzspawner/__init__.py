"""dkrzspawner: a JupyterHub spawner for Slurm HPC centres.

The spawner class is loaded lazily, so that the job-side wrapper (``dkrzspawner.singleuser``) and the kernels
start without importing JupyterHub's hub side. JupyterHub loads it through this package (the entry point ``dkrz``,
or ``dkrzspawner.DKRZSpawner``): that is the moment the hub's API handlers for the job side's reports are added
(:func:`dkrzspawner.handlers.register`), before the hub builds its web application. Importing a module of the
package has no such effect.
"""

__version__ = "0.1.0"
__all__ = ["DKRZSpawner", "templates_path"]


def templates_path() -> str:
    """Folder of dkrzspawner's hub page templates, for ``c.JupyterHub.template_paths``."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def __getattr__(name):
    if name == "DKRZSpawner":
        from . import errors, handlers
        from .spawner import DKRZSpawner

        handlers.register()
        errors.quiet_link_confirmations()
        return DKRZSpawner
    raise AttributeError(f"module 'dkrzspawner' has no attribute {name!r}")
