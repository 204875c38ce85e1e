"""The accounts service at ``/services/accounts/``: the logged-in user's Slurm accounts, core-hours used and
the budget left (see :mod:`~dkrzspawner.budgets` for where the numbers come from).

- ``GET api/accounts``: JSON for the hub-authenticated user, never for a user named in the request;
- the page shows the same as a table.

Slurm is asked through :class:`~dkrzspawner.slurm.SlurmRunner` (argument lists, timeouts) as the service's own
account, filtered by the user's name. Run by the hub (see the drop-in ``share/jupyterhub_config.d/accounts.py``)::

    python -m dkrzspawner.services.accounts [--ttl 30] [--period-start 2026-01-01]
"""

from __future__ import annotations

import argparse
import logging
import os

from tornado import web

from ..slurm import BadUserName, SlurmError, SlurmRunner
from ..budgets import Ledger, period_start
from .web import ApiHandler, PageHandler, make_app, serve

log = logging.getLogger("accounts")

#: environment variables the drop-in sets; the command-line options win
TTL_ENV = "DKRZ_ACCOUNTS_TTL"
PERIOD_ENV = "DKRZ_BUDGET_PERIOD_START"


async def _statement(handler):
    try:
        return await handler.context["ledger"].statement(handler.user_name)
    except BadUserName as exc:  # never asked of Slurm: a hub user whose name is no Unix name
        raise web.HTTPError(403, str(exc)) from None
    except SlurmError as exc:
        log.warning("Slurm did not say which accounts %s has: %s", handler.user_name, exc.reason)
        raise web.HTTPError(503, "Slurm did not answer; try again in a minute") from None


class AccountsPage(PageHandler):
    """The page: one row per account."""

    @web.authenticated
    async def get(self):
        statement = await _statement(self)
        self.render_page("accounts.html", statement=statement, ttl=self.context["ledger"].cache.ttl)


class AccountsApi(ApiHandler):
    """``api/accounts``: the user's statement as JSON."""

    @web.authenticated
    async def get(self):
        self.write_json((await _statement(self)).as_dict())


def make_accounts_app(ledger: Ledger) -> web.Application:
    """The service's tornado application around ``ledger``."""
    return make_app([("", AccountsPage), (r"api/accounts/?", AccountsApi)], ledger=ledger)


def options(argv=None) -> argparse.Namespace:
    """Command-line options, with defaults from the environment."""
    parser = argparse.ArgumentParser(prog="python -m dkrzspawner.services.accounts",
                                     description="The hub's Slurm accounts service.")
    parser.add_argument("--ttl", type=float, default=float(os.environ.get(TTL_ENV) or 30),
                        help=f"seconds Slurm's answers are kept (default: ${TTL_ENV} or 30)")
    parser.add_argument("--period-start", type=_period, default=os.environ.get(PERIOD_ENV, ""),
                        help=f"start of the budget period, ISO date (default: ${PERIOD_ENV} or 1 January)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds one Slurm command may take")
    return parser.parse_args(argv)


def _period(text: str) -> str:
    try:
        period_start(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from None
    return text


def main(argv=None):
    """Run the service until the hub stops it."""
    args = options(argv)
    ledger = Ledger(SlurmRunner(), ttl=args.ttl, timeout=args.timeout, period=args.period_start)
    serve(make_accounts_app(ledger), "accounts")


if __name__ == "__main__":
    main()
