"""Drop-in: users may extend their running servers' walltime, from the home page and from JupyterLab's status bar.

Load it as is beside any hub configuration (copy it into your ``jupyterhub_config.d/`` or
``load_subconfig("/path/to/extend.py")``); it only adds to what is configured:

- ``c.DKRZSpawner.extend_walltime``: the home page offers Extend on each running server, within the partition's
  longest runtime, ``c.DKRZSpawner.extend_max_runtime`` (set it in your own file) and the account's budget;
- the custom scope ``custom:dkrzspawner:extend``, granted to every user on their own servers
  (``!user``); each server's API token then carries it for that one server (``!server=USER/NAME``), which is how
  JupyterLab's status-bar item extends. A server's token can extend that server and nothing else.

Extending needs the hub's Slurm account to be a Slurm operator (``sacctmgr modify user NAME set
adminlevel=operator``): read the security page (docs/admin/security.rst, "Extending servers") before loading it.
"""

from dkrzspawner import extension, hubconfig

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads the file)

c.DKRZSpawner.extend_walltime = True
c.JupyterHub.custom_scopes.update(extension.SCOPES)
hubconfig.grant_users(c, [f"{extension.SCOPE}!user"])
