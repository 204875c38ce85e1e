"""JupyterHub's ``internal_ssl`` for servers that are Slurm jobs: a certificate per server, its key in the job only.

With ``c.JupyterHub.internal_ssl = True`` the hub's internal CA signs a certificate for each server (JupyterHub's
own ``create_certs``), and the hub and the proxy talk to the server over HTTPS, verifying that certificate; the
server verifies theirs. A process of another user that binds a freed port on a shared node cannot answer for the
server: it does not hold the key. What Slurm adds:

- the node is unknown before the job starts, so the certificate names every node of the cluster (``sinfo``: each
  node's name and address) besides ``ssl_alt_names``; only the job that holds the key can use it;
- the key, the certificate and the CA bundle reach the job as the server's API token does, through the job's
  environment (``DKRZSPAWNER_SSL_*``: sudo's ``env_keep`` and ``sbatch --export``), never on a command line or in a
  file on the hub others could read; the hub's copies are removed once read. The job side
  (:mod:`dkrzspawner.singleuser`) writes them into a folder of its own (0700) on the node, points
  ``JUPYTERHUB_SSL_*`` there, and drops the variables before the server starts.
"""

from __future__ import annotations

import ipaddress
import os

#: the job's variables that carry the PEM texts, and the JupyterHub names of the files they become
ENV = {"DKRZSPAWNER_SSL_KEY": "JUPYTERHUB_SSL_KEYFILE", "DKRZSPAWNER_SSL_CERT": "JUPYTERHUB_SSL_CERTFILE",
       "DKRZSPAWNER_SSL_CA": "JUPYTERHUB_SSL_CLIENT_CA"}
_PATH_KEYS = {"DKRZSPAWNER_SSL_KEY": "keyfile", "DKRZSPAWNER_SSL_CERT": "certfile", "DKRZSPAWNER_SSL_CA": "cafile"}


def alt_names(nodes) -> list[str]:
    """Subject alternative names for every node, given as (name, address) pairs
    (:meth:`dkrzspawner.cluster.Cluster.nodes`)."""
    names = []
    for node in nodes:
        for value in node:
            if not value:
                continue
            try:
                name = f"IP:{ipaddress.ip_address(value)}"
            except ValueError:
                name = f"DNS:{value}"
            if name not in names:
                names.append(name)
    return names


def take(paths: dict) -> dict[str, str]:
    """The PEM texts of the server's key, certificate and CA bundle (as ``DKRZSPAWNER_SSL_*``) from the files
    JupyterHub's ``create_certs`` wrote; the key and certificate files are removed (the CA bundle is shared)."""
    found = {}
    for name, key in _PATH_KEYS.items():
        with open(paths[key], encoding="ascii") as f:
            found[name] = f.read()
    for key in ("keyfile", "certfile"):
        try:
            os.remove(paths[key])
        except OSError:
            pass
    return found
