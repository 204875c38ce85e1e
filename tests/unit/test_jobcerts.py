"""jobcerts.py and the job side's part of internal_ssl: the certificate names every node; the key goes to the job
through its environment, is written private there, and the PEM variables never reach the server."""

from __future__ import annotations

import os
import stat

from dkrzspawner import cluster, jobcerts, singleuser


def test_every_node_by_name_and_address():
    sinfo = "node1|10.0.0.1\nnode2|10.0.0.2\nvm|vm\nvm|vm\nv6|fe80::1\n"
    assert cluster.parse_nodes(sinfo) == (("node1", "10.0.0.1"), ("node2", "10.0.0.2"), ("vm", "vm"),
                                          ("v6", "fe80::1"))
    assert jobcerts.alt_names(cluster.parse_nodes(sinfo)) == ["DNS:node1", "IP:10.0.0.1", "DNS:node2", "IP:10.0.0.2", "DNS:vm",
                                         "DNS:v6", "IP:fe80::1"]


def test_the_hub_keeps_no_copy_of_the_key(tmp_path):
    paths = {}
    for key, text in (("keyfile", "KEY"), ("certfile", "CERT"), ("cafile", "CA")):
        paths[key] = str(tmp_path / key)
        (tmp_path / key).write_text(text)
    assert jobcerts.take(paths) == {"DKRZSPAWNER_SSL_KEY": "KEY", "DKRZSPAWNER_SSL_CERT": "CERT",
                                    "DKRZSPAWNER_SSL_CA": "CA"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cafile"], "the CA bundle is shared; key and cert go"


def test_the_job_writes_them_private_and_drops_the_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    environ = {"DKRZSPAWNER_SSL_KEY": "KEY", "DKRZSPAWNER_SSL_CERT": "CERT", "DKRZSPAWNER_SSL_CA": "CA", "X": "1"}
    folder = singleuser.install_certs(environ)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert sorted(environ) == ["JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA", "JUPYTERHUB_SSL_KEYFILE", "X"]
    assert open(environ["JUPYTERHUB_SSL_KEYFILE"]).read() == "KEY"
    assert stat.S_IMODE(os.stat(environ["JUPYTERHUB_SSL_KEYFILE"]).st_mode) == 0o600
    assert singleuser.install_certs({"X": "1"}) is None and singleuser.hub_context({"X": "1"}) is None
