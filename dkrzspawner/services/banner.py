"""The hub's side of announcements: the current ones for the hub's own pages (home, spawn), without JavaScript.

A ``c.JupyterHub.template_vars`` value: JupyterHub calls it with the logged-in user while rendering a page,
synchronously. It reads the announcements service's store (the same database URL, given by the same drop-in)
and keeps the answer ``ttl`` seconds, so a page costs at most one small query per ``ttl``; when the database
cannot be read the last answer stays (or none), and the page renders anyway.
"""

from __future__ import annotations

import logging
import time

from .announcement_store import Store

log = logging.getLogger("dkrzspawner.announcements")

#: Bootstrap alert class per level
ALERT = {"info": "info", "warning": "warning", "critical": "danger"}


class CurrentAnnouncements:
    """Callable for ``template_vars``: the current announcements, ready for a template."""

    def __init__(self, db_url: str, ttl: float = 10.0, clock=time.monotonic):
        self.db_url = db_url
        self.ttl = ttl
        self.clock = clock
        self._store: Store | None = None
        self._items: list[dict] = []
        self._at = float("-inf")

    def __call__(self, user=None) -> list[dict]:
        if user is None:  # the login page: nothing to show to the unknown
            return []
        if self.clock() - self._at >= self.ttl:
            self._at = self.clock()
            try:
                self._store = self._store or Store(self.db_url)
                self._items = [{**item, "alert": ALERT.get(item["level"], "info"),
                                "until": item["end"][:16].replace("T", " ") + " UTC"}
                               for item in self._store.current()]
            except Exception as exc:  # noqa: BLE001 - a page must render without announcements
                log.warning("cannot read announcements from the database: %s", exc)
        return self._items
