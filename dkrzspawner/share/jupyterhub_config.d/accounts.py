"""Drop-in: the accounts service at ``/services/accounts/``: each user's Slurm accounts, the core-hours used
and the budget left; and the same budget on the spawn form, next to the request's cost.

Load it as is beside any hub configuration (copy it into your ``jupyterhub_config.d/`` or
``load_subconfig("/path/to/accounts.py")``); it only adds to what is configured:

- the hub-managed service (``python -m dkrzspawner.services.accounts``) on a free port of 127.0.0.1; it asks
  slurmdbd (``sacctmgr``, ``sacct``) as the hub's account, for the hub-authenticated user only;
- ``access:services!service=accounts`` for every user;
- ``c.DKRZSpawner.show_budgets``: the spawn form shows the chosen account's budget left and warns when the
  request would use more.

Budgets are the accounts' ``GrpTRESMins=cpu=...``; usage counts from ``$DKRZ_BUDGET_PERIOD_START`` (an ISO date
in the hub's environment; default 1 January of the current year).
"""

import os

from dkrzspawner import hubconfig
from dkrzspawner.services import accounts

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads the file)

_period = os.environ.get(accounts.PERIOD_ENV, "")

hubconfig.add_managed_service(c, "accounts", "dkrzspawner.services.accounts", {accounts.PERIOD_ENV: _period})
c.DKRZSpawner.show_budgets = True
c.DKRZSpawner.budget_period_start = _period
