"""What both hub services share: handlers authenticated through the hub (HubOAuth), JSON answers and errors,
escaped pages, and serving the app where the hub expects it.

The hub passes everything through the environment of a managed service (``JUPYTERHUB_SERVICE_URL``,
``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_API_TOKEN``, ...); the token never appears on a command line or in
a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from http import HTTPStatus
from urllib.parse import urlparse

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
_pages = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def service_prefix() -> str:
    """The URL prefix the hub routes to this service (``/services/<name>/``)."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return prefix if prefix.endswith("/") else prefix + "/"


class PageHandler(HubOAuthenticated, web.RequestHandler):
    """A page for a user logged in to the hub; others are sent through the hub's login first."""

    def initialize(self, **context):
        """Keep the service's shared objects (store, ledger, ...) given in the route."""
        self.context = context

    @property
    def user_name(self) -> str:
        """The hub-authenticated user's name: the only identity a service may trust."""
        model = self.current_user
        if model is None or model.get("kind", "user") != "user":
            raise web.HTTPError(403, "only hub users have this page")
        return model["name"]

    def has_scope(self, scope: str) -> bool:
        """Whether the hub granted the request's token ``scope`` (a role of the user gives it)."""
        return scope in (self.current_user or {}).get("scopes", ())

    def render_page(self, template: str, status: int = 200, **values):
        """Render one of the service's templates (autoescaped: every value appears as text)."""
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        self.finish(_pages.get_template(template).render(
            prefix=service_prefix(), hub_home=os.environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/home",
            user=self.current_user["name"], xsrf=self.xsrf_token.decode("ascii"), **values))

    def write_error(self, status_code, **kwargs):
        """A short plain page with the reason, never a traceback."""
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"{status_code} {_message(status_code, kwargs)}\n")


class ApiHandler(PageHandler):
    """A JSON endpoint: no login redirects (403 instead), errors as ``{"status": ..., "message": ...}``."""

    def get_login_url(self):
        raise web.HTTPError(403, "log in to the hub first, or send a hub API token")

    def json_body(self):
        """The request body as JSON; a clear 400 when it is not."""
        try:
            return json.loads(self.request.body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPError(400, "The body is not valid JSON.") from None

    def write_json(self, value, status: int = 200):
        """Answer with ``value`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(value))

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": status_code, "message": _message(status_code, kwargs)}))


def _message(status_code: int, kwargs) -> str:
    exc = kwargs.get("exc_info", (None, None, None))[1]
    if isinstance(exc, web.HTTPError) and exc.log_message:  # our own words; other exceptions stay unnamed
        return exc.log_message % exc.args if exc.args else exc.log_message
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def make_app(routes, **context) -> web.Application:
    """The service's tornado app: ``routes`` are (path below the prefix, handler class), each handler gets
    ``context``; the OAuth callback is added."""
    prefix = service_prefix()
    handlers = [(prefix + "oauth_callback", HubOAuthCallbackHandler)]
    handlers += [(prefix + path, handler, context) for path, handler in routes]
    # A new cookie secret per start: after a restart, users pass through the hub's OAuth again, silently.
    return web.Application(handlers, cookie_secret=secrets.token_bytes(32), xsrf_cookies=False)


def serve(app: web.Application, name: str) -> None:
    """Listen where the hub expects the service (``JUPYTERHUB_SERVICE_URL``) until SIGINT or SIGTERM.

    JupyterHub stops a managed service with SIGINT and waits before it sends SIGTERM. Both are handled here, not
    left to Python's default: a hub started in the background by a shell (a CI script, ``nohup``) passes SIGINT
    on ignored, and then the service would hold the hub's shutdown until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format=f"[%(levelname)1.1s %(asctime)s {name}] %(message)s")
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    log = logging.getLogger(name)

    async def run():
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for stop in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(stop, lambda stop=stop: (log.info("stopping (%s)", stop.name), stopped.set()))
        server = app.listen(url.port or 80, address=url.hostname or "127.0.0.1", xheaders=True)
        log.info("listening on %s://%s:%s%s", url.scheme, url.hostname, url.port, service_prefix())
        await stopped.wait()
        server.stop()

    asyncio.run(run())
