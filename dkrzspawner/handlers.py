"""The hub API handlers through which a job reports its server's port and that its server has ended, the
options schema for REST clients, extending a server, and the user's recent jobs.

``POST /hub/api/dkrzspawner/port`` with ``{"port": N}``: accepted only with the API token of the very server
that is starting, only an integer port; it sets that port and nothing more. The host is never taken from
the job: it comes from Slurm.

``POST /hub/api/dkrzspawner/ended``: the same token only; the hub asks Slurm about that job now (and drops the
route as soon as Slurm says the job ended), instead of at its next poll. It is never taken as the end itself.

``GET /hub/api/dkrzspawner/options-schema[?user=NAME]``: the JSON Schema of the ``user_options`` the caller may
send to start a server (:mod:`dkrzspawner.schema`, built from the offer the validation checks against, with the
cluster facts the spawn form uses: no Slurm command of its own). Read-only; it needs the right to start that
user's servers (:data:`START_SCOPES`): any user's own token or hub cookie for themselves, an admin's (or a token
with that scope) for ``?user=NAME``.

``POST /hub/api/dkrzspawner/extend/USER[/SERVER]`` with ``{"add": "01:00:00"}``: adds that time to the server's
running job (``c.DKRZSpawner.extend_walltime``, off by default; :mod:`dkrzspawner.extension` says how far), with
the same right as starting it, or the custom scope :data:`dkrzspawner.extension.SCOPE` on that server (the server's
own token carries it where the drop-in ``extend`` is loaded: JupyterLab's status bar extends through it); answers
the job's new ``time_limit`` and ``end``, or 400 with the sentence why not.

``GET /hub/api/dkrzspawner/recent``: the calling user's recent jobs (:class:`RecentJobsHandler`).
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope, scope_definitions
from tornado import web

from .extension import SCOPE as EXTEND_SCOPE
from .extension import parse_request
from .options import OptionsError
from .slurm import BadUserName, SlurmError


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


#: the scopes that let a caller start a user's servers: JupyterHub 6's ``start:servers``, or ``servers`` (5.x)
START_SCOPES = tuple(scope for scope in ("start:servers", "servers") if scope in scope_definitions)


class OptionsSchemaHandler(APIHandler):
    """The JSON Schema of the ``user_options`` a user may send, for REST clients."""

    async def get(self):
        caller = self.current_user
        if caller is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        name = self.get_argument("user", "") or getattr(caller, "name", "")
        self.write(await self.schema_of(user_name=name))

    @needs_scope(*START_SCOPES)
    async def schema_of(self, user_name: str) -> dict:
        """``user_name``'s schema, if the caller may start that user's servers (404 for an unknown user)."""
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404, f"no user {user_name}")
        spawner = user.spawner
        if not hasattr(spawner, "options_schema"):
            raise web.HTTPError(404, "this hub's spawner is not dkrzspawner's")
        try:
            return await spawner.options_schema()
        except BadUserName as exc:  # a user name no Slurm command may carry: no offer either
            raise web.HTTPError(403, exc.reason) from None


class ExtendHandler(APIHandler):
    """Adds time to a running server's job (``c.DKRZSpawner.extend_walltime``)."""

    async def post(self, user_name: str, server_name: str = ""):
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        wanted = [scope for scope in (*START_SCOPES, EXTEND_SCOPE) if scope in scope_definitions]
        if not any(self.has_scope(f"{scope}!server={user_name}/{server_name}") for scope in wanted):
            if any(scope in self.parsed_scopes for scope in wanted):  # as JupyterHub: others' servers are unknown
                raise web.HTTPError(404, f"no server {user_name}/{server_name}")
            raise web.HTTPError(403, "This token may not extend servers.")
        user = self.find_user(user_name)
        if user is None or server_name not in user.orm_spawners:
            raise web.HTTPError(404, f"no server {user_name}/{server_name}")
        spawner = user.spawners[server_name]
        if not hasattr(spawner, "extend"):
            raise web.HTTPError(404, "this hub's spawner is not dkrzspawner's")
        try:
            self.write(await spawner.extend(parse_request(self.get_json_body())))
        except OptionsError as exc:
            raise web.HTTPError(400, str(exc)) from None
        except SlurmError as exc:
            raise web.HTTPError(409, f"Slurm did not extend the job: {exc.reason}") from None


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


#: the hub API routes of the job side's reports, of the options schema, of extending a server and of the recent jobs
ROUTES = ((r"/api/dkrzspawner/port", PortReportHandler), (r"/api/dkrzspawner/ended", ServerEndedHandler),
          (r"/api/dkrzspawner/options-schema", OptionsSchemaHandler),
          (r"/api/dkrzspawner/extend/([^/]+)/?([^/]*)", ExtendHandler),
          (r"/api/dkrzspawner/recent", RecentJobsHandler))


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
