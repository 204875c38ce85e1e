"""Drop-in, annotated example: a site's presets, partitions, policy and maintenance switch for DKRZSpawner.

Copy it into your ``jupyterhub_config.d/`` (``python -m dkrzspawner.dropins DIR site-example``), rename it, and
change what differs at your site; every value below is checked when the hub reads its config, and a mistake
names the entry. It assumes partitions ``shared``, ``prepost`` and ``gpu`` and accounts ``bb1234``/``ab0000``
(those of the local test cluster); the admin guide's page "Presets, partitions, policy" explains each field.
"""

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads the file)

c.JupyterHub.spawner_class = "dkrz"
c.JupyterHub.allow_named_servers = True
# Servers are Slurm jobs: they outlive a hub restart, and the hub finds them again.
c.JupyterHub.cleanup_servers = False

# Presets: one click on the spawn page. Cores are choices (the first is the default); memory is per core.
c.DKRZSpawner.presets = {
    "shared": {
        "display_name": "Shared",
        "description": "A share of a node for interactive work and analysis.",
        "partition": "shared",
    },
    "prepost": {
        "display_name": "Pre- and post-processing",
        "description": "With internet access, for downloads and data preparation.",
        "partition": "prepost",
        "cores": [1, 2, 4],
        "memory_per_core": "2500M",
        "runtime": "04:00:00",
        "max_runtime": "12:00:00",
    },
}

# Partitions: what the Advanced tab offers, on top of Slurm's own limits ("*" applies to every partition).
c.DKRZSpawner.partitions = {
    "*": {"max_gpus": 0, "max_runtime": "12:00:00"},
    "gpu": {"max_gpus": 2, "description": "Nodes with GPUs."},
}

# Who may use what, by Unix or hub group; users in none of the groups get "default" (everything if left out).
c.DKRZSpawner.policy = {
    "groups": {
        "students": {"presets": ["shared"], "partitions": [], "accounts": ["bb1234"], "max_servers": 2},
    },
    "max_servers_per_partition": {"gpu": 4},
}

# Maintenance: while this file exists with text in it, new servers are refused with that text.
c.DKRZSpawner.maintenance_file = "/etc/jupyterhub/maintenance.txt"
