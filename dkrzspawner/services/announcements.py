"""The announcements service at ``/services/announcements/``: maintenance windows and news for the hub's users.

- ``GET  api/announcements``: the current ones (start <= now < end), for any logged-in user; an editor may add
  ``?all=1`` for every stored one;
- ``POST api/announcements``, ``PUT``/``DELETE api/announcements/<id>``: editors only: the hub's admins, and
  whoever holds the scope :data:`WRITE_SCOPE` through a role; others get 403, bad input 400;
- the page lists the current announcements; editors also get forms to create, change and delete them.

Run by the hub (see the drop-in ``share/jupyterhub_config.d/announcements.py``)::

    python -m dkrzspawner.services.announcements [--db-url sqlite:////srv/hub/announcements.sqlite]
"""

from __future__ import annotations

import argparse
import os

from tornado import web

from . import announcement_store as store_module
from .web import ApiHandler, PageHandler, make_app, serve

#: the custom hub scope that lets a role's members create, change and delete announcements (admins always may)
WRITE_SCOPE = "custom:announcements:write"
#: the database when neither ``--db-url`` nor :data:`DB_ENV` says otherwise
DEFAULT_DB_URL = "sqlite:///dkrz-announcements.sqlite"
#: the environment variable with the SQLAlchemy URL of the database
DB_ENV = "DKRZ_ANNOUNCEMENTS_DB_URL"


class _Editing:
    """What the page and the API share: the store, and who may write."""

    @property
    def store(self) -> store_module.Store:
        return self.context["store"]

    @property
    def editor(self) -> bool:
        """A hub admin (the hub says so in the user model), or a holder of :data:`WRITE_SCOPE`."""
        return bool((self.current_user or {}).get("admin")) or self.has_scope(WRITE_SCOPE)

    def require_editor(self):
        if not self.editor:
            raise web.HTTPError(403, "only hub admins may change announcements")


class AnnouncementsPage(_Editing, PageHandler):
    """The page: current announcements; forms for editors (plain HTML forms, no JavaScript needed)."""

    @web.authenticated
    def get(self):
        self.show()

    @web.authenticated
    def post(self):
        self.require_editor()
        action = self.get_body_argument("action", "")
        fields = {name: self.get_body_argument(name, "") for name in ("text", "level", "start", "end")}
        try:
            if action == "delete":
                self.store.delete(self._ident())
            elif action in ("create", "update"):
                item = store_module.parse(fields)
                if action == "create":
                    self.store.add(item, author=self.user_name)
                elif self.store.replace(self._ident(), item, author=self.user_name) is None:
                    raise store_module.InvalidAnnouncement("That announcement no longer exists.")
            else:
                raise store_module.InvalidAnnouncement("Unknown action.")
        except store_module.InvalidAnnouncement as exc:
            self.show(error=str(exc), draft=fields, status=400)
            return
        self.redirect(self.request.path)

    def _ident(self) -> int:
        try:
            return int(self.get_body_argument("id", ""))
        except ValueError:
            raise store_module.InvalidAnnouncement("id: must be a number.") from None

    def show(self, error: str = "", draft=None, status: int = 200):
        self.render_page("announcements.html", status=status, current=self.store.current(), editor=self.editor,
                         stored=self.store.all() if self.editor else [], levels=[level.value for level in store_module.Level],
                         error=error, draft=draft or {}, max_text=store_module.MAX_TEXT)


class AnnouncementsApi(_Editing, ApiHandler):
    """``api/announcements``: list (anyone logged in) and create (editors)."""

    @web.authenticated
    def get(self):
        if self.get_query_argument("all", "") in ("1", "true"):
            self.require_editor()
            self.write_json({"announcements": self.store.all()})
        else:
            self.write_json({"announcements": self.store.current()})

    @web.authenticated
    def post(self):
        self.require_editor()
        self.write_json(self.store.add(_validated(self), author=self.user_name), status=201)


def _validated(handler: ApiHandler) -> store_module.AnnouncementIn:
    """The request's JSON body as an announcement, or a 400 naming what is wrong."""
    try:
        return store_module.parse(handler.json_body())
    except store_module.InvalidAnnouncement as exc:
        raise web.HTTPError(400, "%s", str(exc)) from None


class AnnouncementApi(_Editing, ApiHandler):
    """``api/announcements/<id>``: change or delete one (editors)."""

    @web.authenticated
    def get(self, ident):
        self.require_editor()
        found = [item for item in self.store.all() if item["id"] == int(ident)]
        if not found:
            raise web.HTTPError(404, "no such announcement")
        self.write_json(found[0])

    @web.authenticated
    def put(self, ident):
        self.require_editor()
        changed = self.store.replace(int(ident), _validated(self), author=self.user_name)
        if changed is None:
            raise web.HTTPError(404, "no such announcement")
        self.write_json(changed)

    @web.authenticated
    def delete(self, ident):
        self.require_editor()
        if not self.store.delete(int(ident)):
            raise web.HTTPError(404, "no such announcement")
        self.set_status(204)
        self.finish()


def make_announcements_app(store: store_module.Store) -> web.Application:
    """The service's tornado application around ``store``."""
    return make_app([
        ("", AnnouncementsPage),
        (r"api/announcements/?", AnnouncementsApi),
        (r"api/announcements/([0-9]+)", AnnouncementApi),
    ], store=store)


def db_url(argv=None) -> str:
    """The database: ``--db-url``, else :data:`DB_ENV`, else :data:`DEFAULT_DB_URL` (in the working directory)."""
    parser = argparse.ArgumentParser(prog="python -m dkrzspawner.services.announcements",
                                     description="The hub's announcements service.")
    parser.add_argument("--db-url", default=os.environ.get(DB_ENV) or DEFAULT_DB_URL,
                        help=f"SQLAlchemy URL of the database (default: ${DB_ENV} or {DEFAULT_DB_URL})")
    return parser.parse_args(argv).db_url


def main(argv=None):
    """Run the service until the hub stops it."""
    serve(make_announcements_app(store_module.Store(db_url(argv))), "announcements")


if __name__ == "__main__":
    main()
