"""singleuser.py (job side): the service URL, a free port, and reporting the port to the hub."""

from __future__ import annotations

import http.server
import os
import json
import socket
import threading
import urllib.error

import pytest

from dkrzspawner import singleuser
from dkrzspawner.singleuser import free_port, report_port, with_port


@pytest.mark.parametrize("url, ip, port, expected", [
    ("http://127.0.0.1:0/user/alice/", "0.0.0.0", 45678, "http://0.0.0.0:45678/user/alice/"),
    ("http://127.0.0.1:38123/user/alice/lab/", "10.0.0.5", 1234, "http://10.0.0.5:1234/user/alice/lab/"),
    ("http://localhost/user/carol/my-server/", "0.0.0.0", 8888, "http://0.0.0.0:8888/user/carol/my-server/"),
    ("https://hub.example.org:8443/user/bob/x/?a=1#frag", "0.0.0.0", 9, "https://0.0.0.0:9/user/bob/x/?a=1#frag"),
    ("http://127.0.0.1:0", "127.0.0.1", 50000, "http://127.0.0.1:50000"),
])
def test_with_port(url, ip, port, expected):
    assert with_port(url, ip, port) == expected


def test_free_port_is_bindable():
    for ip in ("", "127.0.0.1"):
        port = free_port(ip)
        assert 1024 <= port <= 65535
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_free_port_differs_between_calls():
    assert len({free_port("127.0.0.1") for _ in range(5)}) > 1


class Hub:
    """A tiny local HTTP server in a thread that answers the port report with a given status."""

    def __init__(self, status):
        self.status = status
        self.requests = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(hub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub/api"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def no_sleep(monkeypatch):
    sleeps = []
    monkeypatch.setattr(singleuser.time, "sleep", sleeps.append)
    return sleeps


def test_report_port_success(no_sleep):
    with Hub(204) as hub:
        assert report_port(hub.url + "/", "s3cret", 45678) is None
    assert len(hub.requests) == 1
    request = hub.requests[0]
    assert request["path"] == "/hub/api/dkrzspawner/port"
    assert json.loads(request["body"]) == {"port": 45678}
    assert request["headers"]["Authorization"] == "token s3cret"
    assert request["headers"]["Content-Type"] == "application/json"
    assert no_sleep == []


@pytest.mark.parametrize("status", [403, 409, 400, 404, 500])
def test_report_port_refused_exits_without_retrying(no_sleep, status):
    with Hub(status) as hub:
        with pytest.raises(SystemExit) as info:
            report_port(hub.url, "s3cret", 45678, attempts=5)
    assert str(status) in str(info.value.code)
    assert len(hub.requests) == 1
    assert no_sleep == []


def test_report_port_retries_while_the_hub_is_unreachable(no_sleep, capsys):
    port = free_port("127.0.0.1")  # nothing listens there: connection refused
    with pytest.raises(SystemExit) as info:
        report_port(f"http://127.0.0.1:{port}/hub/api", "s3cret", 45678, attempts=2)
    assert "could not reach the hub" in str(info.value.code)
    assert no_sleep == [0.2, 0.4]
    assert capsys.readouterr().err.count("retrying") == 2


def test_report_port_backoff_is_capped(no_sleep):
    port = free_port("127.0.0.1")
    with pytest.raises(SystemExit):
        report_port(f"http://127.0.0.1:{port}/hub/api", "t", 1, attempts=10)
    assert no_sleep == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10, 10, 10]


def test_report_port_succeeds_once_the_hub_is_up(monkeypatch):
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}/hub/api"
    hubs = []

    def start_hub(seconds):
        if not hubs:  # the hub comes up during the first wait
            hub = Hub(204)
            hub.server.server_close()
            hub.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), hub.server.RequestHandlerClass)
            hub.thread = threading.Thread(target=hub.server.serve_forever, args=(0.01,), daemon=True)
            hubs.append(hub.__enter__())

    monkeypatch.setattr(singleuser.time, "sleep", start_hub)
    try:
        report_port(url, "t", 45678, attempts=3)
    finally:
        for hub in hubs:
            hub.__exit__()
    assert len(hubs[0].requests) == 1


def test_http_error_is_an_os_error_handled_first():
    # report_port relies on HTTPError being caught before OSError (it is a subclass)
    assert issubclass(urllib.error.HTTPError, OSError)


# -- the port is reported only once the server itself listens on it (issue 18 item 2) --------------------------
SERVE = """
import os, socket, sys, time, urllib.parse
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
sock = socket.socket()
sock.bind(("127.0.0.1", url.port))
sock.listen()
time.sleep(float(sys.argv[1]))
"""


def test_listening_ports_are_only_the_processes_own(tmp_path):
    import subprocess
    import sys
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()  # this test process listens here, the child does not
    port = free_port("127.0.0.1")
    child = subprocess.Popen([sys.executable, "-c", SERVE, "30"],
                             env={"JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/user/alice/"})
    try:
        assert singleuser.wait_until_listening(child, port)
        assert singleuser.listening_ports(child.pid) == [port]
        assert other.getsockname()[1] in singleuser.listening_ports(os.getpid())
    finally:
        child.kill()
        child.wait()
        other.close()


def test_a_server_that_ends_without_listening_is_never_reported():
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert singleuser.wait_until_listening(child, free_port("127.0.0.1")) is False
    assert singleuser.exit_status(child.returncode) == 3
    assert singleuser.exit_status(-15) == 143


def test_main_reports_the_port_after_the_server_listens_and_the_end_after_it_ends(monkeypatch):
    import sys
    with Hub(204) as hub:
        monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:0/user/alice/")
        monkeypatch.setenv("JUPYTERHUB_API_URL", hub.url)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "s3cret")
        monkeypatch.setenv("DKRZSPAWNER_BIND_IP", "127.0.0.1")
        with pytest.raises(SystemExit) as ended:
            singleuser.main(["--", sys.executable, "-c", SERVE, "0.5"])
    assert ended.value.code == 0
    assert [r["path"] for r in hub.requests] == ["/hub/api/dkrzspawner/port", "/hub/api/dkrzspawner/ended"]
    assert all(r["headers"]["Authorization"] == "token s3cret" for r in hub.requests)
