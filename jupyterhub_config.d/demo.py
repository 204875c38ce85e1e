"""The demo hub: DKRZSpawner on the local Slurm cluster and its compute nodes (``make demo``).

Users alice (account bb1234), bob (ab0000) and carol (both) log in with any password; ``admin`` administers.
Loaded by ``jupyterhub_config.py`` at the top of the repository, after the shipped drop-ins (the services and
the page templates: job state, walltime left and why a server ended on the home page, Slurm's estimate on the
progress page).
"""

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads the file)

import os  # noqa: E402
import socket  # noqa: E402

from dkrzspawner import dropins  # noqa: E402

from dkrzspawner.options import DKRZ_PRESETS  # noqa: E402

c.JupyterHub.spawner_class = "dkrz"
# The DKRZ presets; prepost also loads the local cluster's example/1.0 module (ci/slurm-up's module tree).
c.DKRZSpawner.presets = {
    key: {**preset, **({"modules": ["example/1.0"]} if key == "prepost" else {})}
    for key, preset in DKRZ_PRESETS.items()
}
# The demo cluster's three partitions share its nodes, with two GPUs each; only "gpu" offers them.
c.DKRZSpawner.partitions = {
    "*": {"max_gpus": 0},
    "shared": {"description": "Interactive work and analysis."},
    "prepost": {"description": "Pre- and post-processing, with internet access."},
    "gpu": {"max_gpus": 2, "description": "With GPUs."},
}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {"alice", "bob", "carol"}
c.Authenticator.admin_users = {"admin"}
c.JupyterHub.allow_named_servers = True
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
# The jobs run on compute nodes with addresses of their own: they reach the hub's API at this host's address on
# their network ("slurm-head", which ci/slurm-up puts in /etc/hosts), never at 127.0.0.1 (a node's own loopback).
c.JupyterHub.hub_bind_url = f"http://{socket.gethostbyname('slurm-head')}:8081"
# Servers are Slurm jobs: they keep running while the hub restarts, and the hub finds them again.
c.JupyterHub.cleanup_servers = False
# DEMO_EXTEND=1 make demo: users extend their servers from the home page and JupyterLab (ci/demo makes the hub's
# Slurm account an operator for it), up to four hours in all.
if os.environ.get("DKRZ_DEMO_EXTEND") == "1":
    load_subconfig(dropins.path("extend"))  # noqa: F821
    c.DKRZSpawner.extend_max_runtime = {"*": "04:00:00"}
