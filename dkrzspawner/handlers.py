"""The hub API handler through which a job reports its server's port, and nothing else.

``POST /hub/api/dkrzspawner/port`` with ``{"port": N}``: accepted only with the API token of the very server
that is starting, only an integer port; it sets that port and nothing more. The host is never taken from
the job: it comes from Slurm.
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


class PortReportHandler(APIHandler):
    """Receives the port from a starting server's job."""

    def check_xsrf_cookie(self):
        """Token-authenticated only; cookies are never accepted here."""

    async def post(self):
        token = self.get_auth_token()
        user = self.current_user
        if not token or user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "a server token is required")
        try:
            port = parse_port(self.request.body)
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        for spawner in user.spawners.values():
            owns_token = getattr(spawner, "owns_token", None)
            if owns_token and owns_token(token):
                if not spawner.receive_port(port):
                    raise web.HTTPError(409, "this server is not waiting for a port")
                self.set_status(204)
                return
        raise web.HTTPError(403, "this token belongs to no starting server")


def register():
    """Add the handler to the hub's API handlers (once; the hub reads the list at start-up)."""
    from jupyterhub import apihandlers

    route = (r"/api/dkrzspawner/port", PortReportHandler)
    if route not in apihandlers.default_handlers:
        apihandlers.default_handlers.append(route)
