"""The hub API handlers through which a job reports its server's port, and that its server has ended.

``POST /hub/api/dkrzspawner/port`` with ``{"port": N}``: accepted only with the API token of the very server
that is starting, only an integer port; it sets that port and nothing more. The host is never taken from
the job: it comes from Slurm.

``POST /hub/api/dkrzspawner/ended``: the same token only; the hub asks Slurm about that job now (and drops the
route as soon as Slurm says the job ended), instead of at its next poll. It is never taken as the end itself.

``GET /hub/api/dkrzspawner/recent``: the calling user's recent jobs (:class:`RecentJobsHandler`).
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers.base import APIHandler
from tornado import web


def parse_port(body: bytes) -> int:
    """The port from a request body, or ValueError: exactly ``{"port": <int 1..65535>}``."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be JSON") from None
    if not isinstance(data, dict) or set(data) != {"port"}:
        raise ValueError('body must be exactly {"port": N}')
    port = data["port"]
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError("port must be an integer from 1 to 65535")
    return port


class _ServerTokenHandler(APIHandler):
    """Token-authenticated only, by the token of one of the user's servers (cookies are never accepted)."""

    def check_xsrf_cookie(self):
        """Token-authenticated only; cookies are never accepted here."""

    def token_owner(self):
        """The spawner whose server's token the request carries; 403 otherwise."""
        token = self.get_auth_token()
        user = self.current_user
        if not token or user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "a server token is required")
        for spawner in user.spawners.values():
            owns_token = getattr(spawner, "owns_token", None)
            if owns_token and owns_token(token):
                return spawner
        raise web.HTTPError(403, "this token belongs to no server")


class PortReportHandler(_ServerTokenHandler):
    """Receives the port from a starting server's job."""

    async def post(self):
        spawner = self.token_owner()
        try:
            port = parse_port(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        if not spawner.receive_port(port):
            raise web.HTTPError(409, "this server is not waiting for a port")
        self.set_status(204)


class ServerEndedHandler(_ServerTokenHandler):
    """The job side says its server has ended: ask Slurm now."""

    async def post(self):
        if not self.token_owner().server_ended():
            raise web.HTTPError(409, "this server has no job")
        self.set_status(204)


class RecentJobsHandler(APIHandler):
    """``GET /hub/api/dkrzspawner/recent``: the calling user's recent jobs (:mod:`dkrzspawner.recent`), newest
    first, as ``{"jobs": [...]}``; a user's own only (cookie or a token with ``read:servers`` on themselves)."""

    async def get(self):
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "only users have recent servers")
        if not self.has_scope(f"read:servers!user={user.name}"):
            raise web.HTTPError(403, f"this token may not read the servers of {user.name}")
        listing = getattr(user.spawner, "recent_servers", None)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"jobs": listing() if listing else []}))


#: the hub API routes of the job side's reports
ROUTES = ((r"/api/dkrzspawner/port", PortReportHandler), (r"/api/dkrzspawner/ended", ServerEndedHandler))
#: the recent jobs of the calling user
ROUTES += ((r"/api/dkrzspawner/recent", RecentJobsHandler),)


def register():
    """Add the handlers to the hub's API handlers (once; the hub reads the list when it builds its web
    application, after loading the spawner class: see :mod:`dkrzspawner`)."""
    from jupyterhub import apihandlers

    for route in ROUTES:
        if route not in apihandlers.default_handlers:
            apihandlers.default_handlers.append(route)


def registered() -> bool:
    """Whether :func:`register` has added the routes."""
    from jupyterhub import apihandlers

    return all(route in apihandlers.default_handlers for route in ROUTES)
