"""Job side: pick a free port, report it to the hub, then become the Jupyter server.

Runs inside the Slurm job as the user. Imports only the standard library, so it adds little to the start.
Usage: ``python -m dkrzspawner.singleuser [--] COMMAND [ARGS...]``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PORT_PATH = "/dkrzspawner/port"


def free_port(ip: str = "") -> int:
    """A port that is free on this node right now."""
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def with_port(service_url: str, ip: str, port: int) -> str:
    """``JUPYTERHUB_SERVICE_URL`` with the host and port the server must bind."""
    parts = urllib.parse.urlsplit(service_url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{ip}:{port}"))


def report_port(api_url: str, token: str, port: int, attempts: int = 10) -> None:
    """POST the port to the hub; retry while the hub cannot be reached, give up if it refuses."""
    request = urllib.request.Request(
        api_url.rstrip("/") + PORT_PATH,
        data=json.dumps({"port": port}).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except urllib.error.HTTPError as exc:
            # The hub answered and refused (spawn cancelled, token revoked): this server has no owner.
            raise SystemExit(f"dkrzspawner: the hub refused the port report ({exc.code}); not starting") from None
        except OSError as exc:
            print(f"dkrzspawner: hub not reachable ({exc}); retrying", file=sys.stderr, flush=True)
            time.sleep(min(2**attempt * 0.2, 10))
    raise SystemExit("dkrzspawner: could not reach the hub to report the port; not starting")


def main(argv=None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise SystemExit("usage: dkrzspawner-singleuser [--] COMMAND [ARGS...]")
    ip = os.environ.get("DKRZSPAWNER_BIND_IP") or "0.0.0.0"
    port = free_port(ip)
    os.environ["JUPYTERHUB_SERVICE_URL"] = with_port(os.environ["JUPYTERHUB_SERVICE_URL"], ip, port)
    report_port(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"], port)
    print(f"dkrzspawner: serving on port {port}: {' '.join(args)}", flush=True)
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
