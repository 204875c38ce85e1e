"""The services' drop-in files, loaded as is beside a site's configuration the way JupyterHub loads them
(``load_subconfig``: each file in a configuration of its own, merged afterwards): they only add to it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from jupyterhub.app import JupyterHub
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from dkrzspawner import dropins, hubconfig, templates_path

DROPINS = Path(dropins.FOLDER)
SITE = """
c.JupyterHub.services = [{{"name": "monitoring", "api_token": "x"}}]
c.JupyterHub.load_roles = [{{"name": "monitoring", "scopes": ["read:users"], "services": ["monitoring"]}}]
c.JupyterHub.template_paths = ["/srv/site-templates"]
c.JupyterHub.template_vars = {{"site": "DKRZ"}}
c.JupyterHub.extra_user_scopes = {{"read:groups"}}
load_subconfig({accounts!r})
load_subconfig({announcements!r})
c.JupyterHub.services.append({{"name": "later"}})
"""


@pytest.fixture
def hub_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DKRZ_ANNOUNCEMENTS_DB_URL", raising=False)
    (tmp_path / "jupyterhub_config.py").write_text(SITE.format(accounts=str(DROPINS / "accounts.py"),
                                                               announcements=str(DROPINS / "announcements.py")))
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(tmp_path)).load_config()
    return JupyterHub(config=config), config


def test_both_dropins_beside_a_site_config(hub_config, tmp_path):
    hub, config = hub_config
    assert [s["name"] for s in hub.services] == ["monitoring", "accounts", "announcements", "later"]
    accounts, announcements = hub.services[1:3]
    assert announcements["command"] == [sys.executable, "-m", "dkrzspawner.services.announcements"]
    assert announcements["environment"] == {"DKRZ_ANNOUNCEMENTS_DB_URL": f"sqlite:///{tmp_path}/dkrz-announcements.sqlite"}
    assert announcements["url"] != accounts["url"] and announcements["url"].startswith("http://127.0.0.1:")
    assert "api_token" not in announcements, "the hub makes the services' tokens"
    assert hub.load_roles == [{"name": "monitoring", "scopes": ["read:users"], "services": ["monitoring"]}]
    assert set(hub.custom_scopes) == {"custom:announcements:write"}
    assert hub.extra_user_scopes == {"read:groups", "access:services!service=announcements",
                                     "access:services!service=accounts"}
    assert hub.template_paths == [templates_path(), "/srv/site-templates"]
    assert set(hub.template_vars) == {"site", "dkrz_announcements"}
    assert config.DKRZSpawner.show_budgets is True


def test_jupyterhub_5_gets_advice_instead_of_a_broken_role(monkeypatch):
    monkeypatch.setattr(JupyterHub, "class_trait_names", classmethod(lambda cls: ["services"]))
    c = Config()
    with pytest.warns(UserWarning, match="add these scopes to the user role"):
        hubconfig.grant_users(c, ["access:services!service=x"])
    assert "extra_user_scopes" not in c.JupyterHub


def test_free_ports_are_ports():
    assert 0 < hubconfig.free_port() < 65536
