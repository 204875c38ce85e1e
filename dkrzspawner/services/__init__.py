"""Hub services beside the spawner, each started by the hub and authenticated through it (HubOAuth).

- :mod:`~dkrzspawner.services.announcements`: maintenance windows and news, shown on the hub's pages;
- :mod:`~dkrzspawner.services.accounts`: a user's Slurm accounts, core-hours used and the budget left.

Each is switched on by its own shipped drop-in file (``share/jupyterhub_config.d/``, see ``dkrzspawner.dropins``).
Services import the core (:mod:`dkrzspawner.budgets`, :mod:`dkrzspawner.slurm`), never the other way: nothing
of the core imports it (only the shipped drop-ins do).
"""
