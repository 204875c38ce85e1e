"""Job side: pick a free port, start the Jupyter server, report the port once *that server* listens on it.

Runs inside the Slurm job as the user, as the parent of the server. Imports only the standard library, so it adds
little to the start. Usage: ``dkrzspawner-singleuser [--] COMMAND [ARGS...]`` (the console script: ``python -m``
would put the user's home first on ``sys.path``).

Another user's process on the same node could bind a port between the moment it is found free and the moment
the server binds it. So the port is reported only when the kernel's socket table (``/proc/net/tcp``) shows a
listening socket on it that belongs to the server's own process (its inode is one of the server's open files);
if another process got there first, the server fails to bind, and nothing is reported. When the server ends,
the hub is told at once (``POST .../dkrzspawner/ended``), so that it asks Slurm now and drops the route, rather
than at its next poll. Signals the job receives (``scancel --signal``) are passed on to the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

# What only the port report, the end report or internal_ssl needs (json, ssl, tempfile, urllib.request and
# jobcerts, the standard library only like this module) is imported there: the server starts sooner.

PORT_PATH = "/dkrzspawner/port"
ENDED_PATH = "/dkrzspawner/ended"
#: signals a job's batch shell may get (``scancel --signal``, Slurm's warnings) that the server should get too
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def free_port(ip: str = "") -> int:
    """A port that is free on this node right now."""
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def with_port(service_url: str, ip: str, port: int) -> str:
    """``JUPYTERHUB_SERVICE_URL`` with the host and port the server must bind."""
    parts = urllib.parse.urlsplit(service_url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{ip}:{port}"))


def install_certs(environ) -> str | None:
    """With internal_ssl: write the key, certificate and CA bundle from ``environ`` into a new folder (0700, the
    key 0600), point ``JUPYTERHUB_SSL_*`` there and drop the PEM variables (the server and its kernels never see
    them). Returns the folder, or None without internal_ssl."""
    if "DKRZSPAWNER_SSL_KEY" not in environ:
        return None
    import tempfile

    from . import jobcerts

    folder = tempfile.mkdtemp(prefix="dkrzspawner-ssl-")
    for name, target in jobcerts.ENV.items():
        path = os.path.join(folder, target.rsplit("_", 1)[-1].lower() + ".pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii") as f:
            f.write(environ.pop(name))
        environ[target] = path
    return folder


def hub_context(environ) -> ssl.SSLContext | None:
    """The TLS context for the hub's API with internal_ssl: the hub verified by the CA bundle, this server's
    certificate as the client's. None without internal_ssl."""
    if "JUPYTERHUB_SSL_KEYFILE" not in environ:
        return None
    import ssl

    context = ssl.create_default_context(cafile=environ["JUPYTERHUB_SSL_CLIENT_CA"])
    context.load_cert_chain(environ["JUPYTERHUB_SSL_CERTFILE"], environ["JUPYTERHUB_SSL_KEYFILE"])
    return context


def report_port(api_url: str, token: str, port: int, attempts: int = 10, context=None) -> None:
    """POST the port to the hub; retry while the hub cannot be reached, give up if it refuses."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        api_url.rstrip("/") + PORT_PATH,
        data=json.dumps({"port": port}).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=10, context=context):
                return
        except urllib.error.HTTPError as exc:
            # The hub answered and refused (spawn cancelled, token revoked): this server has no owner.
            raise SystemExit(f"dkrzspawner: the hub refused the port report ({exc.code}); not starting") from None
        except OSError as exc:
            print(f"dkrzspawner: hub not reachable ({exc}); retrying", file=sys.stderr, flush=True)
            time.sleep(min(2**attempt * 0.2, 10))
    raise SystemExit("dkrzspawner: could not reach the hub to report the port; not starting")


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open (``socket:[INODE]`` links in /proc/PID/fd)."""
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening_ports(pid: int) -> list[int]:
    """The TCP ports process ``pid`` itself listens on (IPv4 and IPv6), from the kernel's socket tables."""
    inodes = socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == _LISTEN and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return sorted(ports)


def wait_until_listening(server: subprocess.Popen, port: int, interval: float = 0.02) -> bool:
    """True once ``server`` itself listens on ``port``; False if it ends first."""
    while server.poll() is None:
        if port in listening_ports(server.pid):
            return True
        time.sleep(interval)
    return False


def tell_hub_ended(api_url: str, token: str, context=None) -> None:
    """Tell the hub the server has ended (best effort: Slurm's word decides, the hub only asks sooner)."""
    import urllib.request

    request = urllib.request.Request(api_url.rstrip("/") + ENDED_PATH, data=b"{}", method="POST",
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context):
            pass
    except OSError as exc:
        print(f"dkrzspawner: could not tell the hub that the server ended ({exc})", file=sys.stderr, flush=True)


def exit_status(returncode: int) -> int:
    """A shell's exit status for a child's return code (a signal N gives 128 + N)."""
    return returncode if returncode >= 0 else 128 - returncode


def main(argv=None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise SystemExit("usage: dkrzspawner-singleuser [--] COMMAND [ARGS...]")
    ip = os.environ.get("DKRZSPAWNER_BIND_IP") or "0.0.0.0"
    port = free_port(ip)
    os.environ["JUPYTERHUB_SERVICE_URL"] = with_port(os.environ["JUPYTERHUB_SERVICE_URL"], ip, port)
    api_url, token = os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
    certs = install_certs(os.environ)
    try:
        serve(args, port, api_url, token)
    finally:
        if certs:
            import shutil

            shutil.rmtree(certs, ignore_errors=True)


def serve(args: list[str], port: int, api_url: str, token: str) -> None:
    """Start the server, report ``port`` once it listens there, wait for its end and tell the hub; exits."""
    context = hub_context(os.environ)
    print(f"dkrzspawner: starting on port {port}: {' '.join(args)}", flush=True)
    server = subprocess.Popen(args)
    for signum in FORWARDED:
        signal.signal(signum, lambda signum, frame: server.send_signal(signum))
    if not wait_until_listening(server, port):
        print(f"dkrzspawner: the server ended before it listened on port {port}", file=sys.stderr, flush=True)
        sys.exit(exit_status(server.returncode))
    try:
        report_port(api_url, token, port, context=context)
    except SystemExit:
        server.terminate()
        server.wait()
        raise
    print(f"dkrzspawner: serving on port {port}", flush=True)
    returncode = server.wait()
    tell_hub_ended(api_url, token, context=context)
    sys.exit(exit_status(returncode))


if __name__ == "__main__":
    main()
