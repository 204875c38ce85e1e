"""Run a hub service's tornado app on a free port, with the hub's authentication replaced by a test header."""

from __future__ import annotations

import json
import urllib.parse

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from dkrzspawner.services import web


def serve(make_app, prefix: str, users: dict[str, list[str]], monkeypatch):
    """Start ``make_app()`` under ``prefix``; ``users`` maps the names a request may claim (header
    ``X-Test-User``) to their scopes; the user ``admin`` is a hub admin. Returns ``(request, server)``; ``await request(method, path, user=...,
    json_body=... or form=...)`` answers without raising for error statuses."""
    def current_user(handler):
        name = handler.request.headers.get("X-Test-User")
        if name not in users:
            return None
        return {"kind": "user", "name": name, "admin": name == "admin", "scopes": users[name]}
    monkeypatch.setattr(web.PageHandler, "get_current_user", current_user)
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", prefix)
    sock, port = bind_unused_port()
    server = HTTPServer(make_app())
    server.add_sockets([sock])
    client = AsyncHTTPClient()

    async def request(method, path, user=None, json_body=None, form=None):
        headers = {"X-Test-User": user} if user else {}
        data = None
        if json_body is not None:
            data = json_body if isinstance(json_body, str) else json.dumps(json_body)
        elif form is not None:
            data = urllib.parse.urlencode(form)
        if data is None and method in ("POST", "PUT"):
            data = ""
        return await client.fetch(f"http://127.0.0.1:{port}{prefix}{path}", method=method, headers=headers,
                                  body=data, raise_error=False, follow_redirects=False)
    return request, server
