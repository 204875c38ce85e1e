"""dkrzspawner: a JupyterHub spawner for Slurm HPC centres.

The spawner class is loaded lazily, so that the job-side wrapper (``dkrzspawner.singleuser``) starts
without importing JupyterHub's hub side.
"""

__version__ = "0.1.0"
__all__ = ["DKRZSpawner", "templates_path"]


def templates_path() -> str:
    """Folder of dkrzspawner's hub page templates, for ``c.JupyterHub.template_paths``."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def __getattr__(name):
    if name == "DKRZSpawner":
        from .spawner import DKRZSpawner

        return DKRZSpawner
    raise AttributeError(f"module 'dkrzspawner' has no attribute {name!r}")
