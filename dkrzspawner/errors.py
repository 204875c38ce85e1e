"""The spawn failures users see: one exception type for JupyterHub 5 and 6, with a clean message."""

from __future__ import annotations

from tornado import web

try:  # JupyterHub >= 6
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5
    SpawnException = None


def spawn_error(message: str, reason: str, status_code: int = 400) -> web.HTTPError:
    """An expected spawn failure whose message the user sees as is (REST answer, form and progress page).

    ``jupyterhub_message`` is what JupyterHub's pages show; without it JupyterHub 6 shows
    ``400 SpawnException(reason=...): ...`` on the re-rendered spawn form.
    """
    if SpawnException is not None:
        error = SpawnException(message, reason=reason, status_code=status_code)
    else:
        error = web.HTTPError(status_code, message)
    error.jupyterhub_message = message
    return error
