"""The spawn failures users see: one exception type for JupyterHub 5 and 6, with a clean message; and the notice
of a spawn link, which pre-fills the form instead of starting a job."""

from __future__ import annotations

import logging

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


#: the id the spawn page looks for to show a spawn link's notice as a notice, not as an error
LINK_NOTICE_ID = "dkrz-link-notice"


class SpawnLinkToConfirm(web.HTTPError):
    """Raised by ``options_from_query``: a spawn link pre-fills the form and never starts a job by itself.

    JupyterHub then renders the form (status 200) with this notice; the user confirms with Start, a POST that
    JupyterHub protects against cross-site requests. A link on any other web page can thus not spend the
    user's budget.
    """

    MESSAGE = "This link has filled in the form below; check it, then press Start to submit the job."

    def __init__(self):
        super().__init__(200, self.MESSAGE)
        self.jupyterhub_message = self.MESSAGE
        self.jupyterhub_html_message = f'<span id="{LINK_NOTICE_ID}">{self.MESSAGE}</span>'


def _not_a_link_confirmation(record) -> bool:
    """False for JupyterHub's "Failed to spawn ... with query arguments" record when it is about our
    :class:`SpawnLinkToConfirm` (not a failure: the form is shown as intended, and the spawner logs that)."""
    return not (record.exc_info and isinstance(record.exc_info[1], SpawnLinkToConfirm))


def quiet_link_confirmations(logger_name: str = "JupyterHub") -> None:
    """Keep the hub's log free of a traceback for every spawn link that is shown pre-filled (once per process)."""
    logger = logging.getLogger(logger_name)
    if _not_a_link_confirmation not in logger.filters:
        logger.addFilter(_not_a_link_confirmation)
