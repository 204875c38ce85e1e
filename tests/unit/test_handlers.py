"""handlers.parse_port: the port report accepts exactly {"port": <int 1..65535>} and nothing else."""

from __future__ import annotations

import json

import pytest

from dkrzspawner import handlers
from dkrzspawner.handlers import parse_port


@pytest.mark.parametrize("port", [1, 22, 8888, 49152, 65535])
def test_accepts_an_integer_port(port):
    assert parse_port(json.dumps({"port": port}).encode()) == port


def test_accepts_whitespace_and_utf16():
    assert parse_port(b'  {"port" :\n 8888 }  ') == 8888
    assert parse_port('{"port": 8888}'.encode("utf-16")) == 8888  # json.loads detects the encoding


@pytest.mark.parametrize("body", [
    b'{"port": true}', b'{"port": false}',
    b'{"port": 8888.0}', b'{"port": 8888.5}', b'{"port": 1e3}', b'{"port": NaN}', b'{"port": Infinity}',
    b'{"port": "8888"}', b'{"port": " 8888"}', b'{"port": null}', b'{"port": [8888]}', b'{"port": {"n": 8888}}',
    b'{"port": 0}', b'{"port": -1}', b'{"port": 65536}', b'{"port": 99999999999999999999999}',
    b'{"port": 8888, "ip": "10.0.0.1"}', b'{"port": 8888, "exec_prefix": "id"}', b'{"port": 8888, "Port": 1}',
    b'{}', b'{"Port": 8888}', b'{"ip": "10.0.0.1"}',
    b'', b'null', b'8888', b'"8888"', b'[8888]', b'[{"port": 8888}]', b'true',
    b'port=8888', b'{"port": 8888', b'{port: 8888}', b"{'port': 8888}",
    b'\xff\xfe\x00', b'\x80{"port": 8888}',
])
def test_refuses_everything_else(body):
    with pytest.raises(ValueError) as info:
        parse_port(body)
    message = str(info.value)
    assert message and "\n" not in message
    assert any(word in message for word in ("JSON", "port"))


def test_refuses_none():
    with pytest.raises(ValueError):
        parse_port(None)


def test_duplicate_keys_take_the_last():
    # JSON allows it; the result is still one integer port, nothing else is set
    assert parse_port(b'{"port": 1, "port": 8888}') == 8888


def test_the_routes_are_registered_once():
    from jupyterhub import apihandlers
    from dkrzspawner import handlers
    handlers.register()
    handlers.register()
    routes = [route for route, _ in apihandlers.default_handlers if "dkrzspawner" in route]
    assert routes == ["/api/dkrzspawner/port", "/api/dkrzspawner/ended", "/api/dkrzspawner/options-schema",
                      r"/api/dkrzspawner/extend/([^/]+)/?([^/]*)", "/api/dkrzspawner/recent"]


def test_importing_the_modules_adds_nothing_loading_the_class_through_the_package_does():
    import subprocess
    import sys
    probe = ("from jupyterhub import apihandlers\n"
             "def ours(): return [r for r, _ in apihandlers.default_handlers if 'dkrzspawner' in r]\n"
             "import dkrzspawner.spawner, dkrzspawner.handlers, dkrzspawner.lifecycle\n"
             "print(len(ours()))\n"
             "from importlib.metadata import EntryPoint\n"
             "EntryPoint('dkrz', 'dkrzspawner:DKRZSpawner', 'jupyterhub.spawners').load()\n"
             "print(len(ours()))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", str(len(handlers.ROUTES))], "no side effect at import; the entry point adds every route"
