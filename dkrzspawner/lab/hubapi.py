"""This server's calls to the hub's API with its own token (``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``, the
TLS context under internal_ssl): whether that token may extend this server, and extending it
(``POST /hub/api/dkrzspawner/extend/USER/SERVER``, :mod:`dkrzspawner.handlers`). The hub decides and refuses in
words; nothing here checks a limit. Imports tornado's HTTP client and :mod:`dkrzspawner.singleuser` (the TLS
context), never JupyterHub."""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..singleuser import hub_context


class HubRefused(Exception):
    """The hub did not extend: its status and its sentence (or why it could not be asked)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HubAPI:
    """The hub's API as this server's token sees it; ``environ`` defaults to the server's environment."""

    def __init__(self, environ: Mapping[str, str] | None = None, timeout: float = 20.0):
        environ = os.environ if environ is None else environ
        self.url = environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        self.token = environ.get("JUPYTERHUB_API_TOKEN", "")
        self.user = environ.get("JUPYTERHUB_USER", "")
        self.server = environ.get("JUPYTERHUB_SERVER_NAME", "")
        self.context = hub_context(environ)
        self.timeout = timeout
        self._may_extend: bool | None = None

    async def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = HTTPRequest(self.url + path, method=method, request_timeout=self.timeout,
                              headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
                              body=None if body is None else json.dumps(body), ssl_options=self.context)
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # unreachable, refused, timed out, TLS
            raise HubRefused(502, f"The hub did not answer: {exc}.") from None
        try:
            data = json.loads(response.body or b"{}")
        except ValueError:
            data = {}
        return response.code, data if isinstance(data, dict) else {}

    async def may_extend(self) -> bool:
        """Whether this server's token carries :data:`~dkrzspawner.extension.SCOPE` (asked once; False, and asked
        again next time, while the hub cannot be reached)."""
        from ..extension import SCOPE  # the options' module with it: on first use, not at the server's start

        if self._may_extend is None:
            if not (self.url and self.token):
                return False
            try:
                status, identity = await self._call("GET", "/user")
            except HubRefused:
                return False
            scopes = identity.get("scopes") if status == 200 else None
            self._may_extend = any(str(scope).partition("!")[0] == SCOPE for scope in scopes or ())
        return self._may_extend

    async def extend(self, add: str) -> dict:
        """Ask the hub to add ``add`` (``HH:MM:SS``) to this server's job: its answer (``job_id``, ``time_limit``,
        ``end``, ``ends_at``), or HubRefused with the hub's status and sentence."""
        path = "/dkrzspawner/extend/" + "/".join(urllib.parse.quote(part, safe="") for part in (self.user, self.server))
        status, answer = await self._call("POST", path, {"add": add})
        if status != 200:
            raise HubRefused(status, str(answer.get("message") or f"The hub answered {status}."))
        return answer
